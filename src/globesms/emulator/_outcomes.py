"""Scripted outcomes: what the emulator does with the next matching request.

An outcome is consumed only by a request that passed every gateway check
(signature, timestamp, nonce, action), so a badly signed request never eats one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeAlias


@dataclass(frozen=True)
class Accept:
    """Handle the request normally (validate it and accept the message)."""


@dataclass(frozen=True)
class Reply:
    """Answer HTTP 200 with this business ``ResponseCode``; ``"OK"`` means :class:`Accept`."""

    code: str
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not self.code:
            raise ValueError("Reply.code must be a non-empty string, e.g. Reply('SYSTEM_ERROR')")
        if not isinstance(self.description, str):
            raise TypeError("Reply.description must be a string")


_BODYLESS_STATUSES = frozenset({204, 205, 304})


@dataclass(frozen=True)
class HttpError:
    """Answer with a gateway-style error: a non-2xx status and a JSON body.

    ``body`` replaces the JSON body verbatim (an HTML error page, say), sent
    with ``content_type``. ``retry_after_ms`` adds ``x-acs-retry-after`` (which
    the SDK turns into ``ThrottlingException.retry_after``); ``retry_after_s``
    adds the standard ``Retry-After`` header.
    """

    status: int
    code: str = ""
    message: str = ""
    retry_after_ms: int | None = None
    retry_after_s: int | None = None
    body: str | None = None
    content_type: str = "application/json"

    def __post_init__(self) -> None:
        if isinstance(self.status, bool) or not isinstance(self.status, int):
            raise TypeError("HttpError.status must be an int")
        if not 200 <= self.status <= 599 or self.status in _BODYLESS_STATUSES:
            raise ValueError(
                f"HttpError.status must be 200-599 and allow a body (got {self.status})"
            )
        for name in ("retry_after_ms", "retry_after_s"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise ValueError(f"HttpError.{name} must be an int >= 0 or None (got {value!r})")
        if not self.content_type or "\n" in self.content_type or "\r" in self.content_type:
            raise ValueError("HttpError.content_type must be a single-line, non-empty string")


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` (cut short when the emulator closes), then apply ``then``."""

    seconds: float
    then: Outcome | None = None

    def __post_init__(self) -> None:
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, (int, float)):
            raise TypeError("Delay.seconds must be a number")
        if not math.isfinite(self.seconds) or self.seconds < 0:
            raise ValueError(f"Delay.seconds must be finite and >= 0 (got {self.seconds!r})")
        if self.then is not None and not isinstance(self.then, OUTCOME_TYPES):
            raise TypeError(f"Delay.then must be an outcome or None (got {self.then!r})")


@dataclass(frozen=True)
class Drop:
    """Close the TCP connection without any response.

    With ``after_read=False`` the connection is closed right after the request
    line and headers (which are needed to check the signature and pick the
    script), before the body is read.
    """

    after_read: bool = True


Outcome: TypeAlias = Accept | Reply | HttpError | Delay | Drop
"""Any scripted outcome."""

OUTCOME_TYPES = (Accept, Reply, HttpError, Delay, Drop)
