"""The SMS inbox: an HTML page and a JSON control API under ``/_emulator/``.

These paths are not signed and not recorded. Bound to a loopback address they
are open (and only answer a loopback ``Host``, against DNS rebinding); bound to
any other address they need the admin token, as an ``X-Emulator-Token`` header,
``Authorization: Bearer <token>`` or the cookie the login form sets. Requests
with a body must send ``Content-Type: application/json`` (the login form aside),
which a cross-site form cannot. See ``docs/inbox.md`` for the table of paths.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import json
from collections.abc import Callable, Iterator, Mapping
from http.cookies import CookieError, SimpleCookie
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, quote

from . import _signature
from ._backend import ADMIN_PREFIX, REDACTED, SECRET_HEADERS, Backend
from ._codes import find_code
from ._faults import ChaosSettings
from ._gateway import GatewayError, Response, json_body
from ._operations import DELIVERY_STATUSES, DeliveryRule
from ._outcomes import OUTCOME_TYPES, Delay, Outcome
from ._records import AcceptedMessage
from ._segments import is_gsm7

COOKIE = "globesms_emulator_token"
TOKEN_HEADER = "x-emulator-token"  # noqa: S105 - a header name
HEARTBEAT_S = 15.0
"""An idle event stream sends a comment this often (it also finds closed connections)."""
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_STATIC = {
    "": ("inbox.html", "text/html; charset=utf-8"),
    "inbox.css": ("inbox.css", "text/css; charset=utf-8"),
    "inbox.js": ("inbox.js", "text/javascript; charset=utf-8"),
}
_SECURITY_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
        " img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
)
_OUTCOMES_BY_NAME: dict[str, type[Outcome]] = {kind.__name__: kind for kind in OUTCOME_TYPES}


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def digits(number: str) -> str:
    """A number as the emulator stores it: ASCII digits only (``+44 7700 900123`` -> 447...)."""
    return "".join(ch for ch in number if ch in "0123456789")


def message_json(message: AcceptedMessage, delivery: DeliveryRule) -> dict[str, object]:
    """A message as the control API shows it: its fields plus encoding, code and delivery."""
    data = dataclasses.asdict(message)
    found = find_code(message.message)
    data["encoding"] = "GSM-7" if is_gsm7(message.message) else "UCS-2"
    data["code"] = found[0] if found is not None else None
    data["code_at"] = found[1] if found is not None else None
    data["delivery"] = {
        "status": delivery.status,
        "error_code": delivery.error_code,
        "description": delivery.description,
    }
    return data


def outcome_json(outcome: Outcome) -> dict[str, object]:
    """An outcome in the control API's vocabulary: ``{"type": "Reply", "code": ...}``."""
    data: dict[str, object] = {"type": type(outcome).__name__}
    for item in dataclasses.fields(outcome):
        value = getattr(outcome, item.name)
        data[item.name] = outcome_json(value) if isinstance(value, OUTCOME_TYPES) else value
    return data


def outcome_from_json(data: object) -> Outcome:
    """Build an outcome from ``{"type": "<class name>", <its fields>}``; ValueError if unusable."""
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ValueError('each outcome is an object with a "type": one of ' + _kinds())
    fields = dict(data)
    kind = _OUTCOMES_BY_NAME.get(str(fields.pop("type")))
    if kind is None:
        raise ValueError(f"unknown outcome type; use one of {_kinds()}")
    if kind is Delay and fields.get("then") is not None:
        fields["then"] = outcome_from_json(fields["then"])
    names = {item.name for item in dataclasses.fields(kind)}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise ValueError(f"{kind.__name__} has no field {unknown[0]!r}; fields: {sorted(names)}")
    try:
        return kind(**fields)
    except (TypeError, ValueError) as error:
        raise ValueError(str(error)) from None


def _kinds() -> str:
    return ", ".join(sorted(_OUTCOMES_BY_NAME))


