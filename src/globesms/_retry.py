"""The retry policy, written once, on tenacity.

Retry only what provably did not send (:class:`TransientError`: throttling, failures before the
request was written, HTTP 503, the provider's temporary codes). :class:`DeliveryUncertain` is
retried only when ``retry_uncertain`` is set. Waits are exponential with full jitter; a server's
hint (``retry_after``) replaces the computed wait. Every call is bounded by ``max_attempts`` and by
``deadline``: when the next wait would end past the deadline, the call stops at once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from ._errors import DeliveryUncertain, SmsError, TransientError
from ._settings import Settings

#: First backoff step and the largest computed wait, in seconds.
BACKOFF_BASE = 0.2
BACKOFF_CAP = 2.0


class Clock(Protocol):
    """Monotonic seconds (``time.monotonic``); replaceable in tests."""

    def __call__(self) -> float: ...


def should_retry(error: BaseException, retry_uncertain: bool) -> bool:
    """Whether another attempt is allowed for this error."""
    if isinstance(error, TransientError):
        return True
    return retry_uncertain and isinstance(error, DeliveryUncertain)


def _error(state: RetryCallState) -> SmsError | None:
    outcome = state.outcome
    if outcome is None or not outcome.failed:
        return None
    exc = outcome.exception()
    return exc if isinstance(exc, SmsError) else None


class _Backoff(wait_base):
    """Full-jitter exponential backoff; the server's ``retry_after`` wins when present."""

    def __init__(self, rng: Callable[[float, float], float]) -> None:
        self._rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        error = _error(retry_state)
        if error is not None and error.retry_after is not None:
            return max(0.0, error.retry_after)
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (retry_state.attempt_number - 1))
        return self._rng(0.0, ceiling)


class _Deadline(stop_base):
    """Stop when the next attempt could not start before the deadline."""

    def __init__(self, deadline: float, clock: Clock, started: float) -> None:
        self._end = started + deadline
        self._clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._clock() + retry_state.upcoming_sleep >= self._end


def _components(
    settings: Settings, clock: Clock, started: float, rng: Callable[[float, float], float]
) -> dict[str, Any]:
    retry_uncertain = settings.retry_uncertain
    return {
        "retry": retry_if_exception(lambda exc: should_retry(exc, retry_uncertain)),
        "stop": (
            stop_after_attempt(settings.max_attempts)
            | _Deadline(settings.deadline, clock, started)
        ),
        "wait": _Backoff(rng),
        "reraise": True,
    }


def policy(
    settings: Settings,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Clock = time.monotonic,
    started: float,
    before_sleep: Callable[[RetryCallState], None] | None = None,
    rng: Callable[[float, float], float] = random.uniform,
) -> Retrying:
    """A tenacity ``Retrying`` for one send that began at ``started`` (a ``clock`` reading)."""
    return Retrying(
        sleep=sleep, before_sleep=before_sleep, **_components(settings, clock, started, rng)
    )


def async_policy(
    settings: Settings,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Clock = time.monotonic,
    started: float,
    before_sleep: Callable[[RetryCallState], None] | None = None,
    rng: Callable[[float, float], float] = random.uniform,
) -> AsyncRetrying:
    """The same policy for ``send_async``: waits never block the event loop."""
    return AsyncRetrying(
        sleep=sleep, before_sleep=before_sleep, **_components(settings, clock, started, rng)
    )
