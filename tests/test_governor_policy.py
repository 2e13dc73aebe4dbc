"""The governor's policy without I/O: GCRA, pacing margin, wake grid, keys, sizing, selection."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from globesms import ConfigurationError, Settings, Throttled
from globesms._governor import (
    DOCUMENTED,
    OPERATION_LIMITS,
    LocalGovernor,
    Pace,
    SharedGovernor,
    account_tag,
    build_governor,
    coalesce,
    default_max_in_flight,
    reserve,
    store_key,
)

EXACT = Pace(interval=0.1, tolerance=0.0)


def max_in_window(starts: list[float], width: float = 1.0) -> int:
    """The highest count of starts in any half-open window [t, t + width)."""
    starts = sorted(starts)
    best, low = 0, 0
    for high, start in enumerate(starts):
        while starts[low] <= start - width:
            low += 1
        best = max(best, high - low + 1)
    return best


def test_first_slot_is_now_and_the_next_one_interval_later() -> None:
    """From an empty state the slot is now; the stored tat moves one interval on."""
    first = reserve(-math.inf, 100.0, EXACT, budget=1.0)
    assert first.granted and first.wait == 0.0 and first.tat == pytest.approx(100.1)
    second = reserve(first.tat, 100.0, EXACT, budget=1.0)
    assert second.wait == pytest.approx(0.1) and second.tat == pytest.approx(100.2)


def test_a_slot_at_or_past_the_budget_is_refused_with_the_exact_wait() -> None:
    """A refusal stores nothing (tat None) and reports the seconds until the free slot."""
    decision = reserve(101.25, 100.0, EXACT, budget=1.25)
    assert not decision.granted and decision.tat is None
    assert decision.wait == pytest.approx(1.25)
    assert reserve(101.25, 100.0, EXACT, budget=1.2501).granted


def test_idle_time_does_not_bank_beyond_the_burst() -> None:
    """After a long idle gap the next slot is now, and the one after that an interval later."""
    stale = reserve(-math.inf, 0.0, EXACT, budget=1.0).tat
    assert stale is not None
    later = reserve(stale, 60.0, EXACT, budget=1.0)
    assert later.wait == 0.0 and later.tat == pytest.approx(60.1)


def test_burst_tolerance_lets_that_many_start_at_once() -> None:
    """With burst 3, three slots start now and the fourth waits one interval."""
    pace = Pace.for_rate(10.0, burst=3, lag_allowance=0.0)
    tat, waits = -math.inf, []
    for _ in range(4):
        decision = reserve(tat, 5.0, pace, budget=10.0)
        assert decision.tat is not None
        tat = decision.tat
        waits.append(decision.wait)
    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.1])


def test_not_before_pushes_the_slot_and_the_state() -> None:
    """A minimum start (after a fallback) delays the slot and the slots after it."""
    decision = reserve(100.0, 100.0, EXACT, budget=5.0, not_before=102.0)
    assert decision.wait == pytest.approx(2.0) and decision.tat == pytest.approx(102.1)


def test_pace_leaves_the_lag_margin_and_keeps_95_percent() -> None:
    """Slots are spaced for rate / 1.03: above 95 % of the cap, below 97.1 %."""
    for rate in (1.0, 200.0, 500.0, 2000.0):
        pace = Pace.for_rate(rate)
        assert 0.95 * rate <= pace.rate < rate / 1.03
    with pytest.raises(ValueError):
        Pace.for_rate(0.0)


@settings(max_examples=60, deadline=None)
@given(rate=st.sampled_from([1.0, 7.0, 200.0, 500.0, 2000.0]),
       lags=st.lists(st.floats(min_value=0.0, max_value=0.025), min_size=50, max_size=400),
       phase=st.floats(min_value=0.0, max_value=1.0))
def test_paced_starts_never_exceed_the_rate_in_any_second_despite_lag(
    rate: float, lags: list[float], phase: float
) -> None:
    """Demand above the rate, starts on the wake grid and late by up to 25 ms: none over the cap."""
    pace, tat, now, starts = Pace.for_rate(rate), -math.inf, phase, []
    count = max(len(lags), int(rate * 2.5))
    for index in range(count):
        decision = reserve(tat, now, pace, budget=math.inf)
        assert decision.tat is not None
        tat = decision.tat
        release = now + coalesce(now, decision.wait, math.inf)
        starts.append(release + lags[index % len(lags)])
    assert max_in_window(starts) <= rate


def test_coalesce_rounds_up_to_the_grid_within_the_budget() -> None:
    """Waits end on the 5 ms grid so nearby slots share a wake-up; never past the budget."""
    assert coalesce(10.0, 0.0, 1.0) == 0.0
    assert coalesce(10.0, 0.0011, 1.0) == pytest.approx(0.005)
    assert coalesce(10.0, 0.0049, 1.0) == pytest.approx(0.005)
    assert coalesce(10.0, 0.0051, 1.0) == pytest.approx(0.010)
    assert coalesce(10.0, 0.0011, 0.003) == pytest.approx(0.0011)
    assert coalesce(10.0, 0.0011, 1.0, grid=0.0) == pytest.approx(0.0011)


def test_one_timer_releases_several_sends_at_the_cap() -> None:
    """At 2,000/s, 2,000 sends (1.03 s of slots) wake on 207 grid points, about 10 per wake."""
    clock = [50.0]
    governor = LocalGovernor(2000.0, clock=lambda: clock[0])
    releases = {round(clock[0] + governor.acquire(15.0), 6) for _ in range(2000)}
    assert len(releases) == math.ceil(2000 / Pace.for_rate(2000.0).rate / 0.005)


class Frozen:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_local_governor_refuses_past_the_budget_and_reserves_nothing() -> None:
    """Throttled [LocalRateLimit] with the exact retry_after; the slot stays free."""
    clock = Frozen()
    governor = LocalGovernor(1.0, clock=clock, lag_allowance=0.0, grid=0.0)
    assert governor.acquire(15.0) == 0.0
    with pytest.raises(Throttled) as caught:
        governor.acquire(0.5)
    assert caught.value.code == "LocalRateLimit"
    assert caught.value.retry_after == pytest.approx(1.0)
    assert governor.acquire(15.0) == pytest.approx(1.0)


def test_local_governor_async_shares_the_sync_budget() -> None:
    """acquire_async draws from the same budget as acquire."""
    clock = Frozen()
    governor = LocalGovernor(10.0, clock=clock, lag_allowance=0.0, grid=0.0)
    governor.acquire(15.0)
    assert asyncio.run(governor.acquire_async(15.0)) == pytest.approx(0.1)


def test_account_is_hashed_in_the_key_under_a_hash_tag() -> None:
    """The key holds a hash of the AccessKey id in one {hash tag}, never the id itself."""
    key = store_key("SendMessageToGlobe", "LTAI5tSecretishKeyId", prefix="p")
    assert "LTAI5tSecretishKeyId" not in key
    assert key == f"p:{{{account_tag('LTAI5tSecretishKeyId')}}}:SendMessageToGlobe"
    assert key.count("{") == 1 and key.count("}") == 1
    assert account_tag("a") != account_tag("b")
    assert account_tag(None) != account_tag("-x")


def test_default_in_flight_follows_rate_and_latency() -> None:
    """Enough in flight for max_rate at 0.5 s answers, within [256, 2048]."""
    assert default_max_in_flight(None, 10.0) == 256
    assert default_max_in_flight(100.0, 10.0) == 256
    assert default_max_in_flight(2000.0, 10.0) == 1000
    assert default_max_in_flight(2000.0, 0.2) == 400
    assert default_max_in_flight(10000.0, 10.0) == 2048


def _settings(**overrides: object) -> Settings:
    return Settings(endpoint="127.0.0.1:1", protocol="http", **overrides)  # type: ignore[arg-type]


def test_build_governor_selects_budgets_per_operation() -> None:
    """max_rate for SendMessageToGlobe, 1/s for batches, others only when asked; local here."""
    plain = _settings(max_rate=50.0)
    send = build_governor(plain, operation="SendMessageToGlobe", account="id")
    assert isinstance(send, LocalGovernor) and send.pace.rate == pytest.approx(50.0 / 1.03, 1e-4)
    assert build_governor(_settings(), operation="SendMessageToGlobe", account="id") is None
    batch = build_governor(plain, operation="BatchSendMessageToGlobe", account="id")
    assert isinstance(batch, LocalGovernor) and batch.pace.rate == pytest.approx(1 / 1.03, 1e-4)
    assert build_governor(plain, operation="QueryMessage", account="id") is None
    query = build_governor(plain, operation="QueryMessage", account="id", rate=DOCUMENTED)
    assert isinstance(query, LocalGovernor)
    assert query.pace.rate == pytest.approx(OPERATION_LIMITS["QueryMessage"] / 1.03, 1e-4)
    with pytest.raises(ConfigurationError):
        build_governor(plain, operation="SendSms", account="id")


def test_shared_store_holds_batch_sends_to_one_per_second() -> None:
    """With rate_store set, batch sends get a shared 1/s budget even without max_rate."""
    shared = _settings(rate_store="redis://127.0.0.1:1/0", rate_instances=4)
    pytest.importorskip("redis")
    batch = build_governor(shared, operation="BatchSendMessageToGlobe", account="id")
    assert isinstance(batch, SharedGovernor)
    assert batch.store.pace.rate == pytest.approx(1 / 1.03, 1e-4)
    assert batch.fallback.pace.rate == pytest.approx(0.25 / 1.03, 1e-4)
    batch.close()


def test_rate_store_settings_are_validated_with_the_fix() -> None:
    """A non-Redis URL or rate_instances < 1 fails when Settings is built, worded as the fix."""
    with pytest.raises(ConfigurationError, match="redis:// or rediss://"):
        _settings(rate_store="http://127.0.0.1:6379")
    assert _settings(rate_store="unix:///run/redis.sock").rate_store == "unix:///run/redis.sock"
    for bad in ("redis://", "redis://127.0.0.1:port/0", "127.0.0.1:6379", "unix://"):
        with pytest.raises(ConfigurationError, match="redis:// or rediss://"):
            _settings(rate_store=bad)
    with pytest.raises(ConfigurationError, match="rate_instances must be >= 1"):
        _settings(rate_instances=0)
    loaded = Settings.load(environ={"GLOBESMS_RATE_STORE": "redis://127.0.0.1:6379/2",
                                    "GLOBESMS_RATE_INSTANCES": "8"},
                           endpoint="127.0.0.1:1")
    assert loaded.rate_store == "redis://127.0.0.1:6379/2" and loaded.rate_instances == 8


def test_store_password_never_appears_in_repr_or_errors() -> None:
    """The password of a rediss:// URL stays out of Settings repr and of configuration errors."""
    secret = "s3cr3t-Pa55"
    built = _settings(rate_store=f"rediss://app:{secret}@cache.internal:6380/0")
    assert secret not in repr(built)
    with pytest.raises(ConfigurationError) as caught:
        Settings.load(environ={"GLOBESMS_RATE_STORE": f"memcached://app:{secret}@cache:1"},
                      endpoint="127.0.0.1:1")
    assert secret not in str(caught.value) and "GLOBESMS_RATE_STORE" in str(caught.value)
    with pytest.raises(ConfigurationError) as again:
        Settings.load(environ={}, endpoint="127.0.0.1:1",
                      rate_store=f"tcp://app:{secret}@cache:1")
    assert secret not in str(again.value)
    sources: dict[str, str] = {}
    Settings.load(environ={"GLOBESMS_RATE_STORE": f"rediss://app:{secret}@cache:6380/0"},
                  endpoint="127.0.0.1:1", sources_into=sources)
    assert "GLOBESMS_RATE_STORE" in sources["rate_store"] and secret not in str(sources)