class Control:
    """Answers every ``/_emulator`` request for one emulator."""

    def __init__(
        self,
        backend: Backend,
        *,
        token: str | None,
        loopback: bool,
        set_message_delivery: Callable[[str, str, str | None, str | None], bool],
        set_delivery: Callable[[str | None, str, str | None, str | None], None],
        chaos: Callable[..., None],
        reset: Callable[[], None],
    ) -> None:
        self.backend = backend
        self.token = token
        self.loopback = loopback
        self._set_message_delivery = set_message_delivery
        self._set_delivery = set_delivery
        self._chaos = chaos
        self._reset = reset
        self._static: dict[str, bytes] = {}

    # -- entry -----------------------------------------------------------------------------

    def __call__(self, exchange: Any) -> Response:
        path = exchange.path
        if path == ADMIN_PREFIX.rstrip("/"):
            return _redirect(ADMIN_PREFIX)
        rest = path[len(ADMIN_PREFIX):].strip("/")
        method = exchange.method
        try:
            if not self._host_allowed(exchange.headers.get("host")):
                raise _ApiError(403, "Forbidden", "Use 127.0.0.1 or localhost in the address.")
            if rest == "login":
                return self._login(exchange)
            if rest in ("inbox.css", "inbox.js") and method in ("GET", "HEAD"):
                name, content_type = _STATIC[rest]  # public: the login form uses the styles
                return self._page(name, content_type=content_type)
            if not self._authorized(exchange.headers):
                if rest in _STATIC and method in ("GET", "HEAD"):
                    return self._page("login.html", status=401)
                raise _ApiError(
                    401, "Unauthorized",
                    "Send the admin token as X-Emulator-Token (or sign in at /_emulator/login).",
                )
            if rest in _STATIC and method in ("GET", "HEAD"):
                name, content_type = _STATIC[rest]
                return self._page(name, content_type=content_type)
            return self._route(method, rest.split("/"), exchange)
        except _ApiError as error:
            return _json({"error": error.code, "message": error.message}, error.status)
        except GatewayError as error:
            return _json({"error": error.code, "message": error.message}, error.status)

    # -- safety ----------------------------------------------------------------------------

    def _host_allowed(self, host: str | None) -> bool:
        if not self.loopback or self.token is not None:
            return True
        if host is None:
            return False
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name.strip("[]").lower() in _LOOPBACK_HOSTS

    def _authorized(self, headers: Any) -> bool:
        if self.token is None:
            return True
        expected = self.token.encode()
        candidates: list[str] = []
        header = headers.get(TOKEN_HEADER)
        if header:
            candidates.append(header.strip())
        authorization = headers.get("authorization") or ""
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value:
            candidates.append(value.strip())
        cookie_text = headers.get("cookie")
        if cookie_text:
            cookies: SimpleCookie = SimpleCookie()
            with contextlib.suppress(CookieError):
                cookies.load(cookie_text)
            if COOKIE in cookies:
                candidates.append(cookies[COOKIE].value)
        return any(hmac.compare_digest(c.encode(), expected) for c in candidates)

    def _login(self, exchange: Any) -> Response:
        if exchange.method in ("GET", "HEAD"):
            return self._page("login.html")
        if exchange.method != "POST":
            raise _ApiError(405, "MethodNotAllowed", "Use GET or POST for /_emulator/login.")
        form = dict(parse_qsl(exchange.read_body().decode("utf-8", "replace")))
        supplied = form.get("token", "")
        if self.token is None or not hmac.compare_digest(supplied.encode(), self.token.encode()):
            return self._page("login.html", status=401)
        cookie = f"{COOKIE}={quote(self.token)}; Path={ADMIN_PREFIX}; HttpOnly; SameSite=Strict"
        return Response(
            status=303, body=b"", content_type="text/plain; charset=utf-8",
            extra_headers=(("Location", ADMIN_PREFIX), ("Set-Cookie", cookie), *_SECURITY_HEADERS),
        )

    def _page(
        self, name: str, *, status: int = 200, content_type: str = "text/html; charset=utf-8"
    ) -> Response:
        body = self._static.get(name)
        if body is None:
            body = resources.files(__package__).joinpath("static").joinpath(name).read_bytes()
            self._static[name] = body
        return Response(
            status=status, body=body, content_type=content_type, extra_headers=_SECURITY_HEADERS
        )

    # -- routes ----------------------------------------------------------------------------

    def _route(self, method: str, parts: list[str], exchange: Any) -> Response:
        query = dict(_signature.parse_query(exchange.raw_query))
        head = parts[0]
        if head == "events" and len(parts) == 1:
            if method != "GET":
                raise _ApiError(405, "MethodNotAllowed", "This path answers GET only.")
            return Response(
                status=200, body=b"", content_type="text/event-stream; charset=utf-8",
                extra_headers=_SECURITY_HEADERS, stream=self._events(),
            )
        if head == "messages":
            return self._messages(method, parts[1:], query, exchange)
        if head == "codes" and parts[1:] == ["latest"]:
            _allow(method, "GET")
            message = self._latest(query.get("to"), with_code=True)
            found = find_code(message.message)
            assert found is not None
            return _json({"to": message.to, "code": found[0], "message_id": message.message_id})
        if head == "requests" and len(parts) == 1:
            if method == "DELETE":
                self.backend.clear_requests()
                return _json({"cleared": "requests"})
            _allow(method, "GET")
            return _json({"requests": self._requests(query)})
        if head in ("conversions", "conversion-reports") and len(parts) == 1:
            _allow(method, "GET")
            records = (
                self.backend.api.conversions() if head == "conversions"
                else self.backend.api.reports()
            )
            return _json({head: [dataclasses.asdict(record) for record in records]})
        if head == "scripts" and len(parts) == 1:
            return self._scripts(method, exchange)
        if head == "chaos" and len(parts) == 1:
            return self._chaos_route(method, exchange)
        if head == "delivery" and len(parts) == 1:
            return self._delivery(method, exchange)
        if head == "reset" and len(parts) == 1:
            _allow(method, "POST")
            self._reset()
            return _json({"reset": True})
        raise _ApiError(404, "NotFound", "Unknown path; see docs/inbox.md for the table.")

    def _messages(
        self, method: str, parts: list[str], query: Mapping[str, str], exchange: Any
    ) -> Response:
        api = self.backend.api
        if not parts:
            if method == "DELETE":
                api.clear_messages()
                return _json({"cleared": "messages"})
            _allow(method, "GET")
            messages = _filtered(api.messages(), query)
            return _json({"messages": [message_json(m, api.delivery_of(m)) for m in messages]})
        if parts == ["latest"]:
            _allow(method, "GET")
            message = self._latest(query.get("to"), with_code=False)
            return _json({"message": message_json(message, api.delivery_of(message))})
        kept = api.message(parts[0])
        if kept is None:
            raise _ApiError(404, "NotFound", "No kept message has this id.")
        message = kept
        if len(parts) == 1:
            _allow(method, "GET")
            return _json({"message": message_json(message, api.delivery_of(message))})
        if parts[1:] == ["delivery"]:
            _allow(method, "PUT", "POST")
            body = _json_body(exchange)
            status, error_code, description = _rule_fields(body)
            self._set_message_delivery(message.message_id, status, error_code, description)
            return _json({"message": message_json(message, api.delivery_of(message))})
        raise _ApiError(404, "NotFound", "Unknown path; see docs/inbox.md for the table.")

    def _latest(self, to: str | None, *, with_code: bool) -> AcceptedMessage:
        wanted = digits(to) if to else None
        for message in reversed(self.backend.api.messages()):
            if wanted is not None and message.to != wanted:
                continue
            if with_code and find_code(message.message) is None:
                continue
            return message
        what = "code" if with_code else "message"
        raise _ApiError(404, "NotFound", f"No {what} for this number yet.")

    def _requests(self, query: Mapping[str, str]) -> list[dict[str, object]]:
        records = []
        for request in _limited(self.backend.requests(), query):
            data = dataclasses.asdict(request)
            headers = dict(request.headers)
            for name in SECRET_HEADERS:
                if name in headers:
                    headers[name] = REDACTED
            data["headers"] = headers
            records.append(data)
        return records

    def _scripts(self, method: str, exchange: Any) -> Response:
        if method == "DELETE":
            self.backend.clear_scripts()
            return _json({"cleared": "scripts"})
        if method in ("POST", "PUT"):
            body = _json_body(exchange)
            to = body.get("to")
            if to is not None and (not isinstance(to, str) or not digits(to)):
                raise _ApiError(400, "InvalidParameter", '"to" is a number, or null for any')
            raw = body.get("outcomes")
            if not isinstance(raw, list) or not raw:
                raise _ApiError(400, "InvalidParameter", '"outcomes" is a non-empty list')
            try:
                outcomes = tuple(outcome_from_json(item) for item in raw)
            except ValueError as error:
                raise _ApiError(400, "InvalidParameter", str(error)) from None
            self.backend.script(digits(to) if to is not None else None, outcomes)
        else:
            _allow(method, "GET")
        queued = self.backend.scripts()
        return _json(
            {
                "scripts": [
                    {"to": to, "outcomes": [outcome_json(outcome) for outcome in outcomes]}
                    for to, outcomes in queued.items()
                ]
            }
        )

    def _chaos_route(self, method: str, exchange: Any) -> Response:
        if method == "DELETE":
            self._chaos()
        elif method in ("POST", "PUT"):
            body = dict(_json_body(exchange))
            delay = body.get("delay")
            if isinstance(delay, list):
                body["delay"] = tuple(delay)
            allowed = {item.name for item in dataclasses.fields(ChaosSettings)}
            unknown = sorted(set(body) - allowed)
            if unknown:
                raise _ApiError(
                    400, "InvalidParameter",
                    f"unknown chaos setting {unknown[0]!r}; known: {sorted(allowed)}",
                )
            try:
                self._chaos(**body)
            except (TypeError, ValueError) as error:
                raise _ApiError(400, "InvalidParameter", str(error)) from None
        else:
            _allow(method, "GET")
        settings = self.backend.chaos_settings()
        return _json({"chaos": dataclasses.asdict(settings) if settings is not None else None})

    def _delivery(self, method: str, exchange: Any) -> Response:
        api = self.backend.api
        if method == "DELETE":
            api.clear_delivery()
        elif method in ("POST", "PUT"):
            body = _json_body(exchange)
            to = body.get("to")
            if to is not None and (not isinstance(to, str) or not digits(to)):
                raise _ApiError(400, "InvalidParameter", '"to" is a number, or null for every one')
            status, error_code, description = _rule_fields(body)
            self._set_delivery(
                digits(to) if to is not None else None, status, error_code, description
            )
        else:
            _allow(method, "GET")
        rules = [
            {"to": to, "status": rule.status, "error_code": rule.error_code,
             "description": rule.description}
            for to, rule in api.delivery_rules().items()
        ]
        return _json({"rules": rules})

    # -- live updates ----------------------------------------------------------------------

    def _events(self) -> Iterator[bytes]:
        """``change`` events carrying the state version; the page refetches on each."""
        changes = self.backend.api.changes
        seen = changes.version
        yield f"retry: 1000\nevent: change\ndata: {seen}\n\n".encode()
        while True:
            version = changes.wait(seen, HEARTBEAT_S)
            if version is None:
                return
            if version == seen:
                yield b": keep-alive\n\n"
                continue
            seen = version
            yield f"event: change\ndata: {seen}\n\n".encode()


