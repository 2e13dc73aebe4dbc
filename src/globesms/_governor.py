"""The send-rate governor and the in-flight bound, shared by sync and async sends of a service.

:class:`RateGovernor` is a token bucket kept as a "theoretical arrival time" (GCRA): each send
reserves the next free slot and learns how long to wait for it, so threads and tasks queue in
order without a lock held while waiting. A reservation that would end past the call's deadline is
given back and the send fails as :class:`Throttled` without touching the network.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ._errors import Throttled


class RateGovernor:
    """At most ``rate`` sends per second, with bursts of up to ``burst`` sends at once."""

    def __init__(self, rate: float, *, clock: Callable[[], float], burst: int = 1) -> None:
        self._interval = 1.0 / rate
        self._tolerance = (burst - 1) * self._interval
        self._clock = clock
        self._lock = threading.Lock()
        self._tat = 0.0  # when the bucket would next be empty, on the clock

    def reserve(self, deadline: float) -> float:
        """Reserve a slot; return the seconds to wait for it.

        Raises :class:`Throttled` (nothing reserved) when the slot would start after ``deadline``
        (a reading of the same clock).
        """
        with self._lock:
            now = self._clock()
            tat = max(self._tat, now)
            wait = max(0.0, tat - self._tolerance - now)
            if now + wait >= deadline:
                raise Throttled(
                    f"the client-side rate limit (max_rate) has no free slot before the deadline; "
                    f"retry in {wait:.3f} s or raise max_rate",
                    code="LocalRateLimit",
                    retry_after=wait,
                )
            self._tat = tat + self._interval
            return wait

    def acquire(self, budget: float) -> float:
        """Reserve a slot starting within ``budget`` seconds; return the seconds to wait for it."""
        return self.reserve(self._clock() + budget + 1e-9)

    async def acquire_async(self, budget: float) -> float:
        """:meth:`acquire` for async callers (the decision never blocks)."""
        return self.acquire(budget)
