"""The emulated gateway: routing, signature and gateway checks, faults, then the operation.

Order of processing for each request (the first failure answers):

0. ``/_emulator/...``: the inbox page and its JSON control API (``_control``; not
   signed, not recorded);
1. routing: method GET/POST (else 400 ``UnsupportedHTTPMethod``), path ``/``,
   ``x-acs-action`` one of the six operations and ``x-acs-version: 2018-05-01``
   (else 404 ``InvalidApi.NotFound``);
2. signature (see ``_signature.verify``): ``IncompleteSignature``,
   ``InvalidSignatureMethod``, ``InvalidAccessKeyId.NotFound`` (404),
   ``InvalidTimeStamp.Format``, ``SignatureDoesNotMatch``,
   ``InvalidTimeStamp.Expired``; then, when configured, the STS token
   (400 ``InvalidSecurityToken.Expired``; for a key bound to a token by
   ``sts_tokens``, 400 ``MissingSecurityToken`` without one and 400
   ``InvalidSecurityToken.MismatchWithAccessKey`` with another) and the per-AccessKey QPS limit
   (400 ``Throttling.User`` with ``x-acs-retry-after``); then the nonce
   (``SignatureNonceUsed``);
3. a scripted ``Drop(after_read=False)`` at the head of the queue fires here;
4. body: read, and its SHA-256 compared to ``x-acs-content-sha256``
   (mismatch: 400 ``SignatureDoesNotMatch``); the nonce is then spent; a
   form-encoded body's fields join the query parameters;
5. the outcome: a scripted one, else a magic number's, else a chaos draw;
6. normal handling by the operation (see ``_operations``).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import math
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message

from . import _signature
from ._faults import Chaos, ChaosSettings, magic_outcome
from ._gateway import (
    API_NOT_FOUND,
    INTERNAL_ERROR,
    NONCE_USED,
    SIGNATURE_DOES_NOT_MATCH,
    UNSUPPORTED_METHOD,
    GatewayError,
    Response,
    business_response,
    default_code,
    default_message,
    gateway_response,
    new_request_id,
)
from ._operations import ACTIONS, DEFAULT_MAX_RECORDS, SEND_ACTIONS, Api, Policy, describe
from ._outcomes import Accept, Delay, Drop, HttpError, Outcome, Reply
from ._records import AcceptedMessage, RecordedRequest
from ._server import Exchange

VERSION = "2018-05-01"
ADMIN_PREFIX = "/_emulator/"
REDACTED = "<redacted>"
SECRET_HEADERS = ("authorization", "x-acs-security-token")
_FORM = "application/x-www-form-urlencoded"
_NONCE_MEMORY_S = 2 * _signature.TIMESTAMP_WINDOW_S
INVALID_SECURITY_TOKEN = "InvalidSecurityToken.Expired"  # noqa: S105 - a code; HTTP 400
MISSING_SECURITY_TOKEN = "MissingSecurityToken"  # noqa: S105 - a code; HTTP 400
TOKEN_MISMATCH = "InvalidSecurityToken.MismatchWithAccessKey"  # noqa: S105 - a code; HTTP 400
THROTTLING_USER = "Throttling.User"  # 400


@dataclass(frozen=True)
class GatewayOptions:
    """Checks the gateway makes before an operation runs."""

    security_tokens: frozenset[str] | None = None
    sts_tokens: Mapping[str, str] | None = None
    """AccessKey id -> the STS security token it was issued with."""
    qps: int | None = None
    answer_delay: float = 0.0
    """Seconds every API answer is held back (a provider's latency, for benchmarks)."""


@dataclass
class _Entry:
    """A request record that is filled in as the request is processed."""

    action: str | None
    query: dict[str, str]
    headers: dict[str, str]
    to: str | None
    target: str = ""
    http_status: int | None = None
    code: str | None = None

    def freeze(self) -> RecordedRequest:
        return RecordedRequest(
            action=self.action,
            query=dict(self.query),
            headers=dict(self.headers),
            http_status=self.http_status,
            code=self.code,
            to=self.to,
            target=self.target,
        )


def _header_dict(headers: Message | None) -> dict[str, str]:
    result: dict[str, str] = {}
    if headers is None:
        return result
    for name, value in headers.items():
        key = name.lower()
        result[key] = f"{result[key]},{value}" if key in result else str(value)
    return result


def _is_form(headers: Message) -> bool:
    content_type = str(headers.get("content-type", ""))
    return content_type.split(";", 1)[0].strip().lower() == _FORM


class Backend:
    """State and request handling behind one emulator; safe to call from many threads."""

    def __init__(
        self,
        access_keys: Mapping[str, str],
        clock: Callable[[], float],
        *,
        policy: Policy | None = None,
        options: GatewayOptions | None = None,
        max_records: int = DEFAULT_MAX_RECORDS,
    ) -> None:
        self.access_keys = dict(access_keys)
        self.clock = clock
        self.options = options or GatewayOptions()
        self.api = Api(policy or Policy(), clock, max_records=max_records)
        self.control: Callable[[Exchange], Response] | None = None
        """Answers the ``/_emulator`` paths (the inbox and its JSON API); set by the Emulator."""
        self._max_records = max_records
        self._request_count = 0
        self.host_id = "127.0.0.1"
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._in_flight = 0
        self._peak_in_flight = 0
        self._entries: deque[_Entry] = deque()
        self._scripts: dict[str | None, deque[Outcome]] = {}
        self._nonces: dict[str, float] = {}
        self._magic_attempts: dict[str, int] = {}
        self._chaos: Chaos | None = None
        self._calls: dict[str, deque[float]] = {}

    # -- state, for the facade -------------------------------------------------------

    def messages(self) -> list[AcceptedMessage]:
        return self.api.messages()

    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [entry.freeze() for entry in self._entries]

    def script(self, to: str | None, outcomes: tuple[Outcome, ...]) -> None:
        with self._lock:
            self._scripts.setdefault(to, deque()).extend(outcomes)

    def scripts(self) -> dict[str | None, list[Outcome]]:
        """The outcomes still queued, per recipient (None: the global queue)."""
        with self._lock:
            return {to: list(queue) for to, queue in self._scripts.items() if queue}

    def clear_scripts(self) -> None:
        with self._lock:
            self._scripts.clear()

    def set_chaos(self, settings: ChaosSettings | None) -> None:
        with self._lock:
            self._chaos = Chaos(settings) if settings is not None and settings.active else None

    def chaos_settings(self) -> ChaosSettings | None:
        with self._lock:
            return self._chaos.settings if self._chaos is not None else None

    def clear_requests(self) -> None:
        with self._lock:
            self._entries.clear()
            self._request_count = 0

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()
            self._request_count = 0
            self._scripts.clear()
            self._nonces.clear()
            self._magic_attempts.clear()
            self._calls.clear()
            self._chaos = None
            self._peak_in_flight = self._in_flight
        self.api.reset()

    # -- the server's entry points -----------------------------------------------------

    def protocol_error(
        self,
        status: int,
        message: str,
        method: str | None,
        target: str | None,
        headers: Message | None,
    ) -> Response:
        pairs = _signature.parse_query(target.partition("?")[2]) if target else []
        entry = self._open(headers, dict(pairs), target or "")
        response = gateway_response(status, default_code(status), message, host_id=self.host_id)
        self._finish(entry, response)
        self._leave()
        return response

    def handle(self, exchange: Exchange) -> Response | None:
        if exchange.path.startswith(ADMIN_PREFIX) or exchange.path == ADMIN_PREFIX.rstrip("/"):
            if self.control is None:
                return gateway_response(
                    404, "NotFound", "No control API on this server.", host_id=self.host_id
                )
            return self.control(exchange)
        pairs = _signature.parse_query(exchange.raw_query)
        query = dict(pairs)
        entry = self._open(exchange.headers, query, exchange.target)
        try:
            response = self._answer(exchange, pairs, entry)
            if self.options.answer_delay > 0:
                self.closing.wait(self.options.answer_delay)
            return response
        finally:
            self._leave()

    def _answer(
        self, exchange: Exchange, pairs: list[tuple[str, str]], entry: _Entry
    ) -> Response | None:
        try:
            response = self._process(exchange, pairs, entry)
        except GatewayError as error:
            exchange.must_close = exchange.must_close or error.close
            response = gateway_response(
                error.status,
                error.code,
                error.message,
                host_id=self.host_id,
                extra_headers=error.headers,
            )
        except OSError:
            raise  # the connection broke: recorded as unanswered
        except Exception as error:  # a bug here must not look like a network drop
            response = gateway_response(
                500,
                INTERNAL_ERROR,
                f"The emulator failed: {type(error).__name__}.",
                host_id=self.host_id,
            )
        self._finish(entry, response)
        return response

    # -- internals -------------------------------------------------------------------

    def _open(self, headers: Message | None, query: dict[str, str], target: str) -> _Entry:
        header_map = _header_dict(headers)
        entry = _Entry(
            action=header_map.get("x-acs-action"),
            query=query,
            headers=header_map,
            to=query.get("To"),
            target=target,
        )
        with self._lock:
            self._entries.append(entry)
            self._request_count += 1
            while len(self._entries) > self._max_records:
                self._entries.popleft()
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
            self._arrived.notify_all()
        return entry

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def wait_for_requests(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` requests arrived; False when ``timeout`` ran out."""
        with self._arrived:
            return self._arrived.wait_for(lambda: self._request_count >= count, timeout)

    def peak_in_flight(self) -> int:
        with self._lock:
            return self._peak_in_flight

    def _finish(self, entry: _Entry, response: Response | None) -> None:
        if response is not None:
            with self._lock:
                entry.http_status = response.status
                entry.code = response.code

    def _process(
        self, exchange: Exchange, pairs: list[tuple[str, str]], entry: _Entry
    ) -> Response | None:
        action = self._route(exchange)
        verified = _signature.verify(
            method=exchange.method,
            path=exchange.path,
            pairs=pairs,
            headers=exchange.headers,
            access_keys=self.access_keys,
            now=self.clock(),
        )
        self._check_token(exchange.headers, verified.access_key_id)
        to = entry.query.get("To")
        with self._lock:
            self._check_nonce(verified.nonce)
            self._check_rate(verified.access_key_id)
            head = self._peek(to)
            if isinstance(head, Drop) and not head.after_read:
                self._take(to)
                self._spend_nonce(verified.nonce)
                exchange.must_close = True
                return None
        body = exchange.read_body()
        if hashlib.sha256(body).hexdigest() != verified.content_sha256:
            raise GatewayError(
                400,
                SIGNATURE_DOES_NOT_MATCH,
                "x-acs-content-sha256 does not match the SHA-256 of the request body.",
            )
        params = dict(entry.query)
        if body and _is_form(exchange.headers):
            form = dict(_signature.parse_query(body.decode("utf-8", "replace")))
            params.update(form)
            with self._lock:
                entry.query.update(form)
        with self._lock:
            self._check_nonce(verified.nonce)
            self._spend_nonce(verified.nonce)
            outcome = self._take(to)
            if outcome is None and action in SEND_ACTIONS:
                outcome = self._magic(to)
            if outcome is None and self._chaos is not None:
                outcome = self._chaos.draw()
        return self._apply(outcome or Accept(), action, params)

    def _route(self, exchange: Exchange) -> str:
        if exchange.method not in ("GET", "POST"):
            raise GatewayError(
                400,
                UNSUPPORTED_METHOD,
                f"HTTP method {exchange.method} is not supported.",
                close=True,
            )
        action = exchange.headers.get("x-acs-action")
        version = exchange.headers.get("x-acs-version")
        if exchange.path != "/" or action not in ACTIONS or version != VERSION:
            raise GatewayError(
                404,
                API_NOT_FOUND,
                "Specified api is not found: the emulator serves the Dysmsapi"
                f" {VERSION} operations {', '.join(sorted(ACTIONS))} (RPC style, POST /).",
            )
        return str(action)

    def _check_token(self, headers: Message, key_id: str) -> None:
        token = headers.get("x-acs-security-token")
        bound = (self.options.sts_tokens or {}).get(key_id)
        if bound is not None:
            # A temporary AccessKey is only valid together with the token it was issued with.
            if token is None or not token.strip():
                raise GatewayError(
                    400, MISSING_SECURITY_TOKEN, "SecurityToken is mandatory for this action."
                )
            if not hmac.compare_digest(token.strip().encode(), bound.encode()):
                raise GatewayError(
                    400, TOKEN_MISMATCH, "Specified SecurityToken mismatch with the AccessKey."
                )
            return
        allowed = self.options.security_tokens
        if allowed is not None and token is not None and token.strip() not in allowed:
            raise GatewayError(
                400, INVALID_SECURITY_TOKEN, "Specified SecurityToken is expired or invalid."
            )

    def _check_rate(self, key_id: str) -> None:
        """Sliding one-second window per AccessKey id; call with the lock held."""
        limit = self.options.qps
        if limit is None:
            return
        now = self.clock()
        calls = self._calls.setdefault(key_id, deque())
        while calls and now - calls[0] >= 1.0:
            calls.popleft()
        if len(calls) >= limit:
            wait_ms = max(1, math.ceil((calls[0] + 1.0 - now) * 1000))
            raise GatewayError(
                400,
                THROTTLING_USER,
                "Request was denied due to user flow control.",
                headers=(("x-acs-retry-after", str(wait_ms)),),
            )
        calls.append(now)

    def _check_nonce(self, nonce: str) -> None:
        seen = self._nonces.get(nonce)
        if seen is not None and self.clock() - seen <= _NONCE_MEMORY_S:
            raise GatewayError(400, NONCE_USED, "Specified signature nonce was used already.")

    def _spend_nonce(self, nonce: str) -> None:
        now = self.clock()
        self._nonces.pop(nonce, None)
        self._nonces[nonce] = now
        # Insertion order is time order: forget expired nonces from the front, O(1) per request.
        for key in list(itertools.islice(self._nonces, 64)):
            if now - self._nonces[key] <= _NONCE_MEMORY_S:
                break
            del self._nonces[key]

    def _magic(self, to: str | None) -> Outcome | None:
        if to is None:
            return None
        attempt = self._magic_attempts.get(to, 0)
        outcome = magic_outcome(to, attempt)
        if outcome is not None or attempt:
            self._magic_attempts[to] = attempt + 1
        return outcome

    def _queue_for(self, to: str | None) -> deque[Outcome] | None:
        own = self._scripts.get(to) if to is not None else None
        if own:
            return own
        shared = self._scripts.get(None)
        return shared if shared else None

    def _peek(self, to: str | None) -> Outcome | None:
        queue = self._queue_for(to)
        return queue[0] if queue else None

    def _take(self, to: str | None) -> Outcome | None:
        queue = self._queue_for(to)
        return queue.popleft() if queue else None

    def _apply(self, outcome: Outcome, action: str, params: dict[str, str]) -> Response | None:
        while isinstance(outcome, Delay):
            if self.closing.wait(outcome.seconds):
                return None
            outcome = outcome.then or Accept()
        if isinstance(outcome, Drop):
            return None
        if isinstance(outcome, HttpError):
            return self._http_error(outcome)
        if isinstance(outcome, Reply) and outcome.code != "OK":
            description = outcome.description or describe(outcome.code)
            return business_response(outcome.code, description, params.get("To"))
        return self.api.handle(action, params)

    def _http_error(self, outcome: HttpError) -> Response:
        code = outcome.code or default_code(outcome.status)
        headers: list[tuple[str, str]] = []
        if outcome.retry_after_ms is not None:
            headers.append(("x-acs-retry-after", str(outcome.retry_after_ms)))
        if outcome.retry_after_s is not None:
            headers.append(("Retry-After", str(outcome.retry_after_s)))
        if outcome.body is None:
            return gateway_response(
                outcome.status,
                code,
                outcome.message or default_message(outcome.status),
                host_id=self.host_id,
                extra_headers=tuple(headers),
            )
        return Response(
            status=outcome.status,
            body=outcome.body.encode("utf-8"),
            content_type=outcome.content_type,
            extra_headers=tuple(headers),
            request_id=new_request_id(),
            code=code,
        )