def test_clock_link_measures_how_late_an_answer_arrives() -> None:
    """An answer 7 ms slower than the quickest recent one is 7 ms late; old minima expire."""
    from globesms._governor import ClockLink

    link = ClockLink(period=1.0)
    assert link.delay(100.000, 50.000) == 0.0
    assert link.delay(100.012, 50.005) == pytest.approx(0.007)
    assert link.delay(101.200, 51.195) == pytest.approx(0.005)  # last period's minimum counts
    assert link.delay(102.300, 52.295) == pytest.approx(0.0)  # two periods on, it is gone


def test_limits_table_agrees_with_the_operation_descriptors() -> None:
    """OPERATION_LIMITS names every operation with the same documented rate as its descriptor."""
    from globesms._operations import OPERATIONS

    assert {op.action: op.account_rate for op in OPERATIONS} == OPERATION_LIMITS


class Oversleeping:
    """A clock and a sleep that ends each wait ``late[i]`` seconds late, recording the waits."""

    def __init__(self, late: list[float]) -> None:
        self.now = 100.0
        self.late = late
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds + (self.late.pop(0) if self.late else 0.0)

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


def test_pace_uses_a_slot_reached_on_time() -> None:
    """A wait that ends on time (or within LATE_LIMIT) is used: one slot, one sleep."""
    from globesms._governor import pace

    time = Oversleeping([0.005])
    governor = LocalGovernor(10.0, clock=time.clock, grid=0.0)
    governor.acquire(15.0)
    waited = pace(governor, lambda: 15.0, sleep=time.sleep, clock=time.clock)
    assert len(time.waits) == 1 and waited == pytest.approx(time.waits[0])


