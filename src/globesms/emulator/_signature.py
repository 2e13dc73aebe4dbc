"""Server-side check of Alibaba Cloud ACS3-HMAC-SHA256 (V3) request signatures.

The client signs ``METHOD\\nURI\\nQUERY\\nHEADERS\\nSIGNED_HEADERS\\nBODY_SHA256``
where QUERY is the decoded query re-encoded RFC 3986 style and sorted, and
HEADERS are the headers it lists in ``SignedHeaders``. The server rebuilds
the same text from what arrived: query values are decoded with form rules
(``+`` is a space) and re-encoded, because the async SDK path re-quotes the
URL; only the signed headers count, because clients add unsigned ones
(``Accept-Encoding``, ``Content-Length``...).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import Message
from urllib.parse import quote, unquote_plus

from ._gateway import (
    INCOMPLETE_SIGNATURE,
    INVALID_ACCESS_KEY_ID,
    INVALID_SIGNATURE_METHOD,
    SIGNATURE_DOES_NOT_MATCH,
    TIMESTAMP_EXPIRED,
    TIMESTAMP_FORMAT,
    GatewayError,
)

ALGORITHM = "ACS3-HMAC-SHA256"
_OTHER_ALGORITHMS = frozenset({"ACS3-HMAC-SM3", "ACS3-RSA-SHA256"})
REQUIRED_SIGNED_HEADERS = frozenset(
    {
        "host",
        "x-acs-action",
        "x-acs-content-sha256",
        "x-acs-date",
        "x-acs-signature-nonce",
        "x-acs-version",
    }
)
TIMESTAMP_WINDOW_S = 15 * 60
"""How far ``x-acs-date`` may be from the server clock, either way."""

_AUTHORIZATION = re.compile(
    r"(?P<alg>\S+) +Credential=(?P<key_id>[^,]*), *SignedHeaders=(?P<signed>[^,]*),"
    r" *Signature=(?P<signature>[0-9a-fA-F]+)"
)
_ACS_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z")
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class Authorization:
    """The parts of an ``Authorization: ACS3-HMAC-SHA256 ...`` header."""

    algorithm: str
    access_key_id: str
    signed_headers: tuple[str, ...]
    signature: str


@dataclass(frozen=True)
class Verified:
    """What a request proved by a valid signature."""

    access_key_id: str
    nonce: str
    content_sha256: str
    timestamp: float


def parse_query(raw_query: str) -> list[tuple[str, str]]:
    """Decode a raw query string into (name, value) pairs, ``+`` meaning a space."""
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote_plus(name), unquote_plus(value)))
    return pairs


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Sorted ``name=value`` pairs, values percent-encoded with only ``~`` and unreserved kept."""
    return "&".join(f"{name}={quote(value, safe='~')}" for name, value in sorted(pairs))


def canonical_headers(headers: Message, names: Iterable[str]) -> str:
    """One ``name:value`` line per signed header; repeated headers are sorted and comma-joined."""
    lines = []
    for name in names:
        values = sorted(str(value).strip() for value in headers.get_all(name, []))
        lines.append(f"{name}:{','.join(values)}\n")
    return "".join(lines)


def string_to_sign(
    method: str,
    path: str,
    pairs: Iterable[tuple[str, str]],
    headers: Message,
    signed_headers: tuple[str, ...],
    content_sha256: str,
) -> str:
    """The ``ACS3-HMAC-SHA256`` string to sign for a request as received."""
    canonical_request = "\n".join(
        [
            method,
            path or "/",
            canonical_query(pairs),
            canonical_headers(headers, signed_headers),
            ";".join(signed_headers),
            content_sha256,
        ]
    )
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{digest}"


def sign(secret: str, text: str) -> str:
    """Hex HMAC-SHA256 of ``text`` keyed with the AccessKey secret."""
    return hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


def parse_authorization(value: str | None) -> Authorization:
    """Split the ``Authorization`` header; raise ``GatewayError`` if it is missing or malformed."""
    if not value:
        raise GatewayError(400, INCOMPLETE_SIGNATURE, "The Authorization header is missing.")
    match = _AUTHORIZATION.fullmatch(value.strip())
    if match is None:
        algorithm = value.strip().split(" ", 1)[0]
        if algorithm in _OTHER_ALGORITHMS:
            raise GatewayError(
                400,
                INVALID_SIGNATURE_METHOD,
                f"Signature method {algorithm} is not supported by the emulator.",
            )
        raise GatewayError(400, INCOMPLETE_SIGNATURE, "The Authorization header is malformed.")
    algorithm = match["alg"]
    if algorithm != ALGORITHM:
        raise GatewayError(
            400, INVALID_SIGNATURE_METHOD, f"Signature method {algorithm} is not supported."
        )
    signed = tuple(match["signed"].split(";")) if match["signed"] else ()
    return Authorization(
        algorithm=algorithm,
        access_key_id=match["key_id"],
        signed_headers=signed,
        signature=match["signature"].lower(),
    )


