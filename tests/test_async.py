"""send_async: the same validation, receipts, errors, retries and logs as send, pooled."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
from alibabacloud_dysmsapi20180501 import models
from alibabacloud_dysmsapi20180501.client import Client
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_util.models import RuntimeOptions

from globesms import (
    DeliveryUncertain,
    InvalidRecipient,
    MessageRejected,
    NetworkError,
    ServiceUnavailable,
    Settings,
    SmsError,
    SmsService,
    Throttled,
)
from globesms._credentials import static_credential
from globesms.emulator import Accept, Delay, Drop, Emulator, HttpError, Reply
from support import DIGITS, KEY_ID, KEY_SECRET, NUMBER, TEXT, FakeTime


@pytest.fixture
def atime() -> FakeTime:
    """Injected async sleep and clock: no real waiting."""
    return FakeTime()


@pytest.fixture
def make(emulator: Emulator, atime: FakeTime) -> Iterator[Any]:
    """Factory of services for the emulator with fake time."""

    def factory(**overrides: Any) -> SmsService:
        settings = Settings.load(environ={}, endpoint=emulator.endpoint, protocol="http",
                                 **overrides)
        return SmsService(settings, credential=static_credential(KEY_ID, KEY_SECRET),
                          sleep=atime.sleep, async_sleep=atime.async_sleep, clock=atime.clock)

    yield factory


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _send(service: SmsService, *args: Any, **kwargs: Any) -> Any:
    async with service:
        return await service.send_async(*args, **kwargs)


def test_async_send_returns_the_same_receipt_as_sync(emulator: Emulator, make: Any) -> None:
    """send_async returns a receipt with the fields send returns, for the same request."""
    service = make()
    sync = service.send(NUMBER, TEXT, sender="Acme", message_type="OTP")
    receipt = run(_send(service, NUMBER, TEXT, sender="Acme", message_type="OTP"))
    first, second = emulator.messages
    assert receipt.message_id == second.message_id
    assert (receipt.to, receipt.sender, receipt.segments, receipt.attempts) == (
        sync.to, sync.sender, sync.segments, 1)
    assert (receipt.country, receipt.region, receipt.carrier) == (
        sync.country, sync.region, sync.carrier)
    assert (first.message, first.sender) == (second.message, second.sender)


def _signed_headers(headers: dict[str, str]) -> dict[str, str]:
    names = headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    return {name: headers[name] for name in names}


@pytest.mark.parametrize("text", [TEXT, "+*~/ %20 é 😀 & = ? #\n\t'\"<>"])
def test_wire_request_is_what_the_sdk_signs(emulator: Emulator, make: Any, text: str) -> None:
    """The async request equals the SDK's own: same target bytes and signed headers, differing
    only in the per-request date, nonce and signature; the emulator verifies both signatures."""
    request = models.SendMessageToGlobeRequest(to=DIGITS, message=text, from_="Acme",
                                               type="NOTIFY", task_id="t-1", validity_period=60)
    sdk = Client(Config(access_key_id=KEY_ID, access_key_secret=KEY_SECRET,
                        endpoint=emulator.endpoint, protocol="http",
                        user_agent=f"globesms/{__import__('globesms').__version__}"))
    sdk.send_message_to_globe_with_options(request, RuntimeOptions())
    run(_send(make(), "+" + DIGITS, text, sender="Acme", message_type="NOTIFY", task_id="t-1",
              validity_period=60))
    theirs, ours = emulator.requests
    assert (theirs.code, ours.code) == ("OK", "OK")
    assert ours.target == theirs.target
    ours_signed, theirs_signed = _signed_headers(ours.headers), _signed_headers(theirs.headers)
    assert set(ours_signed) == set(theirs_signed)
    varying = {"x-acs-date", "x-acs-signature-nonce"}
    assert {k: v for k, v in ours_signed.items() if k not in varying} == {
        k: v for k, v in theirs_signed.items() if k not in varying}


def test_invalid_input_is_refused_before_the_network(emulator: Emulator, make: Any) -> None:
    """Validation is the same: a +86 number raises InvalidRecipient and nothing is sent."""
    with pytest.raises(InvalidRecipient):
        run(_send(make(), "+86 138 0013 8000", TEXT))
    assert emulator.requests == []


def test_business_code_maps_like_sync(emulator: Emulator, make: Any) -> None:
    """A non-OK ResponseCode raises the same class with the same flags as the sync path."""
    emulator.script(DIGITS, Reply("INVALID_SENDERID"))
    with pytest.raises(MessageRejected) as caught:
        run(_send(make(), NUMBER, TEXT))
    assert (caught.value.code, caught.value.http_status, caught.value.attempts) == (
        "INVALID_SENDERID", 200, 1)
    assert caught.value.request_id


def test_retries_wait_without_blocking_and_honour_hints(
    emulator: Emulator, make: Any, atime: FakeTime
) -> None:
    """503 and throttling are retried with the injected async sleep; hints win."""
    emulator.script(DIGITS, HttpError(503, "ServiceUnavailable"),
                    HttpError(400, "Throttling.User", retry_after_ms=700), Accept())
    receipt = run(_send(make(), NUMBER, TEXT))
    assert receipt.attempts == 3
    assert len(atime.sleeps) == 2
    assert atime.sleeps[1] == 0.7
    assert len(emulator.requests) == 3


def test_standard_retry_after_and_exhaustion(
    emulator: Emulator, make: Any, atime: FakeTime
) -> None:
    """Retry-After seconds are honoured; a transient error stays retryable when attempts end."""
    emulator.script(DIGITS, *[HttpError(429, "Throttling.User", retry_after_s=3)] * 3)
    with pytest.raises(Throttled) as caught:
        run(_send(make(), NUMBER, TEXT))
    assert atime.sleeps == [3.0, 3.0]
    assert (caught.value.attempts, caught.value.retryable, caught.value.retry_after) == (
        3, True, 3.0)


@pytest.mark.parametrize(
    "fault",
    [HttpError(500, "InternalError"), HttpError(502, body="<html>bad</html>"),
     HttpError(200, body=""), Drop(after_read=True), Delay(5.0)],
    ids=["500", "502-html", "empty-200", "drop", "read-timeout"],
)
def test_uncertain_outcomes_are_sent_once(emulator: Emulator, make: Any, fault: Any) -> None:
    """Outcomes that may have sent raise DeliveryUncertain after exactly one request."""
    emulator.script(DIGITS, fault, Accept())
    with pytest.raises(DeliveryUncertain) as caught:
        run(_send(make(read_timeout=0.3), NUMBER, TEXT))
    assert (caught.value.attempts, caught.value.retryable) == (1, False)
    # Only API requests count: after a dropped answer over plain HTTP, globesms probes (once)
    # whether the port speaks TLS, which the emulator records as a bad request.
    assert len([r for r in emulator.requests if r.action]) == 1


def test_html_503_is_retried(emulator: Emulator, make: Any) -> None:
    """An unreadable 503 is still a 503 on the async path: retried."""
    emulator.script(DIGITS, HttpError(503, body="<html>busy</html>"), Accept())
    assert run(_send(make(), NUMBER, TEXT)).attempts == 2


def test_connection_refused_is_retried(atime: FakeTime) -> None:
    """A refused connection is a NetworkError, retried up to max_attempts."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    service = SmsService(Settings(endpoint=f"127.0.0.1:{port}", protocol="http"),
                         credential=static_credential(KEY_ID, KEY_SECRET),
                         async_sleep=atime.async_sleep, clock=atime.clock)
    with pytest.raises(NetworkError) as caught:
        run(_send(service, NUMBER, TEXT))
    assert caught.value.attempts == 3
    assert len(atime.sleeps) == 2