def test_pace_retakes_a_slot_missed_by_a_late_wake_up() -> None:
    """A wait that ends 50 ms late gives the slot up and waits for a new one (sync and async)."""
    from globesms._governor import pace, pace_async

    time = Oversleeping([0.05])
    governor = LocalGovernor(10.0, clock=time.clock, grid=0.0)
    governor.acquire(15.0)
    pace(governor, lambda: 15.0, sleep=time.sleep, clock=time.clock)
    assert len(time.waits) == 2 and time.waits[1] > 0
    later = Oversleeping([0.05, 0.05])
    governor = LocalGovernor(10.0, clock=later.clock, grid=0.0)
    governor.acquire(15.0)
    asyncio.run(pace_async(governor, lambda: 15.0, sleep=later.async_sleep, clock=later.clock))
    assert len(later.waits) == 3


def test_pace_gives_up_when_no_slot_fits_the_budget() -> None:
    """Retaking stops with Throttled once the next slot lies past the remaining budget."""
    from globesms._governor import pace

    time = Oversleeping([0.05] * 10)
    governor = LocalGovernor(10.0, clock=time.clock, grid=0.0)
    governor.acquire(15.0)
    deadline = time.now + 0.35
    with pytest.raises(Throttled):
        pace(governor, lambda: deadline - time.now, sleep=time.sleep, clock=time.clock)
