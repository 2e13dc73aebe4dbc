"""The client-side rate governor and the in-flight bound."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from globesms import Settings, SmsService, Throttled, TransientError
from globesms._credentials import static_credential
from globesms._governor import LocalGovernor
from globesms.emulator import Delay, Emulator
from support import KEY_ID, KEY_SECRET, NUMBER, TEXT, FakeTime


class Frozen:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def exact(rate: float, clock: Frozen, burst: int = 1) -> LocalGovernor:
    """The in-process governor pacing exactly at ``rate`` (no lag margin, no wake-up grid)."""
    return LocalGovernor(rate, clock=clock, burst=burst, lag_allowance=0.0, grid=0.0)


def test_reservations_are_spaced_by_the_rate() -> None:
    """At 10/s, back-to-back reservations wait 0, 0.1, 0.2, 0.3 s."""
    clock = Frozen()
    governor = exact(10.0, clock)
    waits = [governor.acquire(15) for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_idle_time_refills_but_does_not_bank_beyond_burst() -> None:
    """After a long pause the next send goes at once, and the one after waits one interval."""
    clock = Frozen()
    governor = exact(10.0, clock)
    governor.acquire(15)
    clock.now += 60
    assert governor.acquire(15) == 0.0
    assert governor.acquire(15) == pytest.approx(0.1)


def test_burst_allows_that_many_at_once() -> None:
    """With burst=3, three sends go at once and the fourth waits."""
    clock = Frozen()
    governor = exact(10.0, clock, burst=3)
    waits = [governor.acquire(15) for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(0.1)


def test_slot_past_the_deadline_is_throttled_and_not_reserved() -> None:
    """A wait that would end past the deadline raises Throttled and leaves the slot free."""
    clock = Frozen()
    governor = exact(1.0, clock)
    governor.acquire(15)
    with pytest.raises(Throttled) as caught:
        governor.acquire(0.5)
    assert caught.value.code == "LocalRateLimit"
    assert caught.value.retry_after == pytest.approx(1.0)
    assert governor.acquire(15) == pytest.approx(1.0)


def _service(emulator: Emulator, fake_time: FakeTime, **overrides: Any) -> SmsService:
    settings = Settings(endpoint=emulator.endpoint, protocol="http", **overrides)

    async def async_sleep(seconds: float) -> None:
        fake_time.sleep(seconds)

    return SmsService(settings, credential=static_credential(KEY_ID, KEY_SECRET),
                      sleep=fake_time.sleep, async_sleep=async_sleep, clock=fake_time.clock)


def test_governor_is_shared_by_sync_and_async_sends(
    emulator: Emulator, fake_time: FakeTime
) -> None:
    """Sync and async sends of one service draw from one bucket: the burst queues in order."""
    service = _service(emulator, fake_time, max_rate=2.0)
    service.send(NUMBER, TEXT)

    async def two() -> None:
        async with service:
            await service.send_async(NUMBER, TEXT)
            await service.send_async(NUMBER, TEXT)

    asyncio.run(two())
    assert len(emulator.messages) == 3
    assert len(fake_time.sleeps) == 2
    # one interval at 2/s: 0.5 s, or 0.515 s plus the 5 ms wake grid with the lag margin
    assert all(0.4 <= wait <= 0.5 * 1.03 + 0.0051 for wait in fake_time.sleeps)


def test_governor_wait_counts_against_the_deadline(
    emulator: Emulator, fake_time: FakeTime
) -> None:
    """When the next slot is past the deadline the send fails Throttled without a request."""
    service = _service(emulator, fake_time, max_rate=0.05, deadline=5.0)
    service.send(NUMBER, TEXT)
    with pytest.raises(Throttled) as caught:
        service.send(NUMBER, TEXT)
    assert caught.value.code == "LocalRateLimit"
    assert caught.value.retryable is True
    assert len(emulator.requests) == 1


def test_in_flight_bound_caps_concurrency(emulator: Emulator) -> None:
    """With max_in_flight=2, eight concurrent async sends never put more than 2 in flight."""
    emulator.script(None, *[Delay(0.05)] * 8)
    service = SmsService(Settings(endpoint=emulator.endpoint, protocol="http", max_in_flight=2),
                         credential=static_credential(KEY_ID, KEY_SECRET))

    async def burst() -> None:
        async with service:
            await asyncio.gather(*[service.send_async(NUMBER, TEXT) for _ in range(8)])

    asyncio.run(burst())
    assert len(emulator.messages) == 8
    assert emulator.peak_in_flight == 2


def test_in_flight_bound_applies_to_sync_threads(emulator: Emulator) -> None:
    """The same bound holds for sync sends from many threads."""
    from concurrent.futures import ThreadPoolExecutor

    emulator.script(None, *[Delay(0.05)] * 6)
    service = SmsService(Settings(endpoint=emulator.endpoint, protocol="http", max_in_flight=2),
                         credential=static_credential(KEY_ID, KEY_SECRET))
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda _: service.send(NUMBER, TEXT), range(6)))
    assert len(emulator.messages) == 6
    assert emulator.peak_in_flight <= 2


def test_no_free_slot_within_connect_timeout_is_transient(emulator: Emulator) -> None:
    """A send that gets no in-flight slot within connect_timeout fails LocalBusy, unsent."""
    emulator.script(NUMBER.replace(" ", "")[1:], Delay(3.0))
    service = SmsService(
        Settings(endpoint=emulator.endpoint, protocol="http", max_in_flight=1,
                 connect_timeout=0.2),
        credential=static_credential(KEY_ID, KEY_SECRET))

    async def scenario() -> BaseException | None:
        async with service:
            first = asyncio.create_task(service.send_async(NUMBER, TEXT))
            await asyncio.to_thread(emulator.wait_for_requests, 1, 5.0)
            try:
                await service.send_async("+6591234567", TEXT)
            except TransientError as error:
                return error
            finally:
                first.cancel()
            return None

    error = asyncio.run(scenario())
    assert isinstance(error, TransientError)
    assert error.code == "LocalBusy"
    assert error.retryable is True
    assert len(emulator.requests) == 1


def test_a_starved_rate_budget_is_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    """When every in-flight slot waits for an answer, the service starts slower than max_rate:
    one WARNING (rate.starved) says so and names the max_in_flight that would keep up."""
    import asyncio

    from globesms.emulator import Emulator
    from globesms.testing import service_for

    caplog.set_level(logging.WARNING, logger="globesms")
    with Emulator(access_keys={"ID": "SECRET"}, answer_delay=0.2) as emu:
        service = service_for(emu, max_rate=1000.0, max_in_flight=2)

        async def main() -> None:
            async with service:
                await asyncio.gather(*(service.send_async("+44 7700 900123", "x")
                                       for _ in range(6)))

        asyncio.run(main())
    starved = [r for r in caplog.records if getattr(r, "event", None) == "rate.starved"]
    assert len(starved) == 1
    assert "max_in_flight=2" in starved[0].getMessage()
    assert "at least 500" in starved[0].getMessage()  # 1,000/s x 0.5 s of latency
