"""One contract for every verification store: memory, SQLite and Redis give the same answers.

Codes travel through the official SDK to the emulator and are read back from what it received.
Redis tests use ``GLOBESMS_TEST_REDIS_URL`` with their own key prefix and delete their keys.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import re
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from globesms import (
    DeliveryUncertain,
    InvalidRecipient,
    MemoryStore,
    RedisStore,
    SqliteStore,
    StoreUnavailable,
    Throttled,
    VerificationService,
)
from globesms.emulator import Emulator, HttpError, Reply
from globesms.testing import service_for
from support import TEST_ENV, test_redis_url
from workers import race_worker

SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
NUMBER = "+44 7700 900123"
DIGITS = "447700900123"
SAME_PREFIX = "+44 7700 900124"
OTHER_UK = "+44 7911 123456"
FRANCE = "+33 6 12 34 56 78"
TEST_REDIS_URL = TEST_ENV.get("GLOBESMS_TEST_REDIS_URL", "")
StoreFactory = Callable[[], Any]
Verify = Callable[..., VerificationService]


# -- stores ---------------------------------------------------------------------------------------

def redis_url_or_skip() -> str:
    """The test Redis URL; skip (or fail when CI requires Redis) when unset or unreachable."""
    return test_redis_url()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of our own; every key under it is deleted afterwards."""
    import redis

    url = redis_url_or_skip()
    prefix = f"globesms-test-verify:{secrets.token_hex(6)}:"
    yield prefix
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=prefix + "*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(store_kind: str, tmp_path: Path,
               request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    """Stores over one shared state (one dict, one file or one key prefix)."""
    built: list[Any] = []
    if store_kind == "memory":
        shared = MemoryStore()
        yield lambda: shared
        return
    if store_kind == "sqlite":
        path = tmp_path / "verify.sqlite3"

        def factory() -> Any:
            built.append(SqliteStore(path))
            return built[-1]
    else:
        prefix = request.getfixturevalue("redis_prefix")

        def factory() -> Any:
            built.append(RedisStore(TEST_REDIS_URL, prefix=prefix))
            return built[-1]
    yield factory
    for store in built:
        store.close()


@pytest.fixture
def verify(emulator: Emulator, make_store: StoreFactory) -> Iterator[Verify]:
    """Build VerificationService objects over the shared store, sending to the emulator."""
    sms = service_for(emulator, max_attempts=1)

    def factory(**options: Any) -> VerificationService:
        options.setdefault("conversion_gate", "off")
        return VerificationService(sms, store=make_store(), secret=SECRET, environ={},
                                   **options)

    yield factory
    sms.close()


def last_code(emulator: Emulator, length: int = 6) -> str:
    match = re.search(rf"\b(\d{{{length}}})\b", emulator.messages[-1].message)
    assert match is not None
    return match.group(1)


# -- approve once ---------------------------------------------------------------------------------

def test_code_approves_once_then_not_found(verify: Verify, emulator: Emulator) -> None:
    """The right code approves exactly once; the SMS is an OTP whose TaskId is the challenge id."""
    service = verify()
    challenge = service.start(NUMBER, purpose="login")
    sent = emulator.messages[-1]
    assert (sent.message_type, sent.task_id, sent.to) == ("OTP", challenge.id, DIGITS)
    assert challenge.message_id == sent.message_id and challenge.checks_left == 5
    assert challenge.expires_at.tzinfo is not None
    code = last_code(emulator)
    assert service.check(NUMBER, code, purpose="other").status == "not_found"
    result = service.check(NUMBER, code, purpose="login")
    assert result and result.approved and result.status == "approved"
    again = service.check(NUMBER, code, purpose="login")
    assert not again and again.status == "not_found"


def test_async_twins_behave_the_same(verify: Verify, emulator: Emulator) -> None:
    """start_async and check_async send, approve once and report a wrong code like the sync pair."""
    service = verify()

    async def scenario() -> list[str]:
        await service.start_async(NUMBER)
        code = last_code(emulator)
        wrong = "000000" if code != "000000" else "111111"
        statuses = [(await service.check_async(NUMBER, wrong)).status]
        statuses.append((await service.check_async(NUMBER, code)).status)
        statuses.append((await service.check_async(NUMBER, code)).status)
        await service.aclose()
        await service._sms.aclose()
        return statuses

    assert asyncio.run(scenario()) == ["wrong_code", "approved", "not_found"]


