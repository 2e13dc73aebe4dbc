"""Transports: how one attempt of an :class:`Operation` reaches the endpoint and what came back.

Both return an :class:`Answer` (status, headers, the SDK's response body model) or raise a mapped
:class:`SmsError`; the driver decides what the answer means.

* :class:`SyncTransport` is the official SDK's own ``*_with_options`` call.
* :class:`AsyncTransport` replaces only the SDK's async HTTP layer, for our client only: the SDK
  opens a new aiohttp session, connector and SSL context for every call. The request is the SDK's:
  its model gives the parameters, its ``OpenApiUtilClient.query`` and ``DaraCore.compose_url``
  the query and URL, its ``Utils`` the date, nonce, user agent, form body, body hash and
  ACS3-HMAC-SHA256 ``Authorization``, in the header set its ``do_request`` builds. It is sent on
  one aiohttp session per event loop, exactly as signed (the URL pre-encoded).

Both run the SDK with its known deprecation warnings silenced (:class:`SdkWarnings`), so a
caller's ``-W error`` cannot turn a send that never left into a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import ssl
import sys
import threading
import time
import urllib.request
import warnings
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, NoReturn

from alibabacloud_openapi_util.client import Client as OpenApiUtil
from alibabacloud_tea_openapi.utils import Utils
from alibabacloud_tea_util.models import RuntimeOptions
from darabonba.core import DaraCore
from darabonba.request import DaraRequest

from ._client import clear_answer, client_endpoint, last_answer, seconds_to_ms
from ._errors import (
    ConfigurationError,
    DeliveryUncertain,
    NetworkError,
    SmsError,
    describe,
    error_for_code,
    error_for_exception,
    redirect_error,
)
from ._internals import warn_once
from ._operations import VERSION, Operation

ALGORITHM = "ACS3-HMAC-SHA256"
#: TLS alerts a client sees when it speaks TLS to a plain-HTTP port.
_PLAIN_HTTP_REPLY = re.compile(r"WRONG_VERSION_NUMBER|record layer failure|HTTP_REQUEST|"
                               r"packet length too long|unknown protocol", re.IGNORECASE)


@dataclass(frozen=True)
class Answer:
    """What one attempt got back: HTTP status, headers and the parsed body model."""

    status: int
    headers: Mapping[str, str]
    body: Any


class SdkWarnings:
    """Silence the SDK's own deprecation warnings while globesms runs it, and only then.

    The SDK calls ``datetime.utcnow()`` while signing (deprecated since Python 3.12); under
    ``-W error`` or pytest's ``filterwarnings = error`` that turns a request that never left into
    an exception. A filter for exactly those warnings is put first in ``warnings.filters`` while
    at least one call runs, and taken out by identity when the last one ends (thread-safe;
    ``catch_warnings`` is not).
    """

    _ENTRY = (
        "ignore", re.compile(r"datetime\.datetime\.utc", re.IGNORECASE), DeprecationWarning,
        re.compile(r"(alibabacloud_|darabonba|Tea)"), 0,
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0

    def __enter__(self) -> None:
        with self._lock:
            self._active += 1
            if self._entry_missing():
                warnings.filters.insert(0, self._ENTRY)  # type: ignore[attr-defined]

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0:
                filters: list[Any] = warnings.filters  # type: ignore[assignment]
                for index, entry in enumerate(filters):
                    if entry is self._ENTRY:
                        del filters[index]
                        break

    def _entry_missing(self) -> bool:
        filters: list[Any] = warnings.filters  # type: ignore[assignment]
        return not filters or filters[0] is not self._ENTRY


#: Before Python 3.12 the SDK's ``datetime.utcnow()`` does not warn: nothing to silence.
SDK_WARNINGS: contextlib.AbstractContextManager[None] = (
    SdkWarnings() if sys.version_info >= (3, 12) else contextlib.nullcontext()
)


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


class _Endpoint:
    """Where a transport sends, and how a failure to get there is explained."""

    def __init__(self, protocol: str, endpoint: str) -> None:
        self.protocol = protocol
        self.endpoint = endpoint
        host, _, port = endpoint.rpartition(":") if endpoint.count(":") == 1 else (endpoint, "", "")
        self.host = host or endpoint
        self.port = int(port) if port.isdigit() else (443 if protocol == "https" else 80)
        self._speaks_tls: bool | None = None  # probed at most once, after a failure

    def speaks_tls(self) -> bool:
        """Whether the endpoint completes a TLS handshake (probed once, then remembered)."""
        if self._speaks_tls is None:
            self._speaks_tls = _speaks_tls(self.host, self.port)
        return self._speaks_tls

    def raise_mapped(
        self, failure: Exception, status: int | None, headers: Mapping[str, str] | None,
    ) -> NoReturn:
        error = self.explain(error_for_exception(failure, http_status=status), failure)
        if error.retry_after is None and headers is not None:
            error.retry_after = retry_hint(headers)
        # Raised outside any except block: the SDK exception (it holds the signed request) is
        # neither the __cause__ nor the __context__ of what the caller sees.
        raise error from describe(failure)

    def explain(self, error: SmsError, failure: BaseException) -> SmsError:
        """Turn a protocol mismatch into a ConfigurationError; name host and port."""
        where = f"{self.host}:{self.port}"
        if self.protocol == "https" and _PLAIN_HTTP_REPLY.search(_ssl_reasons(failure)):
            return self._mismatch("speaks plain HTTP", "http")
        if (
            self.protocol == "http"
            and isinstance(error, DeliveryUncertain)
            and error.http_status is None
            and not _timed_out(failure)  # a TLS server refuses plain HTTP at once
            and self.speaks_tls()
        ):
            return self._mismatch("speaks TLS", "https")
        if isinstance(error, NetworkError):
            error.hint = f"could not connect to {where}; nothing was sent, check the network and " \
                "the endpoint setting, then retry"
            error.args = (error.hint,)
        return error

    def _mismatch(self, what: str, fix: str) -> ConfigurationError:
        return ConfigurationError(
            f"{self.host}:{self.port} {what} but protocol is {self.protocol}; set protocol to "
            f"{fix} (GLOBESMS_PROTOCOL={fix}); nothing was processed",
            code="ProtocolMismatch",
        )


def _ssl_reasons(failure: BaseException) -> str:
    from ._errors import _chain

    return " ".join(
        f"{getattr(e, 'reason', '')} {e}" for e in _chain(failure) if isinstance(e, ssl.SSLError)
    )


def _timed_out(failure: BaseException) -> bool:
    from ._errors import _chain

    return any(isinstance(e, TimeoutError) or "Timeout" in type(e).__name__
               for e in _chain(failure))


def _speaks_tls(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether ``host:port`` completes a TLS handshake (a probe, run only after a failure)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host):
            return True
    except (OSError, ValueError):
        return False


class SyncTransport:
    """One attempt through the SDK's own sync ``*_with_options`` call."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.where = _Endpoint(*client_endpoint(client))

    def call(
        self, operation: Operation, request: Any, *, connect_timeout: float, read_timeout: float,
    ) -> Answer:
        runtime = RuntimeOptions(
            connect_timeout=seconds_to_ms(connect_timeout),
            read_timeout=seconds_to_ms(read_timeout),
        )
        clear_answer()
        failure: Exception | None = None
        with SDK_WARNINGS:
            try:
                response = getattr(self._client, operation.sdk_method)(request, runtime)
            except Exception as exc:  # anything the SDK raises is mapped, never leaked as is
                failure = exc
        seen = last_answer()
        if failure is not None:
            self.where.raise_mapped(failure, seen[0] if seen else None, seen[1] if seen else None)
        headers = seen[1] if seen is not None else (response.headers or {})
        if 300 <= response.status_code < 400:
            raise redirect_error(response.status_code)
        return Answer(response.status_code, headers, response.body)


