"""The send-rate governor: one budget per account and operation, in one process or shared.

Every governed request first asks a :class:`Governor` for its start slot. The policy is GCRA
(a token bucket kept as one "theoretical arrival time", ``tat``): :func:`reserve` is a pure
function of that state, the time and the caller's budget, so threads, tasks and processes queue in
order without a lock held while they wait. A slot that lies past the caller's budget is not
reserved and the caller gets :class:`Throttled` ``[LocalRateLimit]`` with the exact
``retry_after``.

Two homes for the state:

* :class:`LocalGovernor`, in this process (the default);
* :class:`SharedGovernor`, in Redis (``rate_store``): one Lua script call per decision, on the
  Redis server's clock (``TIME``), one key per account and operation under a hash tag (Redis
  Cluster), an expiry on every key, the AccessKey id hashed. When the store cannot be reached it
  falls back within half a second to a :class:`LocalGovernor` at ``rate / rate_instances`` and
  tries the store again after a back-off.

Pacing is exact at the endpoint, not only at the governor: slots are spaced for a slightly lower
rate than the cap (:data:`LAG_ALLOWANCE`), so the 10-25 ms of scheduling between a granted slot and
the request reaching the endpoint cannot push more than the cap into any 1-second window; waits
are rounded up to a :data:`WAKE_GRID` so one timer wake-up releases several sends; and
:func:`pace` / :func:`pace_async` give up a slot whose wait ended too late (:data:`LATE_LIMIT`)
rather than start it late. Concurrent tasks of one event loop share one script call.

The service wires it: one governor per governed operation from :func:`build_governor`, and
``pace`` / ``pace_async`` before each attempt; :func:`default_max_in_flight` is the sizing rule.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from ._errors import ConfigurationError, Throttled
from ._operations import OPERATIONS

if TYPE_CHECKING:
    from ._settings import Settings

logger = logging.getLogger("globesms.governor")

#: Documented per-account limits of the 2018-05-01 operations (requests per second, Alibaba's
#: flow-control page; the gateway drops what is over with ``Throttling.*``), by action: read from
#: the operation descriptors, which hold them.
OPERATION_LIMITS: dict[str, float] = {op.action: op.account_rate for op in OPERATIONS}

#: Seconds a start may drift after its slot (the wake grid plus the scheduling lag between a
#: granted slot and the request reaching the endpoint). Slots are spaced for
#: ``rate / (1 + LAG_ALLOWANCE)`` so that any 1-second window at the endpoint holds at most
#: ``rate`` starts when starts drift by up to this much.
LAG_ALLOWANCE = 0.03

#: How late (seconds) a wait may end and its slot still be used: of the 25 ms of scheduling lag
#: the pacing allows for, 10 ms are left for the request to get from the wake-up to the endpoint.
LATE_LIMIT = 0.015

#: Waits are rounded up to this grid (seconds, on the governor's clock) so that sends whose slots
#: fall close together wake on one timer instead of one each.
WAKE_GRID = 0.005

#: Socket connect and read timeouts for the rate store, and the back-off before trying a store
#: that failed again (doubling up to the maximum).
STORE_TIMEOUT = 0.2
STORE_RETRY_FIRST = 1.0
STORE_RETRY_MAX = 8.0
#: After the store answers again, how long a process also keeps to its fallback share: other
#: processes may still be on theirs until their next probe (at most STORE_RETRY_MAX away).
RESTORE_GRACE = STORE_RETRY_MAX + 2.0

#: Redis key prefix; the account hash is the hash tag: ``globesms:rate:{<hash>}:<operation>``.
DEFAULT_PREFIX = "globesms:rate"

#: Today's fixed in-flight default, and the bounds of the derived one.
MIN_IN_FLIGHT = 256
MAX_IN_FLIGHT = 2048
#: The answer latency the derived ``max_in_flight`` keeps ``max_rate`` going through.
SIZING_LATENCY = 0.5

_EVENT_FALLBACK = "rate.fallback"
_EVENT_RESTORED = "rate.restored"


class Governor(Protocol):
    """Where a governed request gets its start slot (one per operation and account)."""

    def acquire(self, budget: float) -> float:
        """Reserve the next start slot; return the seconds to wait before starting.

        ``budget`` is the seconds left for this call. If the slot lies past it, nothing is
        reserved and :class:`Throttled` ``[LocalRateLimit]`` carries the exact ``retry_after``.
        """
        ...

    async def acquire_async(self, budget: float) -> float:
        """:meth:`acquire` for asyncio; never blocks the event loop on the store."""
        ...

    def close(self) -> None:
        """Release connections (idempotent)."""
        ...


# -- the policy, sans I/O -------------------------------------------------------------------------


@dataclass(frozen=True)
class Pace:
    """Slot spacing: ``interval`` seconds apart, ``tolerance`` seconds of burst allowance."""

    interval: float
    tolerance: float

    @classmethod
    def for_rate(cls, rate: float, *, burst: int = 1,
                 lag_allowance: float = LAG_ALLOWANCE) -> Pace:
        """The spacing that keeps any 1-second window at the endpoint within ``rate`` starts.

        Starts spaced ``interval`` apart that drift by up to ``lag_allowance`` put at most
        ``floor((1 + lag_allowance) / interval) + 1`` into one second, so the interval must be
        longer than ``(1 + lag_allowance) / rate``: it is, by one part in a million.
        """
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a number of requests per second > 0, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        interval = (1.0 + lag_allowance) / rate * (1 + 1e-6) if lag_allowance else 1.0 / rate
        return cls(interval=interval, tolerance=(burst - 1) * interval)

    @property
    def rate(self) -> float:
        """The rate slots are spaced for (requests per second)."""
        return 1.0 / self.interval


@dataclass(frozen=True)
class Decision:
    """One answer of :func:`reserve`: the new state (None if refused) and the wait."""

    tat: float | None
    wait: float

    @property
    def granted(self) -> bool:
        return self.tat is not None


def reserve(tat: float, now: float, pace: Pace, budget: float,
            not_before: float = -math.inf) -> Decision:
    """GCRA: reserve the next start slot at ``now`` given the stored ``tat``.

    The slot starts at ``max(tat - tolerance, now, not_before)``; the new ``tat`` is one interval
    past ``max(tat, now)`` (or past ``not_before`` when that is later). A slot ``budget`` seconds
    or more away is refused: ``tat`` is None and ``wait`` is the exact time until a free slot.
    The Redis script is this function, line for line, in microseconds.
    """
    base = max(tat, now)
    start = max(base - pace.tolerance, now)
    if not_before > start:
        start = not_before
        base = max(base, not_before)
    wait = start - now
    if wait >= budget:
        return Decision(None, wait)
    return Decision(base + pace.interval, wait)


def coalesce(now: float, wait: float, budget: float, grid: float = WAKE_GRID) -> float:
    """Round ``wait`` up so the start falls on the clock's ``grid`` (never past ``budget``).

    Sends whose slots lie within one grid step then share one timer wake-up. Rounding up moves
    a start later by less than ``grid``, so it takes that much of :data:`LAG_ALLOWANCE`: 30 ms
    covers the 5 ms grid and 25 ms of scheduling lag.
    """
    if grid <= 0 or wait <= 0:  # a free slot now starts now: no timer, no wake-up to share
        return wait
    release = math.ceil((now + wait) / grid) * grid
    rounded = release - now
    return rounded if rounded < budget else wait


def throttled(wait: float) -> Throttled:
    """The error for a slot past the caller's budget, with the exact ``retry_after``."""
    return Throttled(
        f"the client-side rate limit (max_rate) has no free slot before the deadline; "
        f"retry in {wait:.3f} s or raise max_rate",
        code="LocalRateLimit",
        retry_after=wait,
    )