def test_wrong_checks_lock_the_challenge(verify: Verify, emulator: Emulator) -> None:
    """max_checks wrong codes lock it: the right code no longer approves, a new start is refused."""
    service = verify(max_checks=3, resend_cooldown=None)
    service.start(NUMBER)
    code = last_code(emulator)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    lefts = [service.check(NUMBER, wrong).checks_left for _ in range(3)]
    assert lefts == [2, 1, 0]
    assert service.check(NUMBER, code).status == "locked"
    sent = len(emulator.messages)
    with pytest.raises(Throttled) as refused:
        service.start(NUMBER)
    assert refused.value.code == "ChallengeLocked" and 0 < refused.value.retry_after <= 600
    assert len(emulator.messages) == sent


def test_brute_force_stops_at_max_checks(verify: Verify, emulator: Emulator) -> None:
    """Trying every 4-digit code in turn approves nothing: the challenge locks after max_checks."""
    service = verify(code_length=4, resend_cooldown=None)
    service.start(NUMBER)
    code = last_code(emulator, 4)
    statuses = [service.check(NUMBER, f"{guess:04d}").status for guess in range(10_000)
                if f"{guess:04d}" != code][:40]
    assert statuses[:5] == ["wrong_code"] * 5 and set(statuses[5:]) == {"locked"}
    assert service.check(NUMBER, code).status == "locked"


def test_malformed_code_is_a_wrong_check(verify: Verify, emulator: Emulator) -> None:
    """A code that is not code_length ASCII digits is wrong_code and uses up a check."""
    service = verify()
    service.start(NUMBER)
    fullwidth = "".join(chr(0xFF10 + int(d)) for d in "123456")
    results = [service.check(NUMBER, bad) for bad in ("12345", fullwidth, "abcdef")]
    assert [r.status for r in results] == ["wrong_code"] * 3
    assert [r.checks_left for r in results] == [4, 3, 2]


# -- resend ---------------------------------------------------------------------------------------

def test_resend_replaces_the_code_and_keeps_wrong_count(verify: Verify, emulator: Emulator) -> None:
    """Resend (default "new"): the old code stops working, wrong checks are not reset."""
    service = verify(resend_cooldown=None)
    service.start(NUMBER)
    first = last_code(emulator)
    wrong = f"{(int(first) + 1) % 10**6:06d}"
    service.check(NUMBER, wrong)
    second_challenge = service.start(NUMBER)
    second = last_code(emulator)
    assert second_challenge.checks_left == 4
    if first != second:
        assert service.check(NUMBER, first).checks_left == 3
    assert service.check(NUMBER, second).approved


def test_resend_same_sends_the_same_code(verify: Verify, emulator: Emulator) -> None:
    """resend="same": the second SMS repeats the first code and the challenge id stays."""
    service = verify(resend="same", resend_cooldown=None)
    one = service.start(NUMBER)
    first = last_code(emulator)
    two = service.start(NUMBER)
    assert last_code(emulator) == first and one.id == two.id
    assert service.check(NUMBER, first).approved


def test_resend_inside_cooldown_is_refused(verify: Verify, emulator: Emulator) -> None:
    """A start inside the cooldown raises Throttled [ResendCooldown] with retry_after; no SMS."""
    service = verify(resend_cooldown=30)
    service.start(NUMBER)
    sent = len(emulator.messages)
    with pytest.raises(Throttled) as refused:
        service.start(NUMBER)
    assert refused.value.code == "ResendCooldown" and 25 < refused.value.retry_after <= 30
    assert len(emulator.messages) == sent
    assert "ResendCooldown" in str(refused.value)


@pytest.mark.parametrize(
    ("options", "first", "second", "code"),
    [
        ({"max_sends": 2}, NUMBER, NUMBER, "NumberBudget"),
        ({"key_max_sends": 1}, NUMBER, FRANCE, "KeyBudget"),
        ({"prefix_max_sends": 1}, NUMBER, SAME_PREFIX, "PrefixBudget"),
        ({"country_max_sends": 1}, NUMBER, OTHER_UK, "CountryBudget"),
        ({"global_max_sends": 1}, NUMBER, FRANCE, "GlobalBudget"),
    ],
)
def test_budgets_refuse_with_their_code(
    verify: Verify, emulator: Emulator, options: dict[str, int], first: str, second: str,
    code: str,
) -> None:
    """Each budget refuses with its own code and a retry_after within its window; no SMS."""
    service = verify(resend_cooldown=None, **options)
    service.start(first, rate_key="198.51.100.7")
    if code == "NumberBudget":
        service.start(first, rate_key="198.51.100.7")
    sent = len(emulator.messages)
    with pytest.raises(Throttled) as refused:
        service.start(second, rate_key="198.51.100.7")
    assert refused.value.code == code and 0 < refused.value.retry_after <= 3600
    assert len(emulator.messages) == sent


