"""The retry policy, written once, on tenacity.

Retry only what provably did not send (:class:`TransientError`: throttling, failures before the
request was written, HTTP 503, the provider's temporary codes). :class:`DeliveryUncertain` is
retried only when ``retry_uncertain`` is set. Waits are exponential with full jitter; a server's
hint (``retry_after``) replaces the computed wait. Every call is bounded by ``max_attempts`` and by
``deadline``: when the next wait would end past the deadline, the call stops at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Protocol

from tenacity import (
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
    """Stop when the next attempt could not start with ``window`` seconds left before the deadline.

    An attempt that starts with milliseconds left turns a clean, unsent failure into an uncertain
    outcome; the last (provably unsent) error is raised instead.
    """

    def __init__(self, deadline: float, clock: Clock, started: float, window: float) -> None:
        self._end = started + deadline - window
        self._clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._clock() + retry_state.upcoming_sleep >= self._end


def _no_sleep(seconds: float) -> None:
    """The driver sleeps (sync or async) between attempts; tenacity only decides."""


def policy(
    settings: Settings,
    *,
    clock: Clock = time.monotonic,
    started: float,
    window: float = 0.0,
    retry_uncertain: bool | None = None,
    before_sleep: Callable[[RetryCallState], None] | None = None,
    rng: Callable[[float, float], float] = random.uniform,
) -> Retrying:
    """The tenacity policy for one call that began at ``started`` (a ``clock`` reading).

    The driver feeds it each failure (``Retrying.iter``) and sleeps for the wait it returns, so
    sync and async calls share one policy object. ``retry_uncertain`` defaults to the setting;
    operations that are safe to repeat pass True.
    """
    uncertain = settings.retry_uncertain if retry_uncertain is None else retry_uncertain
    return Retrying(
        sleep=_no_sleep,
        before_sleep=before_sleep,
        retry=retry_if_exception(lambda exc: should_retry(exc, uncertain)),
        stop=(
            stop_after_attempt(settings.max_attempts)
            | _Deadline(settings.deadline, clock, started, window)
        ),
        wait=_Backoff(rng),
        reraise=True,
    )
