"""The shared governor against a real Redis: the script, several processes, outages, keys."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

try:
    import redis
except ImportError:  # the test extra has it; test_redis_url() then skips or fails the tests
    redis = None

from globesms import Settings, Throttled
from globesms._governor import (
    Pace,
    RedisRate,
    SharedGovernor,
    build_governor,
    reserve,
    store_key,
)
from support import test_redis_url, unavailable

ACCOUNT = "LTAI5tAccountIdInClear"


class Frozen:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def max_in_window(starts: list[float], width: float = 1.0) -> int:
    """The highest count of starts in any half-open window [t, t + width)."""
    starts = sorted(starts)
    best, low = 0, 0
    for high, start in enumerate(starts):
        while starts[low] <= start - width:
            low += 1
        best = max(best, high - low + 1)
    return best


@pytest.fixture
def redis_url() -> str:
    """The test Redis (GLOBESMS_TEST_REDIS_URL); skip, or fail under GLOBESMS_REQUIRE_REDIS=1."""
    return test_redis_url()


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own, whose keys are deleted afterwards."""
    name = f"globesms-test-rate:{secrets.token_hex(6)}"
    yield name
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{name}:*"):
        client.delete(key)
    client.close()


def _replay(decisions: list[Any], pace: Pace, budget: float) -> None:
    """Check each store decision against the pure policy fed the same server clock."""
    tat = -math.inf
    for decision in decisions:
        expected = reserve(tat, decision.server_now, pace, budget)
        assert decision.granted == expected.granted
        assert decision.wait == pytest.approx(expected.wait, abs=2e-6)
        if expected.tat is not None:
            tat = expected.tat


def test_script_decides_like_the_pure_policy(redis_url: str, prefix: str) -> None:
    """Sync script calls grant and refuse exactly as reserve() does on the server's clock."""
    pace = Pace.for_rate(10.0)
    store = RedisRate(redis_url, store_key("SendMessageToGlobe", ACCOUNT, prefix=prefix), pace)
    decisions = [store.reserve(0.35) for _ in range(6)]
    store.close()
    assert [d.granted for d in decisions] == [True, True, True, True, False, False]
    _replay(decisions, pace, 0.35)
    last = decisions[3]
    assert decisions[-1].queue_end == pytest.approx(last.start + pace.interval, abs=3e-6)


def test_async_script_shares_the_budget_with_sync(redis_url: str, prefix: str) -> None:
    """redis.asyncio calls draw from the same key as sync calls and decide the same way."""
    pace = Pace.for_rate(10.0)
    store = RedisRate(redis_url, store_key("SendMessageToGlobe", ACCOUNT, prefix=prefix), pace)
    first = store.reserve(5.0)

    async def more() -> list[Any]:
        decisions = [await store.reserve_async(5.0) for _ in range(3)]
        await store.aclose()
        return decisions

    decisions = [first, *asyncio.run(more())]
    store.close()
    assert all(d.granted for d in decisions)
    _replay(decisions, pace, 5.0)
    assert decisions[-1].start - decisions[0].start == pytest.approx(3 * pace.interval, abs=3e-6)


def test_key_is_hashed_tagged_and_expires(redis_url: str, prefix: str) -> None:
    """The only key written holds no AccessKey id, has one hash tag and an expiry."""
    settings = Settings(endpoint="127.0.0.1:1", max_rate=100.0, rate_store=redis_url)
    governor = build_governor(settings, operation="SendMessageToGlobe", account=ACCOUNT,
                              prefix=prefix)
    assert isinstance(governor, SharedGovernor)
    governor.acquire(5.0)
    governor.close()
    client = redis.Redis.from_url(redis_url)
    keys = [key.decode() for key in client.scan_iter(match=f"{prefix}:*")]
    assert keys == [store_key("SendMessageToGlobe", ACCOUNT, prefix=prefix)]
    assert ACCOUNT not in keys[0] and keys[0].count("{") == 1
    assert 0 < client.pttl(keys[0]) <= 1100
    client.close()


def test_account_from_a_callable_is_resolved_once_and_hashed(
    redis_url: str, prefix: str
) -> None:
    """An account given as a callable is asked once, on the first decision, and never stored."""
    asked: list[int] = []

    def account() -> str:
        asked.append(1)
        return ACCOUNT

    settings = Settings(endpoint="127.0.0.1:1", max_rate=100.0, rate_store=redis_url)
    governor = build_governor(settings, operation="SendMessageToGlobe", account=account,
                              prefix=prefix)
    assert isinstance(governor, SharedGovernor) and asked == []
    governor.acquire(5.0)
    governor.acquire(5.0)
    governor.close()
    assert asked == [1]
    client = redis.Redis.from_url(redis_url)
    keys = [key.decode() for key in client.scan_iter(match=f"{prefix}:*")]
    client.close()
    assert keys == [store_key("SendMessageToGlobe", ACCOUNT, prefix=prefix)]


