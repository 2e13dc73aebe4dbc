"""The official SDK's internals globesms relies on: one list, one check, one warning.

globesms reaches past the SDK's public API in a few places, each for a safety or performance
mechanism the SDK does not offer:

* the sync path registers its own ``requests`` session (redirect guard, answer tap) under the
  SDK's session key in ``DaraCore._sessions``, with an adapter from ``DaraCore.get_adapter``;
* the async path signs the request with the SDK's own helpers and reads the client's endpoint,
  user agent and credential from its private attributes, then sends it on a pooled session.

:data:`INTERNALS` names every one of them, with a probe that proves it is still there and still
behaves as relied upon; :func:`missing_internals` runs the probes (offline: no request leaves the
process) and ``tests/test_sdk_contract.py`` runs them one by one, so an SDK upgrade that removes
an internal fails a test naming it. ``globesms doctor`` reports the same list. When a mechanism
cannot attach at run time, the code that tried calls :func:`warn_once`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("globesms")

#: Event name of the record :func:`warn_once` emits.
INTERNAL_MISSING = "sdk.internal_missing"

#: The session key ``darabonba.core.DaraCore.do_action`` files a ``requests`` session under.
SESSION_KEY_FORMAT = "{protocol}://{endpoint}:80:pool={pool}"

#: An endpoint that only the offline probes use; nothing is ever sent to it.
PROBE_ENDPOINT = "globesms-contract-probe.invalid"
_PROBE_POOL = 7


def session_key(protocol: str, endpoint: str, pool: int) -> str:
    """The key under which the SDK keeps its ``requests`` session for this endpoint and pool."""
    return SESSION_KEY_FORMAT.format(protocol=protocol, endpoint=endpoint, pool=pool)


@dataclass(frozen=True)
class Internal:
    """One SDK internal: its dotted name, what relies on it, and a probe that is True when usable.

    ``probe`` receives a real SDK client built by :func:`globesms._client.build_client` for
    :data:`PROBE_ENDPOINT` over http with a pool of 7.
    """

    name: str
    used_for: str
    probe: Callable[[Any], bool]

    def message(self) -> str:
        """The line that names this internal when it is gone."""
        return (
            f"SDK internal {self.name} is missing or changed; {self.used_for} cannot work: pin the "
            "SDK packages to the versions pyproject declares, or update globesms"
        )


# -- probes -----------------------------------------------------------------------------------


def _dara_core() -> Any:
    from darabonba.core import DaraCore

    return DaraCore


def _sessions_is_dict(client: Any) -> bool:
    return isinstance(_dara_core()._sessions, dict)


def _get_session_builds_session(client: Any) -> bool:
    import requests

    core = _dara_core()
    key = session_key("http", PROBE_ENDPOINT, _PROBE_POOL)
    try:
        session = core._get_session(session_key=key, protocol="http", pool_size=_PROBE_POOL)
        return isinstance(session, requests.Session)
    finally:
        core._sessions.pop(key, None)


def _pool_size_resolves(client: Any) -> bool:
    core = _dara_core()
    return bool(core._resolve_pool_maxsize({"maxIdleConns": core.to_number(7)}) == 7)


def _client_protocol_and_pool(client: Any) -> bool:
    return isinstance(getattr(client, "_protocol", None), str) and hasattr(
        client, "_max_idle_conns"
    )


class _KeyMatched(Exception):
    """Raised by the probe session: the SDK looked the session up under the expected key."""


class _ProbeSession:
    """Stands in for a session; the SDK reaching it proves the key, and nothing is sent."""

    def send(self, *args: Any, **kwargs: Any) -> Any:
        raise _KeyMatched


def _session_key_matches(client: Any) -> bool:
    """Put a probe session under the expected key and make the SDK's own call find it."""
    from alibabacloud_dysmsapi20180501 import models
    from alibabacloud_tea_util.models import RuntimeOptions

    sessions = _dara_core()._sessions
    key = session_key("http", PROBE_ENDPOINT, _PROBE_POOL)
    previous = sessions.get(key)
    sessions[key] = _ProbeSession()
    try:
        client.query_message_with_options(
            models.QueryMessageRequest(message_id="globesms-contract-probe"),
            RuntimeOptions(connect_timeout=1, read_timeout=1),
        )
    except Exception as exc:  # the SDK wraps what the session raised
        from ._errors import _chain

        return any(isinstance(inner, _KeyMatched) for inner in _chain(exc))
    finally:
        if previous is None:
            sessions.pop(key, None)
        else:
            sessions[key] = previous
    return False


def _compose_url_builds_url(client: Any) -> bool:
    from darabonba.request import DaraRequest

    request = DaraRequest()
    request.protocol = "http"
    request.headers = {"host": PROBE_ENDPOINT}
    request.pathname = "/"
    request.query = {"MessageId": "probe"}
    url = _dara_core().compose_url(request)
    return isinstance(url, str) and url.startswith(f"http://{PROBE_ENDPOINT}/") and (
        "MessageId=probe" in url
    )


def _endpoint_is_str(client: Any) -> bool:
    return getattr(client, "_endpoint", None) == PROBE_ENDPOINT