def test_refusal_consumes_no_budget(verify: Verify, emulator: Emulator) -> None:
    """A start refused by one limit takes nothing from the others."""
    strict = verify(resend_cooldown=None, prefix_max_sends=1, max_sends=1)
    strict.start(NUMBER)
    with pytest.raises(Throttled, match="PrefixBudget"):
        strict.start(SAME_PREFIX)
    relaxed = verify(resend_cooldown=None, prefix_max_sends=None, max_sends=1)
    relaxed.start(SAME_PREFIX)  # its number budget (1) was not used by the refusal
    with pytest.raises(Throttled, match="NumberBudget"):
        relaxed.start(SAME_PREFIX)


def test_growing_cooldown(verify: Verify, emulator: Emulator) -> None:
    """With cooldown_growth the wait after each resend doubles (capped at the TTL)."""
    service = verify(resend_cooldown=1, cooldown_growth=100.0, ttl=50)
    first = service.start(NUMBER)
    assert 0.5 < (first.resend_at - first.expires_at).total_seconds() + 50 <= 1.01
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            second = service.start(NUMBER)
            break
        except Throttled:
            time.sleep(0.05)
    else:
        pytest.fail("the 1 s cooldown never ended")
    gap = (second.resend_at - second.expires_at).total_seconds() + 50
    assert 49 < gap <= 50.01  # 1 * 100 capped at ttl=50


# -- sends that fail ------------------------------------------------------------------------------

def test_send_that_proves_nothing_went_out_is_withdrawn(verify: Verify, emulator: Emulator) -> None:
    """A refused send withdraws the challenge: no cooldown, no budget used, the error surfaces."""
    service = verify(max_sends=1, resend_cooldown=30)
    emulator.script(DIGITS, Reply("MOBILE_NUMBER_ILLEGAL"))
    with pytest.raises(InvalidRecipient):
        service.start(NUMBER)
    service.start(NUMBER)  # no cooldown, budget of 1 still free
    assert service.check(NUMBER, last_code(emulator)).approved


def test_withdraw_restores_the_replaced_challenge(verify: Verify, emulator: Emulator) -> None:
    """When a resend fails to send, the code sent before keeps working."""
    service = verify(resend_cooldown=None)
    service.start(NUMBER)
    first = last_code(emulator)
    emulator.script(DIGITS, Reply("SYSTEM_ERROR"))
    with pytest.raises(Exception) as failed:
        service.start(NUMBER)
    assert type(failed.value).__name__ == "ServiceUnavailable"
    assert service.check(NUMBER, first).approved


def test_uncertain_send_keeps_the_challenge(verify: Verify, emulator: Emulator) -> None:
    """On DeliveryUncertain the challenge stays and counts: a resend waits for the cooldown."""
    service = verify(resend_cooldown=30)
    emulator.script(DIGITS, HttpError(500, "InternalError", "boom"))
    with pytest.raises(DeliveryUncertain):
        service.start(NUMBER)
    with pytest.raises(Throttled, match="ResendCooldown"):
        service.start(NUMBER)


# -- expiry, conversion gate, countries, test numbers ---------------------------------------------

def test_expired_code_fails(verify: Verify, emulator: Emulator) -> None:
    """With ttl=1 a right code checked after expiry is "expired" and approves nothing."""
    service = verify(ttl=1)
    challenge = service.start(NUMBER)
    code = last_code(emulator)
    deadline = time.time() + 5
    while time.time() <= challenge.expires_at.timestamp() + 0.05 and time.time() < deadline:
        time.sleep(0.05)
    result = service.check(NUMBER, code)
    assert not result.approved and result.status == "expired"