# -- helpers -----------------------------------------------------------------------------


def _json(payload: dict[str, object], status: int = 200) -> Response:
    return Response(status=status, body=json_body(payload), extra_headers=(
        ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
    ))


def _redirect(location: str) -> Response:
    return Response(
        status=308, body=b"", content_type="text/plain; charset=utf-8",
        extra_headers=(("Location", location),),
    )


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed and not (method == "HEAD" and "GET" in allowed):
        raise _ApiError(
            405, "MethodNotAllowed", f"This path answers {', '.join(allowed)} only."
        )


def _json_body(exchange: Any) -> dict[str, Any]:
    content_type = str(exchange.headers.get("content-type", "")).split(";", 1)[0].strip()
    if content_type.lower() != "application/json":
        raise _ApiError(415, "UnsupportedMediaType", "Send the body as application/json.")
    try:
        data = json.loads(exchange.read_body() or b"{}")
    except ValueError:
        raise _ApiError(400, "InvalidJSON", "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise _ApiError(400, "InvalidJSON", "The body must be a JSON object.")
    return data


def _rule_fields(body: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
    status = body.get("status")
    if status not in DELIVERY_STATUSES:
        raise _ApiError(
            400, "InvalidParameter", f'"status" is one of {", ".join(sorted(DELIVERY_STATUSES))}'
        )
    error_code = body.get("error_code")
    description = body.get("description")
    for name, value in (("error_code", error_code), ("description", description)):
        if value is not None and (not isinstance(value, str) or not value):
            raise _ApiError(400, "InvalidParameter", f'"{name}" is a non-empty string or null')
    return str(status), error_code, description


def _limit(query: Mapping[str, str]) -> int | None:
    text = query.get("limit")
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise _ApiError(400, "InvalidParameter", '"limit" is a positive integer')
    return int(text)


def _limited(records: list[Any], query: Mapping[str, str]) -> list[Any]:
    limit = _limit(query)
    return records[-limit:] if limit is not None else records


def _filtered(messages: list[AcceptedMessage], query: Mapping[str, str]) -> list[AcceptedMessage]:
    """Oldest first, filtered by ``to`` (the number) and ``q`` (number or text contains)."""
    to = query.get("to")
    if to is not None:
        wanted = digits(to)
        messages = [m for m in messages if m.to == wanted]
    text = query.get("q")
    if text:
        needle = text.casefold()
        number = digits(text)
        messages = [
            m for m in messages
            if needle in m.message.casefold() or (number and number in m.to)
        ]
    return _limited(messages, query)