def parse_answer(
    operation: Operation, status: int, headers: Mapping[str, str], raw: bytes, where: _Endpoint,
) -> Answer:
    """Read an HTTP answer the way the SDK does, mapping errors through the one table."""
    if 300 <= status < 400:
        raise redirect_error(status)
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        where.raise_mapped(ValueError("the answer is not a JSON object"), status, headers)
    if status >= 400:
        code = data.get("Code") or data.get("code")
        request_id = data.get("RequestId") or data.get("requestId")
        raise error_for_code(
            str(code) if code else None,
            http_status=status,
            request_id=str(request_id) if request_id else None,
            retry_after=retry_hint(headers),
        )
    return Answer(status, headers, operation.body_model().from_map(data))


_EMPTY_BODY_HASH: str | None = None
_aiohttp: Any = None
_URL: Any = None


def _load_aiohttp() -> None:
    """Import aiohttp and yarl once, on the first async call (sync users never pay for it)."""
    global _aiohttp, _URL
    import aiohttp
    from yarl import URL

    _aiohttp, _URL = aiohttp, URL


def _client_timeout(connect: float, read: float) -> Any:
    """Per-attempt timeouts: ``sock_connect`` covers a new connection (TCP and TLS handshake),
    ``sock_read`` the answer. No ``connect`` timer: a pooled connection is never waited for (the
    in-flight bound equals the pool size), and each timer costs every send a loop callback."""
    return _aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)


