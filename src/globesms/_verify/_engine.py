"""The store protocol, its requests and answers, and the policy run over a transactional store.

A store keeps flat hashes (field -> str or number) under logical keys, each with an expiry:

- ``c:<slot>``: a challenge (``id mac seed exp rs n w mid cc px`` and ``p_*``, the challenge it
  replaced, kept until the SMS is known to be out so a failed send can be withdrawn);
- ``b:<kind>:<subject>``: a budget, one field per clock-aligned window index;
- ``g:<kind>:<subject>``: a conversion gate, ``s<idx>``/``a<idx>`` starts and approvals per
  window, ``until`` and ``strikes`` for the block.

:class:`MemoryStore` and :class:`SqliteStore` run the functions below inside one transaction;
:class:`RedisStore` runs the same rules as Lua scripts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import _policy as policy
from ._codes import matches
from ._policy import GateRule, Limits, Record, Refusal

_RECORD_FIELDS = {"id": "id", "mac": "mac", "seed": "seed", "exp": "expires",
                  "rs": "resend_at", "n": "sends", "w": "wrong", "mid": "message_id",
                  "cc": "country", "px": "prefix"}


@dataclass(frozen=True)
class Budget:
    """One send budget: refusal code, logical key, limit per window, window in seconds."""

    code: str
    key: str
    limit: int
    window: int


@dataclass(frozen=True)
class StartRequest:
    """Everything a store needs to decide and reserve a start."""

    challenge_key: str
    new: Record
    limits: Limits
    budgets: tuple[Budget, ...] = ()
    gates: tuple[str, ...] = ()
    gate_rule: GateRule | None = None


@dataclass(frozen=True)
class Reservation:
    """An allowed start: the challenge now in effect and the counters it took."""

    record: Record
    ttl: int
    marks: tuple[tuple[str, str], ...] = ()
    monitored: tuple[Refusal, ...] = field(default=())


@dataclass(frozen=True)
class CheckRequest:
    challenge_key: str
    candidate: str
    max_checks: int
    gates: tuple[str, ...] = ()
    gate_window: int | None = None


@dataclass(frozen=True)
class CheckOutcome:
    status: str
    checks_left: int
    challenge_id: str = ""
    message_id: str = ""


class Store(Protocol):
    """Where challenges and limits live. Every decision is atomic in the store."""

    def start(self, request: StartRequest) -> Reservation | Refusal: ...
    def record_message_id(self, key: str, challenge_id: str, message_id: str) -> None: ...
    def withdraw(self, key: str, reservation: Reservation) -> None: ...
    def check(self, request: CheckRequest) -> CheckOutcome: ...
    def close(self) -> None: ...
    async def start_async(self, request: StartRequest) -> Reservation | Refusal: ...
    async def record_message_id_async(
        self, key: str, challenge_id: str, message_id: str
    ) -> None: ...
    async def withdraw_async(self, key: str, reservation: Reservation) -> None: ...
    async def check_async(self, request: CheckRequest) -> CheckOutcome: ...
    async def aclose(self) -> None: ...


class Tx(Protocol):
    """One transaction over the hashes of a Python store."""

    def get(self, key: str) -> dict[str, Any] | None: ...
    def put(self, key: str, value: Mapping[str, Any], expire_at: float) -> None: ...
    def patch(self, key: str, fields: Mapping[str, Any]) -> None: ...
    def delete(self, key: str) -> None: ...


def record_of(data: Mapping[str, Any] | None, prefix: str = "") -> Record | None:
    """The record stored in ``data`` (``prefix="p_"`` for the replaced one)."""
    if not data or not data.get(prefix + "id"):
        return None
    values = {name: data[prefix + key] for key, name in _RECORD_FIELDS.items()}
    return Record(
        id=str(values["id"]), mac=str(values["mac"]), seed=str(values["seed"]),
        expires=float(values["expires"]), resend_at=float(values["resend_at"]),
        sends=int(values["sends"]), wrong=int(values["wrong"]),
        message_id=str(values["message_id"]), country=str(values["country"]),
        prefix=str(values["prefix"]),
    )


def fields_of(record: Record, prefix: str = "") -> dict[str, Any]:
    return {prefix + key: getattr(record, name) for key, name in _RECORD_FIELDS.items()}


def run_start(tx: Tx, request: StartRequest, now: float) -> Reservation | Refusal:
    """Decide a start and, when allowed, reserve the challenge and every counter."""
    data = tx.get(request.challenge_key)
    record = policy.live(record_of(data), now)
    refusal = policy.start_refusal(record, now, request.limits)
    if refusal is not None:
        return refusal
    counted: list[tuple[Budget, int, int]] = []
    for budget in request.budgets:
        idx = policy.window_index(now, budget.window)
        count = int((tx.get(budget.key) or {}).get(str(idx), 0))
        refusal = policy.budget_refusal(budget.code, count, budget.limit, budget.window, now)
        if refusal is not None:
            return refusal
        counted.append((budget, idx, count))
    rule = request.gate_rule
    gates: list[tuple[str, dict[str, Any]]] = []
    monitored: list[Refusal] = []
    if rule is not None:
        for key in request.gates:
            gate = tx.get(key) or {}
            refusal, new_block = policy.gate_decision(_gate_state(gate), now, rule)
            if refusal is not None and rule.monitor:
                monitored.append(refusal)
            elif refusal is not None:
                if new_block:
                    until = now + refusal.retry_after
                    strikes = int(gate.get("strikes", 0)) + 1
                    tx.put(key, {"until": until, "strikes": strikes}, until + rule.window)
                return refusal
            gates.append((key, gate))
    new = policy.reserved(record, request.new, now, request.limits)
    value = fields_of(new)
    if record is not None:
        value.update(fields_of(record, "p_"))
    tx.put(request.challenge_key, value, new.expires + request.limits.ttl)
    marks: list[tuple[str, str]] = []
    for budget, idx, count in counted:
        tx.put(budget.key, {str(idx): count + 1}, (idx + 1) * budget.window)
        marks.append((budget.key, str(idx)))
    if rule is not None:
        idx = policy.window_index(now, rule.window)
        for key, gate in gates:
            kept = _trim_gate(gate, idx)
            kept[f"s{idx}"] = int(kept.get(f"s{idx}", 0)) + 1
            tx.put(key, kept, max((idx + 2) * rule.window, float(kept.get("until", 0))
                                  + rule.window))
            marks.append((key, f"s{idx}"))
    return Reservation(new, request.limits.ttl, tuple(marks), tuple(monitored))


def _gate_state(gate: Mapping[str, Any]) -> policy.GateState:
    starts = {int(k[1:]): int(v) for k, v in gate.items() if k[0] == "s" and k[1:].isdigit()}
    approvals = {int(k[1:]): int(v) for k, v in gate.items() if k[0] == "a" and k[1:].isdigit()}
    return policy.GateState(starts, approvals, float(gate.get("until", 0)),
                            int(gate.get("strikes", 0)))


def _trim_gate(gate: Mapping[str, Any], idx: int) -> dict[str, Any]:
    """Drop window counts older than the previous window."""
    return {
        k: v for k, v in gate.items()
        if not (k[0] in "sa" and k[1:].isdigit() and int(k[1:]) < idx - 1)
    }


def run_record_message_id(tx: Tx, key: str, challenge_id: str, message_id: str) -> None:
    data = tx.get(key)
    if data is not None and data.get("id") == challenge_id:
        tx.patch(key, {"mid": message_id})


def run_withdraw(tx: Tx, key: str, reservation: Reservation) -> None:
    """Undo a reservation whose SMS provably did not go out."""
    data = tx.get(key)
    if data is not None and data.get("id") == reservation.record.id:
        previous = record_of(data, "p_")
        if previous is None:
            tx.delete(key)
        else:
            restored = fields_of(previous)
            restored["w"] = max(int(data["w"]), previous.wrong)
            tx.put(key, restored, previous.expires + reservation.ttl)
    for counter, name in reservation.marks:
        counts = tx.get(counter)
        if counts is not None and int(counts.get(name, 0)) > 0:
            tx.patch(counter, {name: int(counts[name]) - 1})


def run_check(tx: Tx, request: CheckRequest, now: float) -> CheckOutcome:
    """Compare in constant time, then approve once (delete), count a wrong check, or report."""
    data = tx.get(request.challenge_key)
    record = record_of(data)
    right = record is not None and matches(record.mac, request.candidate, record.id)
    verdict = policy.check_verdict(record, now, right, request.max_checks)
    if record is None:
        return CheckOutcome(verdict.status, verdict.checks_left)
    if verdict.action == "consume":
        tx.delete(request.challenge_key)
        if request.gate_window is not None:
            idx = policy.window_index(now, request.gate_window)
            for key in request.gates:
                gate = tx.get(key)
                if gate is not None:
                    gate[f"a{idx}"] = int(gate.get(f"a{idx}", 0)) + 1
                    tx.patch(key, {f"a{idx}": gate[f"a{idx}"]})
    elif verdict.action == "wrong":
        tx.patch(request.challenge_key, {"w": record.wrong + 1})
    return CheckOutcome(verdict.status, verdict.checks_left, record.id, record.message_id)
