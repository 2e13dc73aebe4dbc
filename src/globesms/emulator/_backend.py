"""The emulated API: gateway checks, scripted outcomes, SendMessageToGlobe, and the records.

Order of processing for each request (the first failure answers):

1. routing: method GET/POST (else 400 ``UnsupportedHTTPMethod``), path ``/``,
   ``x-acs-action: SendMessageToGlobe`` and ``x-acs-version: 2018-05-01``
   (else 404 ``InvalidApi.NotFound``);
2. signature (see ``_signature.verify``): ``IncompleteSignature``,
   ``InvalidSignatureMethod``, ``InvalidAccessKeyId.NotFound`` (404),
   ``InvalidTimeStamp.Format``, ``SignatureDoesNotMatch``,
   ``InvalidTimeStamp.Expired``, then the nonce (``SignatureNonceUsed``);
3. a scripted ``Drop(after_read=False)`` at the head of the queue fires here;
4. body: read, and its SHA-256 compared to ``x-acs-content-sha256``
   (mismatch: 400 ``SignatureDoesNotMatch``); the nonce is then spent;
5. the next scripted outcome, if any, is taken and applied;
6. normal handling: 400 ``MissingTo`` / ``MissingMessage``, then business
   checks answered with HTTP 200 and a non-``OK`` ``ResponseCode``, then
   acceptance.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message

from . import _signature
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
    json_body,
    new_request_id,
)
from ._numbers import check_number, describe_number
from ._outcomes import Accept, Delay, Drop, HttpError, Outcome, Reply
from ._records import AcceptedMessage, RecordedRequest
from ._segments import count_segments
from ._server import Exchange

ACTION = "SendMessageToGlobe"
VERSION = "2018-05-01"
MESSAGE_TYPES = frozenset({"OTP", "NOTIFY", "MKT"})
INVALID_PARAMETERS = "INVALID_PARAMETERS"

_DESCRIPTIONS = {
    "OK": "The SMS Send Request was accepted",
    "MOBILE_NUMBER_ILLEGAL": "The mobile number is not a valid international number",
    "NOT_SUPPORTED_COUNTRY": "Chinese mainland numbers are not supported by this operation",
    "SYSTEM_ERROR": "System error, please try again later",
}
_NONCE_MEMORY_S = 2 * _signature.TIMESTAMP_WINDOW_S


@dataclass
class _Entry:
    """A request record that is filled in as the request is processed."""

    action: str | None
    query: dict[str, str]
    headers: dict[str, str]
    to: str | None
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
        )


def _header_dict(headers: Message | None) -> dict[str, str]:
    result: dict[str, str] = {}
    if headers is None:
        return result
    for name, value in headers.items():
        key = name.lower()
        result[key] = f"{result[key]},{value}" if key in result else str(value)
    return result


class Backend:
    """State and request handling behind one emulator; safe to call from many threads."""

    def __init__(self, access_keys: Mapping[str, str], clock: Callable[[], float]) -> None:
        self.access_keys = dict(access_keys)
        self.clock = clock
        self.host_id = "127.0.0.1"
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._messages: list[AcceptedMessage] = []
        self._entries: list[_Entry] = []
        self._scripts: dict[str | None, deque[Outcome]] = {}
        self._nonces: dict[str, float] = {}

    # -- state, for the facade -------------------------------------------------------

    def messages(self) -> list[AcceptedMessage]:
        with self._lock:
            return list(self._messages)

    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [entry.freeze() for entry in self._entries]

    def script(self, to: str | None, outcomes: tuple[Outcome, ...]) -> None:
        with self._lock:
            self._scripts.setdefault(to, deque()).extend(outcomes)

    def reset(self) -> None:
        with self._lock:
            self._messages.clear()
            self._entries.clear()
            self._scripts.clear()
            self._nonces.clear()

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
        entry = self._open(headers, dict(pairs))
        response = gateway_response(status, default_code(status), message, host_id=self.host_id)
        self._finish(entry, response)
        return response

    def handle(self, exchange: Exchange) -> Response | None:
        pairs = _signature.parse_query(exchange.raw_query)
        query = dict(pairs)
        entry = self._open(exchange.headers, query)
        try:
            response = self._process(exchange, pairs, query)
        except GatewayError as error:
            exchange.must_close = exchange.must_close or error.close
            response = gateway_response(
                error.status, error.code, error.message, host_id=self.host_id
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

    def _open(self, headers: Message | None, query: dict[str, str]) -> _Entry:
        header_map = _header_dict(headers)
        entry = _Entry(
            action=header_map.get("x-acs-action"),
            query=query,
            headers=header_map,
            to=query.get("To"),
        )
        with self._lock:
            self._entries.append(entry)
        return entry

    def _finish(self, entry: _Entry, response: Response | None) -> None:
        if response is not None:
            with self._lock:
                entry.http_status = response.status
                entry.code = response.code

    def _process(
        self, exchange: Exchange, pairs: list[tuple[str, str]], query: dict[str, str]
    ) -> Response | None:
        self._route(exchange)
        verified = _signature.verify(
            method=exchange.method,
            path=exchange.path,
            pairs=pairs,
            headers=exchange.headers,
            access_keys=self.access_keys,
            now=self.clock(),
        )
        to = query.get("To")
        with self._lock:
            self._check_nonce(verified.nonce)
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
        with self._lock:
            self._check_nonce(verified.nonce)
            self._spend_nonce(verified.nonce)
            outcome = self._take(to)
        return self._apply(outcome or Accept(), query)

    def _route(self, exchange: Exchange) -> None:
        if exchange.method not in ("GET", "POST"):
            raise GatewayError(
                400,
                UNSUPPORTED_METHOD,
                f"HTTP method {exchange.method} is not supported.",
                close=True,
            )
        action = exchange.headers.get("x-acs-action")
        version = exchange.headers.get("x-acs-version")
        if exchange.path != "/" or action != ACTION or version != VERSION:
            raise GatewayError(
                404,
                API_NOT_FOUND,
                f"Specified api is not found: the emulator serves only {ACTION} {VERSION}"
                " (RPC style, POST /).",
            )

    def _check_nonce(self, nonce: str) -> None:
        seen = self._nonces.get(nonce)
        if seen is not None and self.clock() - seen <= _NONCE_MEMORY_S:
            raise GatewayError(400, NONCE_USED, "Specified signature nonce was used already.")

    def _spend_nonce(self, nonce: str) -> None:
        now = self.clock()
        self._nonces[nonce] = now
        if len(self._nonces) > 1024:
            self._nonces = {
                key: seen for key, seen in self._nonces.items() if now - seen <= _NONCE_MEMORY_S
            }

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

    def _apply(self, outcome: Outcome, query: dict[str, str]) -> Response | None:
        while isinstance(outcome, Delay):
            if self.closing.wait(outcome.seconds):
                return None
            outcome = outcome.then or Accept()
        if isinstance(outcome, Drop):
            return None
        if isinstance(outcome, HttpError):
            return self._http_error(outcome)
        if isinstance(outcome, Reply) and outcome.code != "OK":
            description = outcome.description or _DESCRIPTIONS.get(outcome.code, outcome.code)
            return business_response(outcome.code, description, query.get("To"))
        return self._send_message(query)

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

    def _send_message(self, query: dict[str, str]) -> Response:
        to = query.get("To")
        if not to:
            raise GatewayError(400, "MissingTo", "To is mandatory for this action.")
        text = query.get("Message")
        if not text:
            raise GatewayError(400, "MissingMessage", "Message is mandatory for this action.")
        number_error = check_number(to)
        if number_error is not None:
            return business_response(number_error, _DESCRIPTIONS[number_error], to)
        message_type = query.get("Type")
        if message_type is not None and message_type not in MESSAGE_TYPES:
            return business_response(INVALID_PARAMETERS, "Type must be one of OTP, NOTIFY, MKT", to)
        validity_text = query.get("ValidityPeriod")
        validity: int | None = None
        if validity_text is not None:
            if not (validity_text.isascii() and validity_text.isdigit()) or int(validity_text) < 1:
                return business_response(
                    INVALID_PARAMETERS, "ValidityPeriod must be a positive number of seconds", to
                )
            validity = int(validity_text)
        detail = describe_number(to)
        request_id = new_request_id()
        accepted = AcceptedMessage(
            to=to,
            message=text,
            sender=query.get("From"),
            message_type=message_type,
            task_id=query.get("TaskId"),
            validity_period=validity,
            channel_id=query.get("ChannelId"),
            message_id=f"{secrets.randbits(63):019d}0",
            request_id=request_id,
            segments=count_segments(text),
            country=detail.country,
            region=detail.region,
            carrier=detail.carrier,
        )
        with self._lock:
            self._messages.append(accepted)
        payload: dict[str, object] = {
            "RequestId": request_id,
            "ResponseCode": "OK",
            "ResponseDescription": _DESCRIPTIONS["OK"],
            "Segments": str(accepted.segments),
            "To": to,
            "MessageId": accepted.message_id,
            "NumberDetail": {
                "Country": detail.country,
                "Region": detail.region,
                "Carrier": detail.carrier,
            },
        }
        if accepted.sender is not None:
            payload["From"] = accepted.sender
        return Response(status=200, body=json_body(payload), request_id=request_id, code="OK")