def test_refusal_carries_the_exact_retry_after(redis_url: str, prefix: str) -> None:
    """A slot past the budget raises Throttled [LocalRateLimit] and reserves nothing."""
    governor = SharedGovernor(redis_url, rate=1.0, operation="SendMessageToGlobe",
                              account=ACCOUNT, prefix=prefix)
    assert governor.acquire(5.0) == 0.0
    with pytest.raises(Throttled) as caught:
        governor.acquire(0.5)
    assert caught.value.code == "LocalRateLimit"
    assert 0.5 <= caught.value.retry_after <= 1.03 + 1e-3
    later = governor.acquire(5.0)
    assert later == pytest.approx(caught.value.retry_after, abs=0.01)
    governor.close()


# A child process: connect, say "ready", wait for "go", make COUNT reservations and print their
# starts (server clock) as JSON.
_GRANT_CHILD = """
import json, math, sys
from globesms._governor import Pace, RedisRate
url, key, rate, count = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
store = RedisRate(url, key, Pace.for_rate(rate))
store.reserve_many([], 0.0)
print("ready", flush=True)
sys.stdin.readline()
print(json.dumps([store.reserve(math.inf).start for _ in range(count)]), flush=True)
store.close()
"""


def test_processes_share_one_budget_exactly(redis_url: str, prefix: str) -> None:
    """Four processes, 1,200 grants at 400/s: no 1-second window over 400, aggregate >= 95 %."""
    rate, per_process = 400.0, 300
    key = store_key("SendMessageToGlobe", ACCOUNT, prefix=prefix)
    children = [subprocess.Popen(
        [sys.executable, "-c", _GRANT_CHILD, redis_url, key, str(rate), str(per_process)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(4)]
    try:
        for child in children:  # all connected before any reserves: the budget is contended
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        starts = sorted(s for child in children
                        for s in json.loads(child.communicate(timeout=60)[0]))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    assert len(starts) == 4 * per_process
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= Pace.for_rate(rate).interval - 2e-6
    assert max_in_window(starts) <= rate
    span = starts[-1] - starts[0] + Pace.for_rate(rate).interval
    assert len(starts) / span >= 0.95 * rate


def _records(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == event]


def test_unreachable_store_falls_back_to_the_local_share(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A closed port: decisions go local at rate / rate_instances with one WARNING, no secret."""
    caplog.set_level(logging.INFO, logger="globesms")
    clock = Frozen()
    governor = SharedGovernor("redis://app:pw-Hidden-1@127.0.0.1:1/0", rate=100.0,
                              operation="SendMessageToGlobe", account=ACCOUNT, instances=4,
                              clock=clock)
    waits = [governor.acquire(15.0) for _ in range(4)]
    assert not governor.using_store
    interval = Pace.for_rate(25.0).interval
    assert waits[1:] == pytest.approx([interval, 2 * interval, 3 * interval], abs=0.0051)
    warnings = _records(caplog, "rate.fallback")
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert warnings[0].error_class == "ConnectionError"  # type: ignore[attr-defined]
    for record in caplog.records:
        assert "pw-Hidden-1" not in record.getMessage()
        assert "pw-Hidden-1" not in str(record.__dict__)
    assert "pw-Hidden-1" not in repr(governor)
    governor.close()


def test_unreachable_store_falls_back_on_the_async_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """acquire_async falls back the same way and raises nothing to the caller."""
    caplog.set_level(logging.INFO, logger="globesms")
    governor = SharedGovernor("redis://127.0.0.1:1/0", rate=10.0,
                              operation="SendMessageToGlobe", account=ACCOUNT, clock=Frozen())

    async def two() -> list[float]:
        waits = [await governor.acquire_async(15.0), await governor.acquire_async(15.0)]
        await governor.aclose()
        return waits

    waits = asyncio.run(two())
    assert waits[0] == 0.0 and waits[1] == pytest.approx(Pace.for_rate(10.0).interval, abs=0.0051)
    assert len(_records(caplog, "rate.fallback")) == 1
    governor.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OwnRedis:
    """A throwaway redis-server on a free loopback port (never the shared one)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:  # wait for the condition (it answers), with a bound
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def keys(self) -> list[bytes]:
        client = redis.Redis(port=self.port)
        try:
            return list(client.scan_iter())
        finally:
            client.close()


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    """A private redis-server this test may stop and restart."""
    if shutil.which("redis-server") is None:
        unavailable("GLOBESMS_REQUIRE_REDIS", "no redis-server binary to stop and restart")
    server = OwnRedis()
    server.start()
    yield server
    server.stop()


def test_store_stopped_and_restarted_falls_back_then_shares_again(
    own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """Stop: local share, one WARNING. Restart: after the back-off one INFO, then shared."""
    caplog.set_level(logging.INFO, logger="globesms")
    clock = Frozen()
    governor = SharedGovernor(own_redis.url, rate=20.0, operation="SendMessageToGlobe",
                              account=ACCOUNT, instances=2, clock=clock)
    governor.acquire(15.0)
    assert governor.using_store and len(own_redis.keys()) == 1

    own_redis.stop()
    local = [governor.acquire(15.0) for _ in range(3)]
    assert not governor.using_store
    assert local[-1] >= 2 * Pace.for_rate(10.0).interval
    assert len(_records(caplog, "rate.fallback")) == 1

    own_redis.start()
    governor.acquire(15.0)  # within the back-off: still local, the store is not asked
    assert not governor.using_store and own_redis.keys() == []

    clock.now += 1.01  # past the first back-off (1 s)
    backlog = governor.fallback.backlog_end() - clock.now
    wait = governor.acquire(15.0)
    assert governor.using_store and len(own_redis.keys()) == 1
    assert wait >= backlog  # the store's first slot comes after this process's local backlog
    restored = _records(caplog, "rate.restored")
    assert len(restored) == 1 and restored[0].levelno == logging.INFO
    assert len(_records(caplog, "rate.fallback")) == 1
    # Others may still be on their fallback: for a while this process also keeps to its share.
    after = [governor.acquire(15.0) for _ in range(3)]
    local_interval = Pace.for_rate(10.0).interval
    assert after[-1] - wait >= 2 * local_interval - 0.011
    clock.now += 60.0  # past the grace: the shared budget alone paces again
    fresh = [governor.acquire(15.0) for _ in range(3)]
    assert fresh[-1] - fresh[0] < 2 * local_interval - 0.011
    governor.close()


def test_failed_probe_doubles_the_back_off(own_redis: OwnRedis) -> None:
    """While the store stays down, probes come after 1 s, then 2 s: no call in between."""
    clock = Frozen()
    governor = SharedGovernor(own_redis.url, rate=20.0, operation="SendMessageToGlobe",
                              account=ACCOUNT, clock=clock)
    own_redis.stop()
    governor.acquire(15.0)
    clock.now += 1.01
    governor.acquire(15.0)  # the probe fails: next one in 2 s
    own_redis.start()
    clock.now += 1.5
    governor.acquire(15.0)
    assert not governor.using_store and own_redis.keys() == []
    clock.now += 0.6
    governor.acquire(15.0)
    assert governor.using_store and len(own_redis.keys()) == 1
    governor.close()


def test_one_script_call_decides_for_several_callers_in_order(
    redis_url: str, prefix: str
) -> None:
    """reserve_many grants and refuses each budget in turn, as sequential reserve() calls."""
    pace = Pace.for_rate(10.0)
    store = RedisRate(redis_url, store_key("SendMessageToGlobe", ACCOUNT, prefix=prefix), pace)
    budgets = [5.0, 0.05, 5.0, 0.0, 5.0, 0.25, 0.35]
    decisions = store.reserve_many(budgets)
    store.close()
    assert [d.granted for d in decisions] == [True, False, True, False, True, False, True]
    tat = -math.inf
    for decision, budget in zip(decisions, budgets, strict=True):
        expected = reserve(tat, decision.server_now, pace, budget)
        assert decision.granted == expected.granted
        assert decision.wait == pytest.approx(expected.wait, abs=2e-6)
        tat = expected.tat if expected.tat is not None else tat


def test_concurrent_async_callers_share_script_calls(own_redis: OwnRedis) -> None:
    """Fifty tasks at once get fifty distinct slots from fewer than fifty script calls."""
    governor = SharedGovernor(own_redis.url, rate=1000.0, operation="SendMessageToGlobe",
                              account=ACCOUNT, grid=0.0)

    async def burst() -> list[float]:
        waits = await asyncio.gather(*[governor.acquire_async(15.0) for _ in range(50)])
        await governor.aclose()
        return list(waits)

    waits = asyncio.run(burst())
    governor.close()
    client = redis.Redis(port=own_redis.port)
    stats = client.info("commandstats")
    client.close()
    calls = sum(v["calls"] for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))
    assert 1 <= calls < 50
    interval = Pace.for_rate(1000.0).interval
    assert max(waits) >= 48 * interval  # fifty slots, one interval apart
