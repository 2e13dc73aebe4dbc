"""Transports: how one attempt reaches the endpoint and what came back.

Both return an :class:`Answer` (status, headers, the SDK's response body model) or raise a mapped
:class:`SmsError`; the service decides what the answer means.

* :class:`SyncTransport` is the official SDK's own sync call.
* :class:`AsyncTransport` replaces only the SDK's async HTTP layer, for our client only: the SDK
  opens a new aiohttp session, connector and SSL context for every call. The request is the SDK's:
  its model gives the parameters, its ``OpenApiUtilClient.query`` and ``DaraCore.compose_url``
  the query and URL, its ``Utils`` the date, nonce, user agent, body hash and ACS3-HMAC-SHA256
  ``Authorization``, in the header set its ``do_request`` builds. It is sent on one aiohttp
  session per event loop (connections reused, SSL context built once), exactly as signed: the
  URL is passed pre-encoded so aiohttp does not re-quote it.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import urllib.request
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn

from alibabacloud_dysmsapi20180501 import models
from alibabacloud_openapi_util.client import Client as OpenApiUtil
from alibabacloud_tea_openapi.utils import Utils
from alibabacloud_tea_util.models import RuntimeOptions
from darabonba.core import DaraCore
from darabonba.request import DaraRequest

from ._client import clear_answer, last_answer, seconds_to_ms
from ._errors import (
    ConfigurationError,
    describe,
    error_for_code,
    error_for_exception,
    redirect_error,
)

ACTION = "SendMessageToGlobe"
VERSION = "2018-05-01"
ALGORITHM = "ACS3-HMAC-SHA256"


@dataclass(frozen=True)
class Answer:
    """What one attempt got back: HTTP status, headers and the parsed body."""

    status: int
    headers: Mapping[str, str]
    body: models.SendMessageToGlobeResponseBody


def retry_hint(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``x-acs-retry-after`` (milliseconds) or ``Retry-After`` (s or date)."""
    acs = headers.get("x-acs-retry-after")
    if acs:
        try:
            ms = int(acs)
        except ValueError:
            ms = 0
        if ms > 0:
            return ms / 1000.0
    standard = headers.get("retry-after") or headers.get("Retry-After")
    if not standard:
        return None
    try:
        return max(0.0, float(standard))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(standard)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _raise_mapped(
    failure: Exception, status: int | None, headers: Mapping[str, str] | None
) -> NoReturn:
    error = error_for_exception(failure, http_status=status)
    if error.retry_after is None and headers is not None:
        error.retry_after = retry_hint(headers)
    # Raised outside any except block: the SDK exception (it holds the signed request) is neither
    # the __cause__ nor the __context__ of what the caller sees.
    raise error from describe(failure)


