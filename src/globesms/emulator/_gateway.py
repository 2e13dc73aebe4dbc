"""Wire shapes: gateway errors, business replies and the HTTP response handed to the server."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus

JSON_CONTENT_TYPE = "application/json;charset=utf-8"

# Gateway codes the emulator emits itself (HTTP status in the comment).
INCOMPLETE_SIGNATURE = "IncompleteSignature"  # 400
INVALID_SIGNATURE_METHOD = "InvalidSignatureMethod"  # 400
SIGNATURE_DOES_NOT_MATCH = "SignatureDoesNotMatch"  # 400
INVALID_ACCESS_KEY_ID = "InvalidAccessKeyId.NotFound"  # 404
TIMESTAMP_FORMAT = "InvalidTimeStamp.Format"  # 400
TIMESTAMP_EXPIRED = "InvalidTimeStamp.Expired"  # 400
NONCE_USED = "SignatureNonceUsed"  # 400
API_NOT_FOUND = "InvalidApi.NotFound"  # 404
UNSUPPORTED_METHOD = "UnsupportedHTTPMethod"  # 400
INTERNAL_ERROR = "InternalError"  # 500

_DEFAULT_CODES = {429: "Throttling.User", 500: "InternalError", 503: "ServiceUnavailable"}
# Reason phrases as the emulator has always spelled them: Python 3.13 renamed these in
# ``http.HTTPStatus`` (414 "URI Too Long", 413 "Content Too Large", ...), which would change
# the derived ``Code`` with the interpreter.
_PHRASES = {
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    416: "Requested Range Not Satisfiable",
    422: "Unprocessable Entity",
}


_ids = random.Random()  # noqa: S311 - request ids, not secrets


def new_request_id() -> str:
    """A request id shaped like Alibaba's (an upper-case UUID)."""
    return str(uuid.UUID(int=_ids.getrandbits(128), version=4)).upper()


def default_code(status: int) -> str:
    """The gateway ``Code`` used when a scripted error gives none, e.g. 502 -> ``BadGateway``."""
    if status in _DEFAULT_CODES:
        return _DEFAULT_CODES[status]
    phrase = _phrase(status)
    if phrase is None:
        return f"Http{status}"
    return "".join(word[:1].upper() + word[1:] for word in phrase.replace("-", " ").split())


def default_message(status: int) -> str:
    return _phrase(status) or f"HTTP {status}"


def _phrase(status: int) -> str | None:
    if status in _PHRASES:
        return _PHRASES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return None


@dataclass(frozen=True)
class Response:
    """An HTTP answer, plus the code to record for it (not sent)."""

    status: int
    body: bytes
    content_type: str = JSON_CONTENT_TYPE
    extra_headers: tuple[tuple[str, str], ...] = ()
    request_id: str = ""
    code: str | None = None
    stream: Iterator[bytes] | None = None
    """Chunks written after the head, instead of ``body``, until exhausted (server-sent events)."""


class GatewayError(Exception):
    """A request rejected before the API ran, answered as a non-2xx JSON error."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        close: bool = False,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.close = close
        self.headers = headers


def json_body(payload: dict[str, object]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def gateway_response(
    status: int,
    code: str,
    message: str,
    *,
    host_id: str,
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> Response:
    """The gateway error body: ``{RequestId, HostId, Code, Message, Recommend}``."""
    request_id = new_request_id()
    body = json_body(
        {
            "RequestId": request_id,
            "HostId": host_id,
            "Code": code,
            "Message": message,
            "Recommend": f"emulated gateway error {code} (request {request_id})",
        }
    )
    return Response(
        status=status,
        body=body,
        extra_headers=extra_headers,
        request_id=request_id,
        code=code,
    )


def business_response(code: str, description: str, to: str | None) -> Response:
    """An HTTP 200 answer whose ``ResponseCode`` is not ``OK``."""
    request_id = new_request_id()
    payload: dict[str, object] = {
        "RequestId": request_id,
        "ResponseCode": code,
        "ResponseDescription": description or code,
    }
    if to is not None:
        payload["To"] = to
    return Response(status=200, body=json_body(payload), request_id=request_id, code=code)