def account_tag(account: str | None) -> str:
    """A stable, non-reversible tag for an AccessKey id (never the id in clear)."""
    subject = "-" if account is None else account
    return hashlib.sha256(f"globesms-rate\x00{subject}".encode()).hexdigest()[:32]


def store_key(operation: str, account: str | None, *, prefix: str = DEFAULT_PREFIX) -> str:
    """The Redis key of one account's budget for one operation, hash-tagged by account."""
    return f"{prefix}:{{{account_tag(account)}}}:{operation}"


#: An AccessKey id, None, or a callable giving it on first use (e.g. once credentials resolve).
Account = str | None | Callable[[], str | None]


def _key_for(operation: str, account: Account, prefix: str) -> str | Callable[[], str]:
    if callable(account):
        resolve = account
        return lambda: store_key(operation, resolve(), prefix=prefix)
    return store_key(operation, account, prefix=prefix)


def pace(governor: Governor, budget: Callable[[], float], *,
         sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic) -> float:
    """Wait for a start slot of ``governor``; return the seconds waited, when it may start.

    ``budget`` gives the seconds left for the call each time it is asked. A slot whose wait
    ended more than :data:`LATE_LIMIT` late (the process was not scheduled) is given up and a
    new one reserved: starting late would bunch this start with later ones and overrun the cap
    at the endpoint. Raises :class:`Throttled` when no slot fits the budget.
    """
    waited = 0.0
    while True:
        wait = governor.acquire(budget())
        if wait <= 0:
            return waited
        due = clock() + wait
        sleep(wait)
        waited += wait
        if clock() - due <= LATE_LIMIT:
            return waited


