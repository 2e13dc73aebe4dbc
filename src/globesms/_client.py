"""The one place the official ``alibabacloud_dysmsapi20180501`` client is built.

Besides building the client, this module gives globesms a read-only view of the last HTTP answer
(status and headers) of the calling thread. The SDK drops both when it raises (a standard
``Retry-After`` header, the status of an unreadable body), and the retry and error rules need
them. The SDK keeps one ``requests`` session per endpoint key in ``DaraCore._sessions``;
:func:`attach_response_tap` registers, for this client's key only and only if the SDK has not
made one yet, a session that behaves exactly like the SDK's and notes the answer's status and
headers. When the SDK's internals change and the key cannot be used, the tap stays empty and
globesms falls back to what the SDK exposes.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from importlib.metadata import version
from typing import Any

import requests
from alibabacloud_dysmsapi20180501.client import Client
from alibabacloud_tea_openapi.models import Config

from ._credentials import CredentialSource
from ._settings import Settings

_LAST_ANSWER: ContextVar[tuple[int, Mapping[str, str]] | None] = ContextVar(
    "globesms_last_answer", default=None
)


def seconds_to_ms(seconds: float) -> int:
    """The SDK's timeouts are whole milliseconds; never round a positive value down to 0."""
    return max(1, round(seconds * 1000))


def build_client(settings: Settings, credential: CredentialSource) -> Client:
    """Build the SDK client for ``settings`` with ``credential``; the SDK's retries stay off."""
    config = Config(
        credential=credential,
        region_id=settings.region,
        endpoint=settings.endpoint,
        protocol=settings.protocol,
        connect_timeout=seconds_to_ms(settings.connect_timeout),
        read_timeout=seconds_to_ms(settings.read_timeout),
        max_idle_conns=settings.max_in_flight,
        user_agent=f"globesms/{version('globesms')}",
    )
    if settings.ca_file:
        config.ca = settings.ca_file
    client = Client(config)
    attach_response_tap(settings)
    return client


class _TappedSession(requests.Session):
    """The SDK's session, plus a note of each answer's status and headers for this context.

    Redirects are not followed: a redirect would replay the signed request, carrying the number
    and the text, to wherever the endpoint points.
    """

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        kwargs["allow_redirects"] = False
        response = super().send(request, **kwargs)
        _LAST_ANSWER.set((response.status_code, response.headers))
        return response


def attach_response_tap(settings: Settings) -> bool:
    """Register a tapped session under this endpoint's SDK session key; True when in place."""
    try:
        from darabonba.core import DaraCore

        sessions = DaraCore._sessions
        pool = settings.max_in_flight
        key = f"{settings.protocol}://{settings.endpoint}:80:pool={pool}"
        existing = sessions.get(key)
        if isinstance(existing, _TappedSession):
            return True
        if existing is not None or not isinstance(sessions, dict):
            return False
        session = _TappedSession()
        adapter = DaraCore.get_adapter(settings.protocol, None, pool_size=pool)
        session.mount(f"{settings.protocol}://", adapter)
        sessions.setdefault(key, session)
        return sessions[key] is session
    except (ImportError, AttributeError, TypeError):  # SDK internals moved: no tap
        return False


def clear_answer() -> None:
    """Forget the last answer before a new attempt."""
    _LAST_ANSWER.set(None)


def last_answer() -> tuple[int, Mapping[str, str]] | None:
    """Status and headers of the last answer this context received, if the tap saw one."""
    return _LAST_ANSWER.get()