def test_conversion_gate_blocks_a_prefix_that_never_converts(
    verify: Verify, emulator: Emulator,
) -> None:
    """Starts that are never approved block their prefix (LowConversion); approvals keep it open."""
    gate = {"conversion_gate": "enforce", "conversion_min_starts": 2,
            "conversion_min_ratio": 0.5, "conversion_block": 60, "resend_cooldown": None}
    service = verify(**gate)
    for number in (NUMBER, SAME_PREFIX):
        service.start(number)
        assert service.check(number, last_code(emulator)).approved
    service.start(NUMBER)  # 2 of 2 converted: open
    pumped = verify(**{**gate, "conversion_min_starts": 3})
    pumped.start("+44 7700 900200")
    pumped.start("+44 7700 900201")  # 2 approvals in 4 starts = 0.5: still open
    sent = len(emulator.messages)
    with pytest.raises(Throttled) as refused:  # 2 in 5 = 0.4: blocked
        pumped.start("+44 7700 900202")
    assert refused.value.code == "LowConversion" and 59 < refused.value.retry_after <= 60
    assert len(emulator.messages) == sent
    with pytest.raises(Throttled, match="LowConversion"):  # the block holds
        pumped.start("+44 7700 900203")


def test_conversion_gate_monitor_mode_sends_and_logs(
    verify: Verify, emulator: Emulator, caplog: pytest.LogCaptureFixture,
) -> None:
    """In monitor mode a low-conversion start is sent and logged as verify.refused (monitored)."""
    service = verify(conversion_gate="monitor", conversion_min_starts=1,
                     conversion_min_ratio=0.5, resend_cooldown=None)
    caplog.set_level(logging.INFO, logger="globesms")
    service.start(NUMBER)
    service.start(SAME_PREFIX)
    assert len(emulator.messages) == 2
    refused = [r for r in caplog.records if getattr(r, "event", "") == "verify.refused"]
    assert refused and refused[0].code == "LowConversion"  # type: ignore[attr-defined]
    assert refused[0].outcome == "monitored"  # type: ignore[attr-defined]


def test_blocked_country_sends_nothing(verify: Verify, emulator: Emulator) -> None:
    """A country outside allowed_countries (or in blocked_countries) is InvalidRecipient."""
    service = verify(allowed_countries=["FR"])
    with pytest.raises(InvalidRecipient) as refused:
        service.start(NUMBER)
    assert refused.value.code == "CountryNotAllowed"
    blocked = verify(blocked_countries=["gb"])
    with pytest.raises(InvalidRecipient, match="GB"):
        blocked.start(NUMBER)
    assert emulator.messages == []
    verify(allowed_countries=["FR"]).start(FRANCE)
    assert len(emulator.messages) == 1


def test_test_numbers_send_nothing_and_use_no_budget(verify: Verify, emulator: Emulator) -> None:
    """A configured test number gets no SMS, no budget use, and its fixed code approves."""
    service = verify(test_numbers={NUMBER: "123456"}, max_sends=1)
    for _ in range(3):
        service.start(NUMBER)
    assert emulator.messages == []
    assert service.check(NUMBER, "123456").approved
    assert service.check(NUMBER, "654321").status == "wrong_code"


# -- an unreachable store fails closed ------------------------------------------------------------