async def pace_async(governor: Governor, budget: Callable[[], float], *,
                     sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                     clock: Callable[[], float] = time.monotonic) -> float:
    """:func:`pace` for asyncio."""
    waited = 0.0
    while True:
        wait = await governor.acquire_async(budget())
        if wait <= 0:
            return waited
        due = clock() + wait
        await sleep(wait)
        waited += wait
        if clock() - due <= LATE_LIMIT:
            return waited


def default_max_in_flight(max_rate: float | None, read_timeout: float) -> int:
    """The ``max_in_flight`` that keeps ``max_rate`` going while answers are slow.

    Throughput is capped at ``max_in_flight / latency``. The derived bound holds ``max_rate``
    while answers take up to half a second (or ``read_timeout``, if shorter), never less than
    256 (today's default) and never more than 2,048 connections.
    """
    if max_rate is None:
        return MIN_IN_FLIGHT
    needed = math.ceil(max_rate * min(read_timeout, SIZING_LATENCY))
    return max(MIN_IN_FLIGHT, min(MAX_IN_FLIGHT, needed))


# -- in this process ------------------------------------------------------------------------------


class LocalGovernor:
    """The budget in this process, shared by every thread and task that holds this object."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        burst: int = 1,
        lag_allowance: float = LAG_ALLOWANCE,
        grid: float = WAKE_GRID,
    ) -> None:
        self.pace = Pace.for_rate(rate, burst=burst, lag_allowance=lag_allowance)
        self._clock = clock
        self._grid = grid
        self._lock = threading.Lock()
        self._tat = -math.inf

    def __repr__(self) -> str:
        return f"LocalGovernor(rate={self.pace.rate:.3f})"

    def acquire(self, budget: float) -> float:
        with self._lock:
            now = self._clock()
            decision = reserve(self._tat, now, self.pace, budget)
            if decision.tat is None:
                raise throttled(decision.wait)
            self._tat = decision.tat
        return coalesce(now, decision.wait, budget, self._grid)

    async def acquire_async(self, budget: float) -> float:
        return self.acquire(budget)

    def close(self) -> None:
        pass

    def not_before(self, at: float) -> None:
        """Start no later slot before ``at`` (a reading of this governor's clock)."""
        with self._lock:
            self._tat = max(self._tat, at)

    def backlog_end(self) -> float:
        """When the last reserved slot starts (a reading of the clock; -inf if none)."""
        with self._lock:
            return self._tat - self.pace.interval


# -- in Redis -------------------------------------------------------------------------------------

#: Epoch of the script's microsecond clock (2025-01-01 UTC): keeps doubles exact to < 0.01 µs.
SCRIPT_EPOCH = 1735689600

# :func:`reserve` in microseconds on the server clock, applied to each budget in turn: one call
# decides for every caller of a batch. KEYS[1]: the budget's key. ARGV: interval, tolerance,
# minimum wait, then one budget per caller (all µs). Returns {floor(now µs), ceil(tat µs) after the
# call (where the queue of granted slots ends), then granted 0/1 and ceil(wait µs) per caller}.
RESERVE_LUA = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = (tonumber(t[1]) - $EPOCH) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local not_before = now + tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
local out = {math.floor(now), 0}
local changed = false
for i = 4, #ARGV do
  local base = math.max(tat, now)
  local start = math.max(base - tolerance, now)
  if not_before > start then
    start = not_before
    base = math.max(base, not_before)
  end
  local wait = start - now
  if wait >= tonumber(ARGV[i]) then
    out[#out + 1] = 0
  else
    out[#out + 1] = 1
    tat = base + interval
    changed = true
  end
  out[#out + 1] = math.ceil(wait)
end
if changed then
  redis.call('SET', KEYS[1], string.format('%.3f', tat),
             'PX', math.ceil((tat - now) / 1000) + 1000)
end
out[2] = math.ceil(math.max(tat, now))
return out
""".replace("$EPOCH", str(SCRIPT_EPOCH))

#: Most callers one script call decides for.
MAX_BATCH = 256


@dataclass(frozen=True)
class StoreDecision:
    """A decision of the Redis script: granted, the wait and the server clock (seconds)."""

    granted: bool
    wait: float
    server_now: float
    queue_end: float = 0.0
    """Where the granted slots of every process ended after this call (server clock)."""

    @property
    def start(self) -> float:
        """The slot's start on the server clock (seconds since :data:`SCRIPT_EPOCH`)."""
        return self.server_now + self.wait


def _store_args(pace: Pace, budgets: list[float], min_wait: float) -> list[str]:
    # an unbounded budget is any slot within 30 years
    return [_us(pace.interval), _us(pace.tolerance), _us(max(0.0, min_wait)),
            *[_us(min(max(0.0, budget), 1e9)) for budget in budgets]]


def _us(seconds: float) -> str:
    """Seconds as a microsecond argument, exact to a thousandth of a microsecond."""
    return f"{seconds * 1e6:.3f}"


def _decisions(reply: Any) -> list[StoreDecision]:
    now, end = int(reply[0]) / 1e6, int(reply[1]) / 1e6
    return [StoreDecision(bool(int(reply[i])), int(reply[i + 1]) / 1e6, now, end)
            for i in range(2, len(reply), 2)]


def _redis_modules() -> Any:
    try:
        import redis
    except ImportError:
        raise ImportError(
            "rate_store needs the redis client: pip install 'globesms[redis]'"
        ) from None
    return redis


def safe_url(url: str) -> str:
    """``url`` without user name or password, for logs and error messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class RedisRate:
    """The Redis side of :class:`SharedGovernor`: one script call per decision, sync or async.

    Built lazily from the URL; short socket timeouts and no client retries, so a dead store
    costs one caller at most :data:`STORE_TIMEOUT` per connect and read.
    """

    def __init__(self, url: str, key: str | Callable[[], str], pace: Pace, *,
                 timeout: float = STORE_TIMEOUT) -> None:
        self.url = url
        self._key = key
        self.pace = pace
        self._timeout = timeout
        self._redis = _redis_modules()
        #: What counts as the store failing: any client error, and a socket error under it.
        self.errors: tuple[type[BaseException], ...] = (self._redis.RedisError, OSError)
        self._sync: Any = None
        self._sync_script: Any = None
        self._lock = threading.Lock()
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"RedisRate({safe_url(self.url)!r})"

    @property
    def key(self) -> str:
        """The budget's key (worked out on first use when the account comes from a callable)."""
        if not isinstance(self._key, str):
            self._key = self._key()
        return self._key

    def _options(self, retry: Any) -> dict[str, Any]:
        return {
            "socket_timeout": self._timeout,
            "socket_connect_timeout": self._timeout,
            "retry": retry,
            "retry_on_timeout": False,
            "health_check_interval": 0,
        }

    def _sync_client(self) -> Any:
        with self._lock:
            if self._sync_script is None:
                from redis.backoff import NoBackoff
                from redis.retry import Retry

                self._sync = self._redis.Redis.from_url(
                    self.url, **self._options(Retry(NoBackoff(), 0)))
                self._sync_script = self._sync.register_script(RESERVE_LUA)
            return self._sync_script

    def _async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        script = self._async.get(loop)
        if script is None:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            for stale in [other for other in self._async if other.is_closed()]:
                del self._async[stale]
            client = aioredis.Redis.from_url(self.url, **self._options(Retry(NoBackoff(), 0)))
            script = self._async[loop] = client.register_script(RESERVE_LUA)
        return script

    def reserve(self, budget: float, min_wait: float = 0.0) -> StoreDecision:
        """One script call for one caller; raises the client's error when the store fails."""
        return self.reserve_many([budget], min_wait)[0]

    def reserve_many(self, budgets: list[float], min_wait: float = 0.0) -> list[StoreDecision]:
        """One script call deciding for several callers, in order."""
        script = self._sync_client()
        return _decisions(script(keys=[self.key], args=_store_args(self.pace, budgets, min_wait)))

    async def reserve_async(self, budget: float, min_wait: float = 0.0) -> StoreDecision:
        return (await self.reserve_many_async([budget], min_wait))[0]

    async def reserve_many_async(self, budgets: list[float],
                                 min_wait: float = 0.0) -> list[StoreDecision]:
        script = self._async_client()
        reply = await script(keys=[self.key], args=_store_args(self.pace, budgets, min_wait))
        return _decisions(reply)

    def close(self) -> None:
        with self._lock:
            if self._sync is not None:
                self._sync.close()
            self._sync = self._sync_script = None
        self._async.clear()

    async def aclose(self) -> None:
        """Close this event loop's connections."""
        script = self._async.pop(asyncio.get_running_loop(), None)
        if script is not None:
            await script.registered_client.aclose()


class ClockLink:
    """How late an answer of the store reaches us, to start on the slot and not after it.

    ``our clock - server clock`` is smallest for the quickest answers; the excess over the
    smallest seen in the last one to two seconds is time the answer spent queued (event loop,
    scheduler), which the wait need not add again. The window follows clock drift.
    """

    def __init__(self, period: float = 1.0) -> None:
        self._period = period
        self._since = -math.inf
        self._current = math.inf
        self._previous = math.inf

    def delay(self, local: float, server: float) -> float:
        """Seconds this answer is later than the quickest recent one (>= 0)."""
        sample = local - server
        if local - self._since >= self._period:
            self._previous, self._current, self._since = self._current, sample, local
        elif sample < self._current:
            self._current = sample
        return sample - min(self._current, self._previous)


class _Queue:
    """The tasks of one event loop waiting for the next script call, and the task making it."""

    def __init__(self) -> None:
        self.waiting: list[tuple[float, asyncio.Future[StoreDecision]]] = []
        self.task: asyncio.Task[None] | None = None


class SharedGovernor:
    """One budget for every process and host that uses the same store, account and operation.

    Falls back to a :class:`LocalGovernor` at ``rate / instances`` when the store fails (one
    WARNING), tries the store again after a back-off (1 s, doubling to 8 s) and logs one INFO
    when it answers again. Transitions keep the account within the budget: the fallback starts
    after the last slot the store had granted to any process (as last seen here, moved on by
    the backlog seen then, as others kept reserving); the store, once back, grants no slot
    before the last one the fallback granted here, and for :data:`RESTORE_GRACE` this process
    also keeps to its fallback share.
    """

    def __init__(
        self,
        url: str,
        *,
        rate: float,
        operation: str,
        account: Account,
        instances: int = 1,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] = time.monotonic,
        lag_allowance: float = LAG_ALLOWANCE,
        grid: float = WAKE_GRID,
        timeout: float = STORE_TIMEOUT,
    ) -> None:
        self.operation = operation
        self.store = RedisRate(url, _key_for(operation, account, prefix),
                               Pace.for_rate(rate, lag_allowance=lag_allowance),
                               timeout=timeout)
        self.fallback = LocalGovernor(rate / instances, clock=clock,
                                      lag_allowance=lag_allowance, grid=grid)
        self._clock = clock
        self._grid = grid
        self._lock = threading.Lock()
        self._up = True
        self._probing = False
        self._retry_at = 0.0
        self._backoff = STORE_RETRY_FIRST
        self._grace_until = -math.inf
        self._queue_end = -math.inf  # where every process's granted slots ended, on our clock
        self._backlog = 0.0  # how far ahead of now they ended, when last seen
        self._last_start = -math.inf  # this process's latest granted start, on our clock
        self._link = ClockLink()
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        state = "store" if self._up else "fallback"
        return f"SharedGovernor({self.store!r}, operation={self.operation!r}, using={state!r})"

    @property
    def using_store(self) -> bool:
        """Whether decisions currently go to the store (False while on the fallback)."""
        return self._up

    # The state machine is shared by the sync and async paths; only the call differs.

    def _route(self, now: float) -> tuple[bool, bool, float]:
        """Whether to ask the store now, whether that call is a probe, and its minimum wait."""
        with self._lock:
            if self._up:
                return True, False, 0.0
            if self._probing or now < self._retry_at:
                return False, False, 0.0
            self._probing = True
        return True, True, max(0.0, self.fallback.backlog_end() - now)

    def _floor(self, now: float, budget: float, probe: bool) -> float:
        """Just after the store came back, also keep to this process's fallback share.

        Other processes may still pace on their own fallback share until their next probe; so
        for :data:`RESTORE_GRACE` a slot here needs both a shared slot and a local one, and the
        processes together stay within ``max_rate``. Returns when the local slot starts.
        """
        if probe or now >= self._grace_until:
            return -math.inf
        return now + self.fallback.acquire(budget)

    def _granted(self, asked: float, decision: StoreDecision, budget: float, probe: bool,
                 floor_at: float = -math.inf) -> float:
        now = self._clock()  # the wait runs from the answer; the budget from the question
        budget -= now - asked
        with self._lock:
            if probe:
                self._up, self._probing = True, False
                self._backoff = STORE_RETRY_FIRST
                self._grace_until = now + RESTORE_GRACE
            late = self._link.delay(now, decision.server_now)
            wait = max(0.0, decision.wait - late, floor_at - now)
            if decision.granted:
                self._last_start = max(self._last_start, now + wait)
            end = now + decision.queue_end - decision.server_now - late
            self._queue_end = max(self._queue_end, end)
            self._backlog = max(0.0, end - now)
        if probe:
            logger.info("%s rate store %s answers again; sharing the budget", _EVENT_RESTORED,
                        safe_url(self.store.url),
                        extra={"event": _EVENT_RESTORED, "operation": self.operation,
                               "store": safe_url(self.store.url)})
        if not decision.granted:
            raise throttled(decision.wait)
        return coalesce(now, wait, budget, self._grid)

    def _failed(self, now: float, error: BaseException, probe: bool) -> None:
        with self._lock:
            was_up = self._up
            if probe:
                self._probing = False
                self._backoff = min(self._backoff * 2, STORE_RETRY_MAX)
            elif not was_up:
                return  # another caller already switched to the fallback
            self._up = False
            self._retry_at = now + self._backoff
            # Other processes kept reserving since this one last asked: assume the backlog it saw.
            last = max(self._last_start + self.fallback.pace.interval, self._queue_end,
                       now + self._backlog)
        if was_up:
            self.fallback.not_before(last)
            logger.warning(
                "%s rate store %s unreachable (%s); pacing this process alone at %.3f/s",
                _EVENT_FALLBACK, safe_url(self.store.url), _describe(error),
                self.fallback.pace.rate,
                extra={"event": _EVENT_FALLBACK, "operation": self.operation,
                       "store": safe_url(self.store.url), "error_class": type(error).__name__,
                       "retry_in_ms": round(self._backoff * 1000)})

    def _local(self, budget: float) -> float:
        wait = self.fallback.acquire(budget)
        with self._lock:
            self._last_start = max(self._last_start, self._clock() + wait)
        return wait

    def acquire(self, budget: float) -> float:
        now = self._clock()
        ask, probe, min_wait = self._route(now)
        if ask:
            floor_at = self._floor(now, budget, probe)
            try:
                decision = self.store.reserve(budget, min_wait)
            except self.store.errors as error:
                self._failed(now, error, probe)
            else:
                return self._granted(now, decision, budget, probe, floor_at)
        return self._local(budget - (self._clock() - now))

    async def acquire_async(self, budget: float) -> float:
        now = self._clock()
        ask, probe, min_wait = self._route(now)
        if ask:
            floor_at = self._floor(now, budget, probe)
            try:
                if probe:
                    decision = await self.store.reserve_async(budget, min_wait)
                else:
                    decision = await self._batched(now + budget)
            except self.store.errors as error:
                self._failed(now, error, probe)
            else:
                return self._granted(now, decision, budget, probe, floor_at)
        return self._local(budget - (self._clock() - now))

    async def _batched(self, deadline: float) -> StoreDecision:
        """Join this event loop's next script call: one call decides for every task waiting."""
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _Queue()
        future: asyncio.Future[StoreDecision] = loop.create_future()
        queue.waiting.append((deadline, future))
        if queue.task is None:
            queue.task = loop.create_task(self._drain(queue))
        return await future

    async def _drain(self, queue: _Queue) -> None:
        try:
            while queue.waiting:
                batch = queue.waiting[:MAX_BATCH]
                del queue.waiting[:MAX_BATCH]
                now = self._clock()
                try:
                    decisions = await self.store.reserve_many_async(
                        [deadline - now for deadline, _ in batch])
                except Exception as error:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (_, future), decision in zip(batch, decisions, strict=True):
                    if not future.done():
                        future.set_result(decision)
        except BaseException:
            for _, future in queue.waiting:
                future.cancel()
            queue.waiting.clear()
            raise
        finally:
            queue.task = None

    def close(self) -> None:
        self.store.close()

    async def aclose(self) -> None:
        """Close this event loop's store connections (the sync ones stay until :meth:`close`)."""
        await self.store.aclose()


def _describe(error: BaseException) -> str:
    """The error class and, for a refused script, the server's reason (never the URL)."""
    name = type(error).__name__
    text = str(error)
    if name == "ResponseError" or name == "NoPermissionError" or text.startswith("NOPERM"):
        return f"{name}: {text.split(chr(10))[0][:120]}"
    return name


# -- the factory ----------------------------------------------------------------------------------


class _Documented:
    def __repr__(self) -> str:
        return "DOCUMENTED"


#: Pass as ``rate`` to :func:`build_governor` to hold an operation to its documented limit.
DOCUMENTED: Any = _Documented()
_DEFAULT: Any = object()


def build_governor(
    settings: Settings,
    *,
    operation: str,
    account: Account,
    rate: float | None = _DEFAULT,
    prefix: str = DEFAULT_PREFIX,
    clock: Callable[[], float] = time.monotonic,
) -> Governor | None:
    """The governor for one operation and account, or None when the operation is not governed.

    ``account`` is the AccessKey id, None, or a callable returning it (called once, on the first
    decision that needs the store). Budgets: ``SendMessageToGlobe`` runs at ``max_rate``;
    ``BatchSendMessageToGlobe`` at one request per second (shared per account when
    ``rate_store`` is set); other operations are not governed unless ``rate`` is given
    (``DOCUMENTED`` for their limit in :data:`OPERATION_LIMITS`). With ``rate_store`` the budget
    is shared through Redis, otherwise it lives in the returned object.
    """
    if operation not in OPERATION_LIMITS:
        raise ConfigurationError(
            f"{operation} is not a governed operation; known: {', '.join(OPERATION_LIMITS)}",
            code="UnknownOperation",
        )
    if rate is DOCUMENTED:
        rate = OPERATION_LIMITS[operation]
    elif rate is _DEFAULT:
        if operation == "SendMessageToGlobe":
            rate = settings.max_rate
        elif operation == "BatchSendMessageToGlobe":
            rate = OPERATION_LIMITS[operation]
        else:
            rate = None
    if rate is None:
        return None
    if settings.rate_store is None:
        return LocalGovernor(rate, clock=clock)
    return SharedGovernor(settings.rate_store, rate=rate, operation=operation, account=account,
                          instances=settings.rate_instances, prefix=prefix, clock=clock)