class SyncTransport:
    """One attempt through the SDK's own sync call."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def send(
        self, request: models.SendMessageToGlobeRequest, *, connect_timeout: float,
        read_timeout: float,
    ) -> Answer:
        runtime = RuntimeOptions(
            connect_timeout=seconds_to_ms(connect_timeout),
            read_timeout=seconds_to_ms(read_timeout),
        )
        clear_answer()
        failure: Exception | None = None
        try:
            response = self._client.send_message_to_globe_with_options(request, runtime)
        except Exception as exc:  # anything the SDK raises is mapped, never leaked as is
            failure = exc
        seen = last_answer()
        if failure is not None:
            _raise_mapped(failure, seen[0] if seen else None, seen[1] if seen else None)
        headers = seen[1] if seen is not None else (response.headers or {})
        if 300 <= response.status_code < 400:
            raise redirect_error(response.status_code)
        return Answer(response.status_code, headers, response.body)


def parse_answer(status: int, headers: Mapping[str, str], raw: bytes) -> Answer:
    """Read an HTTP answer the way the SDK does, mapping errors through the one table."""
    if 300 <= status < 400:
        raise redirect_error(status)
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        _raise_mapped(ValueError("the answer is not a JSON object"), status, headers)
    if status >= 400:
        code = data.get("Code") or data.get("code")
        request_id = data.get("RequestId") or data.get("requestId")
        raise error_for_code(
            str(code) if code else None,
            http_status=status,
            request_id=str(request_id) if request_id else None,
            retry_after=retry_hint(headers),
        )
    return Answer(status, headers, models.SendMessageToGlobeResponseBody().from_map(data))


class AsyncTransport:
    """One attempt on a pooled aiohttp session, with the request the SDK would sign."""

    def __init__(
        self, client: Any, *, endpoint: str, protocol: str, ca_file: str | None, pool_size: int,
    ) -> None:
        self._client = client
        # An injected SDK client signs for its own endpoint; ours was built from the settings.
        self._endpoint: str = getattr(client, "_endpoint", None) or endpoint
        self._protocol = protocol
        self._ca_file = ca_file
        self._pool_size = pool_size
        self._ssl: ssl.SSLContext | None = None
        self._proxy = proxy_for(protocol, self._endpoint)
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    async def sign(self, request: models.SendMessageToGlobeRequest) -> DaraRequest:
        """The request as the SDK's ``do_request`` builds and signs it (no retry headers)."""
        client = self._client
        dara = DaraRequest()
        dara.protocol = self._protocol
        dara.method = "POST"
        dara.pathname = "/"
        dara.query = OpenApiUtil.query(request.to_map())
        dara.headers = {
            "host": self._endpoint,
            "x-acs-version": VERSION,
            "x-acs-action": ACTION,
            "user-agent": Utils.get_user_agent(client._user_agent),
            "x-acs-date": Utils.get_timestamp(),
            "x-acs-signature-nonce": Utils.get_nonce(),
            "accept": "application/json",
        }
        payload = Utils.hash(b"", ALGORITHM).hex()
        dara.headers["x-acs-content-sha256"] = payload
        credential = await _credential(client._credential)
        if credential.provider_name:
            dara.headers["x-acs-credentials-provider"] = credential.provider_name
        if credential.type in ("bearer", "id_token"):
            raise ConfigurationError(
                f"a {credential.type} credential cannot sign SendMessageToGlobe; use an AccessKey, "
                "STS token or RAM role",
                code="UnsupportedCredential",
            )
        if credential.security_token:
            dara.headers["x-acs-accesskey-id"] = credential.access_key_id
            dara.headers["x-acs-security-token"] = credential.security_token
        dara.headers["Authorization"] = Utils.get_authorization(
            dara, ALGORITHM, payload, credential.access_key_id, credential.access_key_secret
        )
        return dara

    async def send(
        self, request: models.SendMessageToGlobeRequest, *, connect_timeout: float,
        read_timeout: float,
    ) -> Answer:
        import aiohttp
        from yarl import URL

        signed = await self.sign(request)
        session = self._session()
        timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_connect=connect_timeout,
            sock_read=read_timeout,
        )
        failure: Exception | None = None
        try:
            async with session.request(
                signed.method, URL(DaraCore.compose_url(signed), encoded=True), data=b"",
                headers=signed.headers, timeout=timeout, allow_redirects=False,
                proxy=self._proxy,
            ) as response:
                status, headers = response.status, response.headers
                raw = await response.read()
        except Exception as exc:  # mapped below; CancelledError is not an Exception
            failure = exc
        if failure is not None:
            _raise_mapped(failure, None, None)
        return parse_answer(status, headers, raw)

    def _session(self) -> Any:
        import aiohttp

        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._pool_size, limit_per_host=self._pool_size, ssl=self._ssl_context(),
                ttl_dns_cache=300,
            )
            # Proxies are read from the environment once per session, as the SDK honours them;
            # aiohttp's trust_env would look them (and ~/.netrc) up again on every request.
            session = aiohttp.ClientSession(connector=connector)
            self._sessions[loop] = session
        return session

    def _ssl_context(self) -> ssl.SSLContext | bool:
        if self._protocol != "https":
            return False
        if self._ssl is None:
            import certifi

            context = ssl.create_default_context(cafile=certifi.where())
            if self._ca_file:
                context.load_verify_locations(self._ca_file)
            self._ssl = context
        return self._ssl

    async def aclose(self) -> None:
        """Close this event loop's session and its connections."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - called outside a loop
            return
        session = self._sessions.pop(loop, None)
        if session is not None:
            await session.close()


def proxy_for(protocol: str, endpoint: str) -> str | None:
    """The proxy the environment names for this endpoint (HTTP(S)_PROXY, NO_PROXY), if any."""
    host = endpoint.rsplit(":", 1)[0] if endpoint.count(":") == 1 else endpoint
    if urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(protocol)


async def _credential(source: Any) -> Any:
    getter = getattr(source, "get_credential_async", None)
    if getter is not None:
        return await getter()
    return await asyncio.to_thread(source.get_credential)