def test_unreachable_redis_fails_closed(emulator: Emulator) -> None:
    """A Redis nobody listens on: start sends nothing, check approves nothing, both raise fast."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = RedisStore(f"redis://:hunter2secret@127.0.0.1:{port}/0", timeout=0.3)
    assert "hunter2secret" not in repr(store)
    service = VerificationService(service_for(emulator), store=store, secret=SECRET, environ={})
    began = time.monotonic()
    with pytest.raises(StoreUnavailable) as failed:
        service.start(NUMBER)
    with pytest.raises(StoreUnavailable):
        service.check(NUMBER, "123456")
    with pytest.raises(StoreUnavailable):
        asyncio.run(service.check_async(NUMBER, "123456"))
    assert time.monotonic() - began < 3
    assert emulator.messages == [] and "hunter2secret" not in str(failed.value)


def test_locked_sqlite_fails_closed(emulator: Emulator, tmp_path: Path) -> None:
    """A SQLite file held locked longer than the busy timeout raises StoreUnavailable; no SMS."""
    path = tmp_path / "v.sqlite3"
    store = SqliteStore(path, timeout=0.2)
    service = VerificationService(service_for(emulator), store=store, secret=SECRET, environ={})
    service.check(NUMBER, "123456")  # creates the file
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable):
            service.start(NUMBER)
        with pytest.raises(StoreUnavailable):
            service.check(NUMBER, "123456")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        store.close()
    assert emulator.messages == []


# -- several processes ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_concurrent_checks_from_processes_approve_once(
    kind: str, emulator: Emulator, tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    """Six processes check the right code at once against one store: exactly one approves."""
    if kind == "sqlite":
        spec = ("sqlite", str(tmp_path / "race.sqlite3"), "")
        store: Any = SqliteStore(spec[1])
    else:
        prefix = request.getfixturevalue("redis_prefix")
        spec = ("redis", TEST_REDIS_URL, prefix)
        store = RedisStore(TEST_REDIS_URL, prefix=prefix)
    service = VerificationService(service_for(emulator), store=store, secret=SECRET,
                                  environ={}, conversion_gate="off")
    service.start(NUMBER)
    code = last_code(emulator)
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(6), context.Queue()
    args = (spec, SECRET, NUMBER, code, barrier, results)
    workers = [context.Process(target=race_worker, args=args) for _ in range(6)]
    for worker in workers:
        worker.start()
    statuses = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    store.close()
    assert sorted(statuses) == ["approved"] + ["not_found"] * 5


# -- Alibaba side: conversion reports and mainland templates ---------------------------------------

def test_approval_reports_conversion_in_background(verify: Verify, emulator: Emulator) -> None:
    """After an approval, SmsConversion is sent for the challenge's message; close() drains it."""
    service = verify()
    challenge = service.start(NUMBER)
    service.check(NUMBER, f"{(int(last_code(emulator)) + 1) % 10**6:06d}")  # wrong: no report
    assert service.check(NUMBER, last_code(emulator)).approved
    service.close()
    assert [(c.message_id, c.delivered) for c in emulator.conversions] == [
        (challenge.message_id, True)
    ]


def test_failed_conversion_report_is_logged_not_raised(
    verify: Verify, emulator: Emulator, caplog: pytest.LogCaptureFixture,
) -> None:
    """A conversion report the provider refuses is logged as verify.conversion_failed only."""
    service = verify()
    service.start(NUMBER)
    code = last_code(emulator)
    emulator.script(None, HttpError(400, "Forbidden.RAM", "no"))
    caplog.set_level(logging.WARNING, logger="globesms")
    assert service.check(NUMBER, code).approved
    service.close()
    failed = [r for r in caplog.records if getattr(r, "event", "") == "verify.conversion_failed"]
    assert failed and failed[0].error_class == "AuthError"  # type: ignore[attr-defined]


def test_no_conversion_report_when_switched_off(verify: Verify, emulator: Emulator) -> None:
    """report_conversions=False sends no SmsConversion."""
    service = verify(report_conversions=False)
    service.start(NUMBER)
    assert service.check(NUMBER, last_code(emulator)).approved
    service.close()
    assert emulator.conversions == []


def test_mainland_number_uses_the_template(verify: Verify, emulator: Emulator) -> None:
    """+86 goes out through SendMessageWithTemplate with the code as a parameter; else refused."""
    with pytest.raises(InvalidRecipient, match="mainland"):
        verify().start("+86 138 0013 8000")
    service = verify(mainland_template_code="SMS_123456", mainland_sign_name="Acme")
    service.start("+86 138 0013 8000", purpose="login")
    sent = emulator.messages[-1]
    assert (sent.action, sent.template_code, sent.sender) == (
        "SendMessageWithTemplate", "SMS_123456", "Acme")
    code = json.loads(sent.template_param or "{}")["code"]
    assert service.check("+86 138 0013 8000", code, purpose="login").approved


# -- nothing in clear -----------------------------------------------------------------------------

def _store_dump(store: Any, store_kind: str, tmp_path: Path) -> str:
    """Everything the store holds, as text: dict, database files, or every Redis key and value."""
    if store_kind == "memory":
        return repr(store.dump())
    if store_kind == "sqlite":
        files = sorted(tmp_path.glob("verify.sqlite3*"))
        assert files
        return "".join(path.read_bytes().decode("latin-1") for path in files)
    import redis

    client = redis.Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    keys = list(client.scan_iter(match=store.prefix + "*"))
    assert keys
    text = repr({key: client.hgetall(key) for key in keys})
    client.close()
    return text


