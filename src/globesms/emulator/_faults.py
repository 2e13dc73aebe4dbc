"""Faults without scripting: magic test numbers and a seeded chaos mode."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ._outcomes import Delay, Drop, HttpError, Outcome, Reply

MAGIC_DELAY_S = 30.0
"""How long the slow magic number holds its answer (the SDK's read timeout is 10 s)."""
MAGIC_RETRY_AFTER_MS = 1000
"""``x-acs-retry-after`` sent by the throttled magic number."""


@dataclass(frozen=True)
class MagicNumber:
    """A recipient that always behaves the same way, without any scripting.

    ``to`` is the number as sent (digits, no ``+``). ``http_status`` and
    ``code`` are what the first request to it gets (``http_status`` None: no
    answer at all); ``delivery`` is the QueryMessage status its accepted
    messages report (``"sent"``, ``"failed"`` or ``"sending"``).
    """

    to: str
    summary: str
    http_status: int | None
    code: str | None
    delivery: str = "sent"


MAGIC_NUMBERS: tuple[MagicNumber, ...] = (
    MagicNumber("447700900901", "rejected: sender ID not approved", 200, "INVALID_SENDERID"),
    MagicNumber("447700900902", "rejected: balance exhausted", 200, "AMOUNT_NOT_ENOUGH"),
    MagicNumber(
        "447700900903",
        "SYSTEM_ERROR on the 1st, 3rd, 5th... request, accepted on the 2nd, 4th...",
        200,
        "SYSTEM_ERROR",
    ),
    MagicNumber(
        "447700900904",
        f"HTTP 400 Throttling.User with x-acs-retry-after: {MAGIC_RETRY_AFTER_MS} (ms)",
        400,
        "Throttling.User",
    ),
    MagicNumber("447700900905", "HTTP 503 ServiceUnavailable", 503, "ServiceUnavailable"),
    MagicNumber("447700900906", "HTTP 500 InternalError", 500, "InternalError"),
    MagicNumber(
        "447700900907",
        f"answer held back {MAGIC_DELAY_S:g} s (a read timeout), then accepted",
        None,
        None,
    ),
    MagicNumber("447700900908", "connection closed without an answer", None, None),
    MagicNumber(
        "447700900909",
        "accepted; QueryMessage reports it failed (Status 2, ErrorCode UNDELIVERED)",
        200,
        "OK",
        "failed",
    ),
    MagicNumber(
        "447700900910",
        "accepted; QueryMessage reports it still sending (Status 3)",
        200,
        "OK",
        "sending",
    ),
)
"""The magic test numbers (+44 7700 900901-910, in Ofcom's range reserved for drama).

They apply to SendMessageToGlobe and SendMessageWithTemplate (by ``To``), after
any scripted outcome and before chaos; the delivery ones apply to any send.
"""

MAGIC_BY_NUMBER = {magic.to: magic for magic in MAGIC_NUMBERS}


def magic_outcome(to: str | None, attempt: int) -> Outcome | None:
    """The outcome magic number ``to`` forces on its ``attempt``-th request (0-based)."""
    if to is None:
        return None
    suffix = to[-2:] if to in MAGIC_BY_NUMBER else ""
    if suffix == "01":
        return Reply("INVALID_SENDERID", "The sender ID is not approved (magic test number)")
    if suffix == "02":
        return Reply("AMOUNT_NOT_ENOUGH", "The account balance is exhausted (magic test number)")
    if suffix == "03":
        return Reply("SYSTEM_ERROR") if attempt % 2 == 0 else None
    if suffix == "04":
        return HttpError(
            400,
            "Throttling.User",
            "Request was denied due to user flow control.",
            retry_after_ms=MAGIC_RETRY_AFTER_MS,
        )
    if suffix == "05":
        return HttpError(503)
    if suffix == "06":
        return HttpError(500)
    if suffix == "07":
        return Delay(MAGIC_DELAY_S)
    if suffix == "08":
        return Drop()
    return None




@dataclass(frozen=True)
class ChaosSettings:
    """Per-request fault probabilities; at most one fault per request, their sum <= 1."""

    seed: int | None = None
    drop: float = 0.0
    http_500: float = 0.0
    http_503: float = 0.0
    throttle: float = 0.0
    system_error: float = 0.0
    delay: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        rates = [self.drop, self.http_500, self.http_503, self.throttle, self.system_error]
        if self.delay is not None:
            if not isinstance(self.delay, tuple) or len(self.delay) != 2:
                raise TypeError("delay must be (rate, seconds)")
            rates.append(self.delay[0])
            seconds = self.delay[1]
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, (int, float))
                or not math.isfinite(seconds)
                or seconds < 0
            ):
                raise ValueError("the delay seconds must be a finite number >= 0")
        for rate in rates:
            if isinstance(rate, bool) or not isinstance(rate, (int, float)):
                raise TypeError("fault rates must be numbers between 0 and 1")
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault rates must be between 0 and 1 (got {rate!r})")
        if sum(rates) > 1.0 + 1e-9:
            raise ValueError("fault rates must add up to at most 1")

    @property
    def active(self) -> bool:
        delay_rate = self.delay[0] if self.delay is not None else 0.0
        return (
            self.drop + self.http_500 + self.http_503 + self.throttle + self.system_error
            + delay_rate
        ) > 0


class Chaos:
    """Draws one fault (or none) per request from a seeded generator; not thread-safe alone."""

    def __init__(self, settings: ChaosSettings) -> None:
        self.settings = settings
        self._random = random.Random(settings.seed)  # noqa: S311 - test faults, not crypto

    def draw(self) -> Outcome | None:
        s = self.settings
        delay_rate, delay_s = s.delay if s.delay is not None else (0.0, 0.0)
        choices: tuple[tuple[float, Outcome], ...] = (
            (s.drop, Drop()),
            (s.http_500, HttpError(500)),
            (s.http_503, HttpError(503)),
            (
                s.throttle,
                HttpError(
                    400,
                    "Throttling.User",
                    "Request was denied due to user flow control.",
                    retry_after_ms=MAGIC_RETRY_AFTER_MS,
                ),
            ),
            (s.system_error, Reply("SYSTEM_ERROR")),
            (delay_rate, Delay(delay_s)),
        )
        point = self._random.random()
        for rate, outcome in choices:
            if point < rate:
                return outcome
            point -= rate
        return None
