"""Retry rules: what is retried, how often, how long we wait, and what is never repeated."""

from __future__ import annotations

import pytest

from globesms import (
    DeliveryUncertain,
    ServiceUnavailable,
    SmsError,
    Throttled,
    TransientError,
)
from globesms._retry import BACKOFF_BASE, BACKOFF_CAP
from globesms.emulator import Accept, Emulator, HttpError, Reply
from support import DIGITS, NUMBER, TEXT, FakeTime, ServiceFactory


def test_system_error_is_retried_then_succeeds(
    emulator: Emulator, make_service: ServiceFactory, fake_time: FakeTime
) -> None:
    """The provider's temporary SYSTEM_ERROR is retried; the receipt counts the attempts."""
    emulator.script(DIGITS, Reply("SYSTEM_ERROR"), Reply("SYSTEM_ERROR"), Accept())
    receipt = make_service().send(NUMBER, TEXT)
    assert receipt.attempts == 3
    assert len(emulator.requests) == 3
    assert len(emulator.messages) == 1
    assert len(fake_time.sleeps) == 2
    assert 0 <= fake_time.sleeps[0] <= BACKOFF_BASE
    assert 0 <= fake_time.sleeps[1] <= 2 * BACKOFF_BASE


def test_transient_failures_stop_at_max_attempts_and_stay_retryable(
    emulator: Emulator, make_service: ServiceFactory, fake_time: FakeTime
) -> None:
    """HTTP 503 is retried up to max_attempts; the final error is still marked retryable."""
    emulator.script(DIGITS, *[HttpError(503, "ServiceUnavailable")] * 5)
    with pytest.raises(ServiceUnavailable) as caught:
        make_service(max_attempts=4).send(NUMBER, TEXT)
    assert caught.value.attempts == 4
    assert caught.value.retryable is True
    assert caught.value.http_status == 503
    assert len(emulator.requests) == 4
    assert all(wait <= BACKOFF_CAP for wait in fake_time.sleeps)


def test_acs_retry_after_is_milliseconds_and_wins_over_backoff(
    emulator: Emulator, make_service: ServiceFactory, fake_time: FakeTime
) -> None:
    """x-acs-retry-after: 1500 waits exactly 1.5 s before the next attempt."""
    emulator.script(DIGITS, HttpError(400, "Throttling.User", retry_after_ms=1500), Accept())
    receipt = make_service().send(NUMBER, TEXT)
    assert receipt.attempts == 2
    assert fake_time.sleeps == [1.5]


def test_standard_retry_after_is_seconds(
    emulator: Emulator, make_service: ServiceFactory, fake_time: FakeTime
) -> None:
    """A standard Retry-After: 2 on HTTP 429 waits 2 s and maps to Throttled."""
    emulator.script(DIGITS, HttpError(429, "Throttling.User", retry_after_s=2),
                    HttpError(429, "Throttling.User", retry_after_s=2))
    with pytest.raises(Throttled) as caught:
        make_service(max_attempts=2).send(NUMBER, TEXT)
    assert fake_time.sleeps == [2.0]
    assert caught.value.retry_after == 2.0
    assert caught.value.code == "Throttling.User"


def test_retry_hint_kept_on_non_throttling_class(
    emulator: Emulator, make_service: ServiceFactory, fake_time: FakeTime
) -> None:
    """A 503 with x-acs-retry-after stays ServiceUnavailable and keeps the hint."""
    emulator.script(DIGITS, HttpError(503, "ServiceUnavailable", retry_after_ms=250))
    with pytest.raises(ServiceUnavailable) as caught:
        make_service(max_attempts=1).send(NUMBER, TEXT)
    assert caught.value.retry_after == 0.25


def test_hint_longer_than_deadline_stops_at_once(
    emulator: Emulator, make_service: ServiceFactory, fake_time: FakeTime
) -> None:
    """A daily limit is not waited for: one request, no sleep, retry_after reported."""
    emulator.script(DIGITS, Reply("isv.BUSINESS_LIMIT_DAY"))
    with pytest.raises(Throttled) as caught:
        make_service().send(NUMBER, TEXT)
    assert fake_time.sleeps == []
    assert caught.value.retry_after == 86400.0
    assert caught.value.retryable is True
    assert len(emulator.requests) == 1


def test_deadline_bounds_the_whole_call(
    emulator: Emulator, make_service: ServiceFactory, fake_time: FakeTime
) -> None:
    """Waits that would run past the deadline end the call, whatever max_attempts says."""
    emulator.script(DIGITS, *[HttpError(400, "Throttling", retry_after_ms=4000)] * 10)
    with pytest.raises(Throttled) as caught:
        make_service(max_attempts=10, deadline=10.0).send(NUMBER, TEXT)
    assert fake_time.sleeps == [4.0, 4.0]
    assert caught.value.attempts == 3
    assert len(emulator.requests) == 3


@pytest.mark.parametrize(
    "fault",
    [
        HttpError(500, "InternalError"),
        HttpError(502, body="<html><body>Bad Gateway</body></html>", content_type="text/html"),
        HttpError(504, "GatewayTimeout"),
        HttpError(200, body="not json", content_type="text/plain"),
    ],
    ids=["500", "502-html", "504", "200-garbage"],
)
def test_uncertain_outcomes_are_not_retried(
    emulator: Emulator, make_service: ServiceFactory, fake_time: FakeTime, fault: HttpError
) -> None:
    """5xx other than 503 and unreadable answers raise DeliveryUncertain after one request."""
    emulator.script(DIGITS, fault, Accept())
    with pytest.raises(DeliveryUncertain) as caught:
        make_service().send(NUMBER, TEXT)
    assert not isinstance(caught.value, TransientError)
    assert caught.value.retryable is False
    assert caught.value.attempts == 1
    assert len(emulator.requests) == 1
    assert fake_time.sleeps == []


def test_html_503_is_retried_as_service_unavailable(
    emulator: Emulator, make_service: ServiceFactory
) -> None:
    """An unreadable 503 page is still a 503: nothing was processed, so it is retried."""
    page = "<html><body>Service Unavailable</body></html>"
    emulator.script(DIGITS, HttpError(503, body=page, content_type="text/html"), Accept())
    receipt = make_service().send(NUMBER, TEXT)
    assert receipt.attempts == 2


def test_retry_uncertain_opt_in_retries_uncertain_outcomes(
    emulator: Emulator, make_service: ServiceFactory
) -> None:
    """With retry_uncertain=True a 500 is retried (the caller accepted duplicates)."""
    emulator.script(DIGITS, HttpError(500, "InternalError"), Accept())
    receipt = make_service(retry_uncertain=True).send(NUMBER, TEXT)
    assert receipt.attempts == 2
    assert len(emulator.requests) == 2


@pytest.mark.parametrize("code", ["INVALID_SENDERID", "MOBILE_NUMBER_ILLEGAL", "Forbidden.RAM"])
def test_permanent_errors_are_sent_once(
    emulator: Emulator, make_service: ServiceFactory, fake_time: FakeTime, code: str
) -> None:
    """Errors that a retry cannot fix reach the provider exactly once."""
    outcome = HttpError(403, code) if "." in code else Reply(code)
    emulator.script(DIGITS, outcome, Accept())
    with pytest.raises(SmsError) as caught:
        make_service().send(NUMBER, TEXT)
    assert caught.value.retryable is False
    assert len(emulator.requests) == 1
    assert fake_time.sleeps == []