def parse_acs_date(value: str | None) -> float:
    """Epoch seconds of an ``x-acs-date`` value (``%Y-%m-%dT%H:%M:%SZ``, UTC)."""
    match = _ACS_DATE.fullmatch(value.strip()) if value else None
    if match is None:
        raise GatewayError(
            400, TIMESTAMP_FORMAT, "x-acs-date must be UTC in the form YYYY-MM-DDThh:mm:ssZ."
        )
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError:
        raise GatewayError(
            400, TIMESTAMP_FORMAT, "x-acs-date is not a valid date and time."
        ) from None
    return moment.timestamp()


def _check_signed_headers(auth: Authorization, headers: Message) -> None:
    signed = auth.signed_headers
    if any(name != name.lower() or not name for name in signed):
        raise GatewayError(400, INCOMPLETE_SIGNATURE, "SignedHeaders must be lower-case names.")
    if list(signed) != sorted(set(signed)):
        raise GatewayError(
            400, INCOMPLETE_SIGNATURE, "SignedHeaders must be sorted and without repeats."
        )
    missing = sorted(REQUIRED_SIGNED_HEADERS - set(signed))
    if missing:
        raise GatewayError(
            400, INCOMPLETE_SIGNATURE, f"SignedHeaders lacks required headers: {';'.join(missing)}."
        )
    absent = [name for name in signed if headers.get(name) is None]
    if absent:
        raise GatewayError(
            400, INCOMPLETE_SIGNATURE, f"Signed headers are absent from the request: {absent}."
        )
    unsigned = sorted(
        {key.lower() for key in headers if key.lower().startswith("x-acs-")} - set(signed)
    )
    if unsigned:
        raise GatewayError(
            400, INCOMPLETE_SIGNATURE, f"x-acs-* headers must be signed: {';'.join(unsigned)}."
        )


def verify(
    *,
    method: str,
    path: str,
    pairs: list[tuple[str, str]],
    headers: Message,
    access_keys: Mapping[str, str],
    now: float,
) -> Verified:
    """Check everything the signature covers, or raise the gateway's ``GatewayError``.

    Checks, in order: Authorization well formed, signed-header list complete,
    AccessKey id known (and equal to ``x-acs-accesskey-id`` when sent),
    ``x-acs-date`` well formed, signature, then the timestamp window. Nonce
    replay and the body hash are the caller's to check: they need state and
    the body.
    """
    auth = parse_authorization(headers.get("authorization"))
    _check_signed_headers(auth, headers)
    secret = access_keys.get(auth.access_key_id)
    if secret is None:
        raise GatewayError(404, INVALID_ACCESS_KEY_ID, "Specified access key is not found.")
    declared_key = headers.get("x-acs-accesskey-id")
    if declared_key is not None and declared_key.strip() != auth.access_key_id:
        raise GatewayError(
            400, INCOMPLETE_SIGNATURE, "x-acs-accesskey-id differs from the Credential."
        )
    timestamp = parse_acs_date(headers.get("x-acs-date"))
    content_sha256 = str(headers.get("x-acs-content-sha256", "")).strip()
    if not _HEX_SHA256.fullmatch(content_sha256):
        raise GatewayError(
            400, INCOMPLETE_SIGNATURE, "x-acs-content-sha256 must be a hex SHA-256 digest."
        )
    nonce = str(headers.get("x-acs-signature-nonce", "")).strip()
    if not nonce:
        raise GatewayError(400, INCOMPLETE_SIGNATURE, "x-acs-signature-nonce is empty.")
    expected = sign(
        secret,
        string_to_sign(method, path, pairs, headers, auth.signed_headers, content_sha256),
    )
    if not hmac.compare_digest(expected, auth.signature):
        raise GatewayError(
            400,
            SIGNATURE_DOES_NOT_MATCH,
            "Specified signature does not match our calculation.",
        )
    if abs(now - timestamp) > TIMESTAMP_WINDOW_S:
        raise GatewayError(
            400,
            TIMESTAMP_EXPIRED,
            "x-acs-date is more than 15 minutes away from the server time.",
        )
    return Verified(
        access_key_id=auth.access_key_id,
        nonce=nonce,
        content_sha256=content_sha256.lower(),
        timestamp=timestamp,
    )
