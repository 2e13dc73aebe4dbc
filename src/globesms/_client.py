"""The one place the official ``alibabacloud_dysmsapi20180501`` client is built and guarded.

Besides building the client, this module puts a guard on the SDK's ``requests`` session that a
client will use (the SDK keeps one session per endpoint key in ``DaraCore._sessions``). The guard
wraps the session's transport adapter, so it works on a session the SDK or the application made
before us:

* it never lets a redirect be followed (a redirect would replay the signed request, carrying the
  number and the text, to wherever ``Location`` points);
* it notes each answer's status and headers for the calling context, which the SDK drops when it
  raises (a standard ``Retry-After``, the status of an unreadable body).

When the SDK's internals change so that the guard cannot be put in place, building the service
fails with a :class:`ConfigurationError` naming the internal: the service never runs unguarded.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

import requests
import requests.adapters
from alibabacloud_dysmsapi20180501.client import Client
from alibabacloud_tea_openapi.models import Config

from ._credentials import CredentialSource
from ._errors import ConfigurationError
from ._internals import session_key
from ._settings import Settings
from ._version import version

_LAST_ANSWER: ContextVar[tuple[int, Mapping[str, str]] | None] = ContextVar(
    "globesms_last_answer", default=None
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def seconds_to_ms(seconds: float) -> int:
    """The SDK's timeouts are whole milliseconds; never round a positive value down to 0."""
    return max(1, round(seconds * 1000))


def build_client(settings: Settings, credential: CredentialSource) -> Client:
    """Build the SDK client for ``settings`` with ``credential``; the SDK's retries stay off."""
    config = Config(
        credential=credential,
        region_id=settings.region,
        endpoint=settings.resolved_endpoint,
        protocol=settings.protocol,
        connect_timeout=seconds_to_ms(settings.connect_timeout),
        read_timeout=seconds_to_ms(settings.read_timeout),
        max_idle_conns=settings.max_in_flight,
        user_agent=f"globesms/{version()}",
    )
    if settings.ca_file:
        config.ca = settings.ca_file
    return Client(config)


class _GuardAdapter(requests.adapters.BaseAdapter):
    """Wraps the SDK session's transport adapter: notes each answer, makes redirects inert."""

    def __init__(self, inner: requests.adapters.BaseAdapter) -> None:
        super().__init__()
        self.inner = inner

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        response = self.inner.send(request, *args, **kwargs)
        _LAST_ANSWER.set((response.status_code, response.headers))  # case-insensitive
        if response.status_code in _REDIRECTS:
            response.headers.pop("location", None)  # requests follows only with a Location
        return response

    def close(self) -> None:
        self.inner.close()


def client_endpoint(client: Any) -> tuple[str, str]:
    """The protocol and endpoint (``host[:port]``) an SDK client sends to."""
    try:
        protocol = str(client._protocol or "https").lower()
        endpoint = str(client._endpoint)
    except AttributeError as exc:
        raise _incompatible("Client._protocol / Client._endpoint") from exc
    if not endpoint or endpoint == "None":
        raise ConfigurationError(
            "the injected SDK client has no endpoint; build it with Config(endpoint=...)",
            code="InvalidClient",
        )
    return protocol, endpoint


def guard_client(client: Any) -> None:
    """Put the guard on the session ``client``'s sync calls use, or raise ConfigurationError."""
    protocol, endpoint = client_endpoint(client)
    try:
        from darabonba.core import DaraCore

        pool = DaraCore._resolve_pool_maxsize(
            {"maxIdleConns": DaraCore.to_number(client._max_idle_conns)}
        )
        key = session_key(protocol, endpoint, pool)
        session = DaraCore._get_session(session_key=key, protocol=protocol, pool_size=pool)
    except (ImportError, AttributeError, TypeError, KeyError) as exc:
        raise _incompatible("DaraCore._get_session / _resolve_pool_maxsize") from exc
    if not isinstance(session, requests.Session):
        raise _incompatible("a requests.Session in DaraCore._sessions")
    prefix = f"{protocol}://"
    adapter = session.get_adapter(prefix + endpoint)
    if not isinstance(adapter, _GuardAdapter):
        session.mount(prefix, _GuardAdapter(adapter))


def _incompatible(internal: str) -> ConfigurationError:
    return ConfigurationError(
        f"this version of the Alibaba SDK lacks {internal}, which globesms needs to refuse "
        "redirects safely; install the versions pinned in globesms' requirements",
        code="SdkIncompatible",
    )


def clear_answer() -> None:
    """Forget the last answer before a new attempt."""
    _LAST_ANSWER.set(None)


def last_answer() -> tuple[int, Mapping[str, str]] | None:
    """Status and headers of the last answer this context received, if the guard saw one."""
    return _LAST_ANSWER.get()