def test_deadline_expiry_stops_the_retries(
    emulator: Emulator, make: Any, atime: FakeTime
) -> None:
    """A retry hint that ends past the deadline ends the call at once."""
    emulator.script(DIGITS, HttpError(503, "ServiceUnavailable", retry_after_ms=20_000), Accept())
    with pytest.raises(ServiceUnavailable) as caught:
        run(_send(make(deadline=15.0), NUMBER, TEXT))
    assert atime.sleeps == []
    assert caught.value.retry_after == 20.0
    assert len(emulator.requests) == 1


def test_deadline_cuts_the_read_timeout(emulator: Emulator, make: Any) -> None:
    """With a 0.3 s deadline, a slow answer ends as DeliveryUncertain, not after read_timeout."""
    emulator.script(DIGITS, Delay(5.0))
    with pytest.raises(DeliveryUncertain):
        run(_send(make(deadline=0.3, read_timeout=10.0), NUMBER, TEXT))


def _open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            continue
    return count


def test_cancellation_stops_and_leaves_nothing_behind(emulator: Emulator, make: Any) -> None:
    """Cancelling a send waiting on the provider stops it: no retry, no task, no connection."""
    emulator.script(DIGITS, Delay(5.0), Accept())
    service = make()

    async def scenario() -> tuple[int, int]:
        await service.send_async("+6591234567", TEXT)  # warm the pool
        before = _open_sockets()
        task = asyncio.create_task(service.send_async(NUMBER, TEXT))
        arrived = await asyncio.to_thread(emulator.wait_for_requests, 2, 5.0)
        assert arrived
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert others == []
        after_cancel = _open_sockets()
        await service.aclose()
        return before, after_cancel

    before, after_cancel = run(scenario())
    assert after_cancel <= before
    assert len(emulator.requests) == 2
    assert len(emulator.messages) == 1


