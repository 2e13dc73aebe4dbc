"""The decisions, as pure functions of state and time (no I/O, no clock, no randomness).

The Python stores run these inside one transaction (:mod:`._engine`); the Redis store runs the
same rules in one Lua script per decision (:mod:`._redis`), and one contract test suite holds the
three stores to the same answers.

State of one challenge (per number and purpose): its id, the bound code HMAC, the expiry, when a
resend is allowed, how many SMS it sent and how many wrong checks it took (kept across resends).
Budgets are counters in clock-aligned windows; the conversion gate keeps starts and approvals in
the current and previous window (a sliding estimate) and a block that doubles while it repeats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Refusal codes (``Throttled.code``).
LOCKED = "ChallengeLocked"
COOLDOWN = "ResendCooldown"
NUMBER_BUDGET = "NumberBudget"
KEY_BUDGET = "KeyBudget"
PREFIX_BUDGET = "PrefixBudget"
COUNTRY_BUDGET = "CountryBudget"
GLOBAL_BUDGET = "GlobalBudget"
LOW_CONVERSION = "LowConversion"

#: Check statuses.
APPROVED = "approved"
WRONG_CODE = "wrong_code"
EXPIRED = "expired"
LOCKED_STATUS = "locked"
NOT_FOUND = "not_found"


@dataclass(frozen=True)
class Record:
    """A challenge as stored (no code, only its bound HMAC)."""

    id: str
    mac: str
    seed: str
    expires: float
    resend_at: float
    sends: int
    wrong: int
    message_id: str
    country: str
    prefix: str


@dataclass(frozen=True)
class Limits:
    """The per-challenge limits a store needs to decide."""

    ttl: int
    max_checks: int
    cooldown: int | None
    growth: float
    same: bool


@dataclass(frozen=True)
class GateRule:
    """The conversion gate's parameters; ``monitor`` reports instead of refusing."""

    window: int
    min_starts: int
    min_ratio: float
    block: int
    block_max: int
    monitor: bool


@dataclass(frozen=True)
class GateState:
    """One gate subject (a country or a prefix): windowed counts and the current block."""

    starts: dict[int, int]
    approvals: dict[int, int]
    until: float
    strikes: int


@dataclass(frozen=True)
class Refusal:
    code: str
    retry_after: float


@dataclass(frozen=True)
class CheckVerdict:
    status: str
    checks_left: int
    #: "consume" (approved: delete), "wrong" (count a wrong check) or "" (no change).
    action: str


def window_index(now: float, size: int) -> int:
    """The clock-aligned window ``now`` falls in."""
    return math.floor(now / size)


def budget_refusal(
    code: str, count: int, limit: int | None, size: int, now: float
) -> Refusal | None:
    """Refuse when the current window already holds ``limit`` sends."""
    if limit is None or count < limit:
        return None
    return Refusal(code, (window_index(now, size) + 1) * size - now)


def cooldown_after(sends: int, limits: Limits) -> float:
    """Seconds until the next resend after the ``sends``-th SMS (grows, capped at the TTL)."""
    if limits.cooldown is None:
        return 0.0
    return float(min(limits.cooldown * limits.growth ** (sends - 1), limits.ttl))


def live(record: Record | None, now: float) -> Record | None:
    """The record if it has not expired."""
    return record if record is not None and record.expires > now else None


def start_refusal(record: Record | None, now: float, limits: Limits) -> Refusal | None:
    """A pending challenge refuses a new start while locked or inside the cooldown."""
    if record is None:
        return None
    if record.wrong >= limits.max_checks:
        return Refusal(LOCKED, record.expires - now)
    if record.resend_at > now:
        return Refusal(COOLDOWN, record.resend_at - now)
    return None


def reserved(record: Record | None, new: Record, now: float, limits: Limits) -> Record:
    """The challenge after a start is allowed: a new code, or the same one on ``same``."""
    sends = record.sends + 1 if record is not None else 1
    wrong = record.wrong if record is not None else 0
    base = record if record is not None and limits.same else new
    return Record(
        id=base.id, mac=base.mac, seed=base.seed, expires=now + limits.ttl,
        resend_at=now + cooldown_after(sends, limits), sends=sends, wrong=wrong,
        message_id=base.message_id, country=new.country, prefix=new.prefix,
    )


def estimate(counts: dict[int, int], now: float, size: int) -> float:
    """Sliding estimate over one window: the current count plus the overlapping previous part."""
    idx = window_index(now, size)
    overlap = 1 - (now - idx * size) / size
    return counts.get(idx, 0) + counts.get(idx - 1, 0) * overlap


def gate_decision(state: GateState, now: float, rule: GateRule) -> tuple[Refusal | None, bool]:
    """(refusal, new_block): refuse while blocked, or block when conversion is too low."""
    if state.until > now:
        return Refusal(LOW_CONVERSION, state.until - now), False
    starts = estimate(state.starts, now, rule.window)
    if starts < rule.min_starts:
        return None, False
    approvals = estimate(state.approvals, now, rule.window)
    if approvals / starts >= rule.min_ratio:
        return None, False
    return Refusal(LOW_CONVERSION, block_length(state.strikes, rule)), True


def block_length(strikes: int, rule: GateRule) -> float:
    """A block doubles with each repeat, up to ``block_max``."""
    return float(min(rule.block * 2**strikes, rule.block_max))


def check_verdict(record: Record | None, now: float, right: bool, max_checks: int) -> CheckVerdict:
    """What one check does to a challenge. ``right`` is the constant-time comparison's result."""
    if record is None:
        return CheckVerdict(NOT_FOUND, 0, "")
    if record.expires <= now:
        return CheckVerdict(EXPIRED, 0, "")
    if record.wrong >= max_checks:
        return CheckVerdict(LOCKED_STATUS, 0, "")
    if right:
        return CheckVerdict(APPROVED, 0, "consume")
    return CheckVerdict(WRONG_CODE, max(0, max_checks - record.wrong - 1), "wrong")