class AsyncTransport:
    """One attempt on a pooled aiohttp session, with the request the SDK would sign."""

    def __init__(
        self, client: Any, *, ca_file: str | None, pool_size: int,
        timeouts: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self._client = client
        self.where = _Endpoint(*client_endpoint(client))
        self._protocol = self.where.protocol
        self._endpoint = self.where.endpoint
        self._ca_file = ca_file
        self._pool_size = pool_size
        self._ssl: ssl.SSLContext | None = None
        self._proxy = proxy_for(self._protocol, self._endpoint)
        self._user_agent: str | None = None  # constant per process: built on first use
        self._usual_timeouts = timeouts  # an attempt with the whole deadline ahead uses these
        self._usual: Any = None  # ... and this ClientTimeout, built once
        if getattr(client, "_credential", None) is None or not hasattr(client, "_user_agent"):
            warn_once("async transport", "Client._credential / Client._user_agent")
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    async def sign(self, operation: Operation, request: Any) -> DaraRequest:
        """The request as the SDK's ``do_request`` builds and signs it (no retry headers)."""
        credential = await _credential(self._client._credential)
        with SDK_WARNINGS:
            return self._signed(operation, request, credential)

    def _signed(self, operation: Operation, request: Any, credential: Any) -> DaraRequest:
        global _EMPTY_BODY_HASH
        if self._user_agent is None:
            self._user_agent = Utils.get_user_agent(self._client._user_agent)
        dara = DaraRequest()
        dara.protocol = self._protocol
        dara.method = "POST"
        dara.pathname = "/"
        params = request.to_map()
        dara.query = {} if operation.form_body else OpenApiUtil.query(params)
        dara.headers = {
            "host": self._endpoint,
            "x-acs-version": VERSION,
            "x-acs-action": operation.action,
            "user-agent": self._user_agent,
            "x-acs-date": Utils.get_timestamp(),
            "x-acs-signature-nonce": Utils.get_nonce(),
            "accept": "application/json",
        }
        if operation.form_body:
            form = Utils.to_form(OpenApiUtil.parse_to_map(params))
            payload = Utils.hash(form.encode("utf-8"), ALGORITHM).hex()
            dara.body = form
            dara.headers["content-type"] = "application/x-www-form-urlencoded"
        else:
            if _EMPTY_BODY_HASH is None:
                _EMPTY_BODY_HASH = Utils.hash(b"", ALGORITHM).hex()
            payload = _EMPTY_BODY_HASH
            dara.body = b""
        dara.headers["x-acs-content-sha256"] = payload
        if credential.provider_name:
            dara.headers["x-acs-credentials-provider"] = credential.provider_name
        if credential.type in ("bearer", "id_token"):
            raise ConfigurationError(
                f"a {credential.type} credential cannot sign {operation.action}; use an "
                "AccessKey, STS token or RAM role",
                code="UnsupportedCredential",
            )
        if credential.security_token:
            dara.headers["x-acs-accesskey-id"] = credential.access_key_id
            dara.headers["x-acs-security-token"] = credential.security_token
        dara.headers["Authorization"] = Utils.get_authorization(
            dara, ALGORITHM, payload, credential.access_key_id, credential.access_key_secret
        )
        return dara

    async def call(
        self, operation: Operation, request: Any, *, connect_timeout: float, read_timeout: float,
    ) -> Answer:
        if _aiohttp is None:
            _load_aiohttp()
        failure: Exception | None = None
        try:
            signed = await self.sign(operation, request)
        except SmsError:
            raise
        except Exception as exc:  # credential refresh, signing: before anything was written
            failure = exc
        if failure is not None:
            self._raise_unsigned(failure)
        session = self._sessions.get(asyncio.get_running_loop())
        if session is None or session.closed:
            session = self._session()
        if (connect_timeout, read_timeout) == self._usual_timeouts:
            if self._usual is None:
                self._usual = _client_timeout(connect_timeout, read_timeout)
            timeout = self._usual
        else:  # cut by the deadline
            timeout = _client_timeout(connect_timeout, read_timeout)
        body = signed.body
        try:
            async with session.request(
                "POST", _URL(DaraCore.compose_url(signed), encoded=True),
                data=body.encode("utf-8") if isinstance(body, str) else body,
                headers=signed.headers, timeout=timeout, allow_redirects=False,
                proxy=self._proxy,
            ) as response:
                status, headers = response.status, response.headers
                raw = await response.read()
        except Exception as exc:  # mapped below; CancelledError is not an Exception
            failure = exc
        if failure is not None:
            if self.where.protocol == "http":  # the TLS probe must not block the loop
                error = error_for_exception(failure)
                explained = await asyncio.to_thread(self.where.explain, error, failure)
                raise explained from describe(failure)
            self.where.raise_mapped(failure, None, None)
        return parse_answer(operation, status, headers, raw, self.where)

    def _raise_unsigned(self, failure: Exception) -> NoReturn:
        """A failure before anything was written: never 'uncertain'."""
        error = error_for_exception(failure)
        if isinstance(error, DeliveryUncertain):
            error = ConfigurationError(
                f"the request could not be signed ({type(failure).__name__}); nothing was sent. "
                "Check the credential and the installed SDK versions (globesms doctor)",
                code="SigningFailed",
            )
        raise error from describe(failure)

    def _session(self) -> Any:
        connector = _aiohttp.TCPConnector(
            limit=self._pool_size, limit_per_host=self._pool_size, ssl=self._ssl_context(),
            ttl_dns_cache=300,
        )
        # Proxies are read from the environment once per session, as the SDK honours them;
        # aiohttp's trust_env would look them (and ~/.netrc) up again on every request.
        session = _aiohttp.ClientSession(connector=connector)
        self._sessions[asyncio.get_running_loop()] = session
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