def test_async_logs_the_same_events(
    caplog: pytest.LogCaptureFixture, emulator: Emulator, make: Any
) -> None:
    """send_async logs sms.retry then sms.sent with the same fields as send."""
    caplog.set_level(logging.INFO)
    emulator.script(DIGITS, Reply("SYSTEM_ERROR"), Accept())
    run(_send(make(), NUMBER, TEXT))
    events = [r.__dict__["event"] for r in caplog.records if r.name == "globesms"]
    assert events == ["sms.retry", "sms.sent"]
    sent = [r for r in caplog.records if r.name == "globesms"][-1].__dict__
    assert (sent["to"], sent["attempt"]) == ("+44****0123", 2)
    assert TEXT not in caplog.text and DIGITS not in caplog.text


def test_https_with_ca_file(atime: FakeTime) -> None:
    """send_async trusts ca_file over HTTPS, with one SSL context for the service."""
    with Emulator(access_keys={KEY_ID: KEY_SECRET}, tls=True) as emu:
        service = SmsService(
            Settings(endpoint=emu.endpoint, protocol="https", ca_file=emu.ca_file),
            credential=static_credential(KEY_ID, KEY_SECRET), clock=atime.clock)

        async def twice() -> list[Any]:
            async with service:
                return [await service.send_async(NUMBER, TEXT) for _ in range(2)]

        receipts = run(twice())
        assert [m.message_id for m in emu.messages] == [r.message_id for r in receipts]


def test_untrusted_certificate_is_configuration_error(atime: FakeTime) -> None:
    """Without the CA, HTTPS fails as ConfigurationError naming ca_file, nothing stored."""
    from globesms import ConfigurationError

    with Emulator(access_keys={KEY_ID: KEY_SECRET}, tls=True) as emu:
        service = SmsService(Settings(endpoint=emu.endpoint, protocol="https"),
                             credential=static_credential(KEY_ID, KEY_SECRET),
                             async_sleep=atime.async_sleep, clock=atime.clock)
        with pytest.raises(ConfigurationError, match="ca_file"):
            run(_send(service, NUMBER, TEXT))
        assert emu.messages == []


def test_errors_are_smserrors_not_sdk_exceptions(emulator: Emulator, make: Any) -> None:
    """Nothing from aiohttp or the SDK escapes send_async."""
    emulator.script(DIGITS, Drop(after_read=False))
    with pytest.raises(SmsError) as caught:
        run(_send(make(), NUMBER, TEXT))
    assert caught.value.__context__ is None


def test_retry_waits_do_not_block_the_event_loop(emulator: Emulator) -> None:
    """While send_async waits 0.3 s to retry, other tasks on the loop keep running."""
    emulator.script(DIGITS, HttpError(400, "Throttling.User", retry_after_ms=300), Accept())
    service = SmsService(Settings(endpoint=emulator.endpoint, protocol="http"),
                         credential=static_credential(KEY_ID, KEY_SECRET))

    async def scenario() -> tuple[int, Any]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        background = asyncio.create_task(ticker())
        async with service:
            receipt = await service.send_async(NUMBER, TEXT)
        stop.set()
        await background
        return ticks, receipt

    ticks, receipt = run(scenario())
    assert receipt.attempts == 2
    assert ticks >= 10  # a blocking 0.3 s sleep would have allowed one or two


def test_cancelling_during_the_backoff_stops_the_retries(emulator: Emulator) -> None:
    """A send cancelled while it waits to retry never sends its next attempt."""
    emulator.script(DIGITS, HttpError(503, "ServiceUnavailable", retry_after_ms=5000), Accept())
    waiting = asyncio.Event()

    async def backoff(seconds: float) -> None:
        waiting.set()  # the retry wait has begun
        await asyncio.Event().wait()  # until cancelled

    service = SmsService(Settings(endpoint=emulator.endpoint, protocol="http"),
                         credential=static_credential(KEY_ID, KEY_SECRET), async_sleep=backoff)

    async def scenario() -> None:
        async with service:
            task = asyncio.create_task(service.send_async(NUMBER, TEXT))
            await waiting.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    run(scenario())
    assert len(emulator.requests) == 1
    assert emulator.messages == []