def _user_agent_is_ours(client: Any) -> bool:
    agent = getattr(client, "_user_agent", None)
    return isinstance(agent, str) and agent.startswith("globesms/")


def _credential_is_source(client: Any) -> bool:
    return callable(getattr(getattr(client, "_credential", None), "get_credential", None))


def _callable(module: str, owner: str, attribute: str) -> Callable[[Any], bool]:
    def probe(client: Any) -> bool:
        import importlib

        holder = getattr(importlib.import_module(module), owner)
        return callable(getattr(holder, attribute, None))

    return probe


def _dara_request_fields(client: Any) -> bool:
    from darabonba.request import DaraRequest

    request = DaraRequest()
    return all(
        hasattr(request, name) for name in ("protocol", "method", "pathname", "query", "headers")
    )


_SYNC_GUARD = "the sync path's redirect guard and answer tap"
_ASYNC_PATH = "the async transport (pooled aiohttp session signing like the SDK)"
_SIGNING = f"{_ASYNC_PATH}: signing"

#: Every SDK internal globesms relies on. Order is the order doctor prints them in.
INTERNALS: tuple[Internal, ...] = (
    Internal("darabonba.core.DaraCore._sessions", _SYNC_GUARD, _sessions_is_dict),
    Internal("darabonba.core.DaraCore._get_session", _SYNC_GUARD, _get_session_builds_session),
    Internal("darabonba.core.DaraCore._resolve_pool_maxsize / to_number", _SYNC_GUARD,
             _pool_size_resolves),
    Internal("Client._protocol / Client._max_idle_conns", _SYNC_GUARD,
             _client_protocol_and_pool),
    Internal(
        f"darabonba.core.DaraCore session key {SESSION_KEY_FORMAT!r}", _SYNC_GUARD,
        _session_key_matches,
    ),
    Internal("darabonba.core.DaraCore.compose_url", _ASYNC_PATH, _compose_url_builds_url),
    Internal("darabonba.request.DaraRequest fields", _ASYNC_PATH, _dara_request_fields),
    Internal("Client._endpoint", _ASYNC_PATH, _endpoint_is_str),
    Internal("Client._user_agent", _ASYNC_PATH, _user_agent_is_ours),
    Internal("Client._credential", _ASYNC_PATH, _credential_is_source),
    *(
        Internal(
            f"alibabacloud_openapi_util.client.Client.{name}", _ASYNC_PATH,
            _callable("alibabacloud_openapi_util.client", "Client", name),
        )
        for name in ("query", "parse_to_map")
    ),
    *(
        Internal(
            f"alibabacloud_tea_openapi.utils.Utils.{name}", _SIGNING,
            _callable("alibabacloud_tea_openapi.utils", "Utils", name),
        )
        for name in ("get_user_agent", "get_timestamp", "get_nonce", "hash", "get_authorization",
                     "to_form")
    ),
)


def probe_client() -> Any:
    """A real SDK client for the offline probes, built the one way globesms builds clients."""
    from ._client import build_client
    from ._credentials import static_credential
    from ._settings import Settings

    settings = Settings(endpoint=PROBE_ENDPOINT, protocol="http", max_in_flight=_PROBE_POOL)
    client = build_client(settings, static_credential("globesms-probe", "globesms-probe"))
    # build_client may have filed a tapped session under the probe key; the probe sets its own.
    _dara_core()._sessions.pop(session_key("http", PROBE_ENDPOINT, _PROBE_POOL), None)
    return client


def check(internal: Internal, client: Any) -> bool:
    """Whether ``internal`` is present and behaves as relied upon (never raises)."""
    try:
        return bool(internal.probe(client))
    except Exception:  # an import, attribute or signature change: the internal is gone
        return False


def missing_internals(client: Any | None = None) -> list[str]:
    """One message per internal that is gone, naming it; empty when all are present.

    ``client`` is a probe client from :func:`probe_client` (built when not given). Nothing is
    sent: the session-key probe stops the SDK before any connection is opened.
    """
    try:
        probe = client if client is not None else probe_client()
    except Exception as exc:  # the SDK cannot even build a client
        name = type(exc).__name__
        return [f"the SDK client cannot be built ({name}); every internal is unusable"]
    return [internal.message() for internal in INTERNALS if not check(internal, probe)]


_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_once(mechanism: str, internal: str) -> None:
    """Log at WARNING, once per ``mechanism`` per process, that it could not attach.

    ``mechanism`` is what is lost (e.g. ``"redirect guard"``), ``internal`` the SDK internal that
    was missing (a name from :data:`INTERNALS`).
    """
    with _warned_lock:
        if mechanism in _warned:
            return
        _warned.add(mechanism)
    logger.warning(
        "%s cannot attach: SDK internal %s is missing or changed; run `globesms doctor`",
        mechanism, internal,
        extra={"event": INTERNAL_MISSING, "mechanism": mechanism, "internal": internal},
    )


def reset_warnings() -> None:
    """Forget which mechanisms were warned about (tests)."""
    with _warned_lock:
        _warned.clear()
