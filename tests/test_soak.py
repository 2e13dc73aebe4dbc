"""A short fault soak: many sends, sync from threads and async, against an emulator failing at
random (drops after the request was read, 500, 503, throttling, SYSTEM_ERROR, slow answers). Every
call ends in a receipt or an SmsError, no text is accepted twice, every receipt is a stored
message, and no number or text leaks into a log record or an error."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from globesms import SendReceipt, Settings, SmsError, SmsService
from globesms._credentials import static_credential
from globesms.emulator import Emulator
from support import KEY_ID, KEY_SECRET, FakeTime

SENDS = 240
NUMBERS = [f"+44 7700 9{i:05d}" for i in range(40)]


def _service(emu: Emulator, fake: FakeTime) -> SmsService:
    return SmsService(
        Settings(endpoint=emu.endpoint, protocol="http", read_timeout=0.25, max_attempts=3),
        credential=static_credential(KEY_ID, KEY_SECRET), sleep=fake.sleep,
        async_sleep=fake.async_sleep, clock=fake.clock,
    )


def _outcome(call: Any) -> SendReceipt | SmsError:
    try:
        return call()
    except SmsError as error:
        return error


def test_fault_soak(caplog: pytest.LogCaptureFixture) -> None:
    """Random faults on every kind of send: only receipts and SmsErrors, no duplicate, no leak."""
    caplog.set_level(logging.DEBUG)
    texts = [f"Soak message {i} for you" for i in range(SENDS)]
    with Emulator(access_keys={KEY_ID: KEY_SECRET}) as emu:
        emu.chaos(seed=7, drop=0.08, http_503=0.08, http_500=0.05, throttle=0.06,
                  system_error=0.06, delay=(0.0, 0.4))
        service = _service(emu, FakeTime())
        half = SENDS // 2
        with ThreadPoolExecutor(8) as pool:
            sync = list(pool.map(
                lambda i: _outcome(lambda: service.send(NUMBERS[i % 40], texts[i])), range(half)))

        async def run_async() -> list[SendReceipt | SmsError]:
            async def one(i: int) -> SendReceipt | SmsError:
                try:
                    return await service.send_async(NUMBERS[i % 40], texts[i])
                except SmsError as error:
                    return error

            try:
                return list(await asyncio.gather(*(one(i) for i in range(half, SENDS))))
            finally:
                await service.aclose()

        outcomes = sync + asyncio.run(run_async())
        emu.chaos()
        stored = Counter(message.message for message in emu.messages)
        stored_ids = {message.message_id for message in emu.messages}
    assert all(isinstance(o, (SendReceipt, SmsError)) for o in outcomes)
    assert max(stored.values()) == 1, "a text was accepted twice"
    receipts = [o for o in outcomes if isinstance(o, SendReceipt)]
    assert receipts and len(receipts) < SENDS  # the faults did bite, and sends got through
    assert {r.message_id for r in receipts} <= stored_ids
    kinds = Counter(type(o).__name__ for o in outcomes)
    assert kinds["DeliveryUncertain"] > 0
    dump = " ".join(
        [record.getMessage() + " " + " ".join(map(str, record.__dict__.values()))
         for record in caplog.records]
        + [f"{o} {o!r}" for o in outcomes]
    )
    for number in NUMBERS:
        assert number.replace(" ", "")[1:] not in dump
    assert "Soak message" not in dump