def test_codes_numbers_and_secret_appear_nowhere(
    verify: Verify, emulator: Emulator, make_store: StoreFactory, store_kind: str,
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """Codes, the number and the secret are in no store key or value, log, repr or exception."""
    caplog.set_level(logging.DEBUG)
    service = verify(code_length=10, resend_cooldown=None, max_checks=2,
                     conversion_gate="enforce")
    seen: list[str] = [repr(service), repr(service.settings)]
    first = service.start(NUMBER, purpose="login", rate_key="203.0.113.9")
    codes = [last_code(emulator, 10)]
    second = service.start(NUMBER, purpose="login", rate_key="203.0.113.9")
    codes.append(last_code(emulator, 10))
    wrong = service.check(NUMBER, "0" * 10, purpose="login")
    seen += [repr(first), repr(second), repr(wrong), str(first.__dict__ | {"to": ""})]
    dump = _store_dump(make_store(), store_kind, tmp_path)
    seen.append(service.check(NUMBER, "1" * 10, purpose="login").status)
    with pytest.raises(Throttled) as refused:
        service.start(NUMBER, purpose="login")
    seen += [str(refused.value), repr(refused.value), repr(refused.value.args)]
    service.close()
    for record in caplog.records:
        seen += [record.getMessage(), repr(record.__dict__)]
    haystack = "\n".join(seen) + dump
    assert "c:" in dump or "verify" in dump  # the dump really holds the store's state
    for secret_value in [*codes, DIGITS, DIGITS[2:], "44770090", SECRET]:
        assert secret_value not in haystack


# -- Redis specifics ------------------------------------------------------------------------------

def test_redis_round_trips_keys_and_expiry(emulator: Emulator, redis_prefix: str) -> None:
    """Check is one command, start two; every key carries the store's hash tag and expires.

    The injected client returns bytes (no ``decode_responses``), as a caller's client may.
    """
    import redis

    sent: list[str] = []

    class Counting(redis.Connection):
        def send_command(self, *args: Any, **kwargs: Any) -> None:
            sent.append(str(args[0]).upper())
            super().send_command(*args, **kwargs)

    pool = redis.ConnectionPool.from_url(TEST_REDIS_URL, connection_class=Counting)
    client = redis.Redis(connection_pool=pool)
    store = RedisStore(client=client, prefix=redis_prefix)
    service = VerificationService(service_for(emulator), store=store, secret=SECRET, environ={},
                                  resend_cooldown=None, max_checks=50)
    service.start(NUMBER)
    service.check(NUMBER, "000000")  # scripts loaded, connection open
    sent.clear()
    service.start(NUMBER)
    assert sent == ["EVALSHA", "EVALSHA"]
    sent.clear()
    assert service.check(NUMBER, "000000").status == "wrong_code"
    assert sent == ["EVALSHA"]
    keys = [key.decode() for key in client.scan_iter(match=redis_prefix + "*")]
    assert len(keys) >= 7  # challenge, five budgets, two gates
    assert all(key.startswith(redis_prefix + "{v}:") for key in keys)
    assert all(client.pttl(key) > 0 for key in keys)
    client.close()


def test_redis_stopped_mid_use_fails_closed(emulator: Emulator, tmp_path: Path) -> None:
    """A private redis-server stopped after use: start sends nothing, check approves nothing."""
    import shutil
    import socket
    import subprocess

    import redis

    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save",
                                "", "--appendonly", "no", "--dir", str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        probe_client = redis.Redis.from_url(url, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                probe_client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        probe_client.close()
        service = VerificationService(service_for(emulator), store=RedisStore(url), secret=SECRET,
                                      environ={})
        service.start(NUMBER)
        code = last_code(emulator)
    finally:
        process.terminate()
        process.wait(timeout=10)
    with pytest.raises(StoreUnavailable):
        service.check(NUMBER, code)
    with pytest.raises(StoreUnavailable):
        asyncio.run(service.check_async(NUMBER, code))
    with pytest.raises(StoreUnavailable):
        service.start("+44 7700 900555")
    assert len(emulator.messages) == 1


# -- the three stores decide alike ----------------------------------------------------------------

def test_stores_agree_on_a_random_sequence(
    emulator: Emulator, tmp_path: Path, redis_prefix: str,
) -> None:
    """400 random starts and checks (right, wrong, malformed): all stores answer alike."""
    import random

    rng = random.Random(20261125)
    stores = {"memory": MemoryStore(), "sqlite": SqliteStore(tmp_path / "agree.sqlite3"),
              "redis": RedisStore(TEST_REDIS_URL, prefix=redis_prefix)}
    sms = service_for(emulator, max_attempts=1)
    options: dict[str, Any] = {
        "resend_cooldown": None, "max_checks": 3, "max_sends": 12, "prefix_max_sends": 20,
        "key_max_sends": 60, "country_max_sends": 40, "global_max_sends": 100,
        "conversion_gate": "enforce", "conversion_min_starts": 10, "conversion_min_ratio": 0.45,
        "report_conversions": False,
    }
    services = {name: VerificationService(sms, store=store, secret=SECRET, environ={},
                                          **options) for name, store in stores.items()}
    numbers = [NUMBER, SAME_PREFIX, OTHER_UK, FRANCE, "+33 6 12 34 99 99", "+49 151 2345 6789",
               "+49 151 2345 0000", "+81 90 1234 5678"]
    codes: dict[tuple[str, str, str], str] = {}
    seen_answers: list[str] = []
    for _ in range(400):
        number, purpose = rng.choice(numbers), rng.choice(["login", "pay"])
        action = rng.choice(["start"] * 4 + ["right"] * 3 + ["wrong"] * 2 + ["malformed"])
        rate_key = rng.choice("ab")
        answers = {}
        for name, service in services.items():
            try:
                if action == "start":
                    service.start(number, purpose=purpose, rate_key=rate_key)
                    codes[(name, number, purpose)] = last_code(emulator)
                    answers[name] = "sent"
                    continue
                right = codes.get((name, number, purpose), "999999")
                code = {"right": right, "wrong": f"{(int(right) + 1) % 10**6:06d}",
                        "malformed": "12ab56"}[action]
                result = service.check(number, code, purpose=purpose)
                answers[name] = f"{result.status}/{result.checks_left}"
            except Throttled as refused:
                answers[name] = str(refused.code)
        assert len(set(answers.values())) == 1, (action, answers)
        seen_answers.append(answers["memory"])
    covered = {"sent", "approved/0", "wrong_code/2", "locked/0", "not_found/0", "LowConversion",
               "ChallengeLocked", "NumberBudget"}
    assert covered <= set(seen_answers)  # the sequence reached every kind of answer
    for store in stores.values():
        store.close()
    sms.close()


def _forked_check(service: VerificationService, code: str, barrier: Any, results: Any) -> None:
    barrier.wait(timeout=30)
    results.put(service.check(NUMBER, code).status)


def test_store_built_before_fork_serves_forked_workers(
    emulator: Emulator, tmp_path: Path,
) -> None:
    """A service built before fork (gunicorn --preload) serves 4 forked workers: one approves."""
    store = SqliteStore(tmp_path / "fork.sqlite3")
    service = VerificationService(service_for(emulator), store=store, secret=SECRET, environ={},
                                  conversion_gate="off", report_conversions=False)
    service.start(NUMBER)  # the parent has an open connection now
    code = last_code(emulator)
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_forked_check, args=(service, code, barrier, results))
               for _ in range(4)]
    for worker in workers:
        worker.start()
    statuses = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert sorted(statuses) == ["approved"] + ["not_found"] * 3
    assert service.check(NUMBER, code).status == "not_found"  # the parent still works
    store.close()


def test_redis_async_clients_per_loop_and_injected(emulator: Emulator, redis_prefix: str) -> None:
    """A URL store serves two event loops in turn; an injected asyncio client is used as given."""
    import redis.asyncio as aioredis

    sms = service_for(emulator)
    service = VerificationService(sms, store=RedisStore(TEST_REDIS_URL, prefix=redis_prefix),
                                  secret=SECRET, environ={}, resend_cooldown=None)

    async def round_trip(verify: VerificationService, number: str) -> str:
        await verify.start_async(number)
        return (await verify.check_async(number, last_code(emulator))).status

    assert asyncio.run(round_trip(service, NUMBER)) == "approved"
    assert asyncio.run(round_trip(service, SAME_PREFIX)) == "approved"  # a second loop

    async def injected() -> str:
        client = aioredis.Redis.from_url(TEST_REDIS_URL)
        store = RedisStore(async_client=client, prefix=redis_prefix)
        verify = VerificationService(sms, store=store, secret=SECRET, environ={})
        status = await round_trip(verify, OTHER_UK)
        await verify.aclose()
        await client.ping()  # a client the caller gave stays open
        await client.aclose()
        return status

    assert asyncio.run(injected()) == "approved"
