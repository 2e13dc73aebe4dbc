"""Logs: one structured record per outcome and retry, and no PII anywhere."""

from __future__ import annotations

import json
import logging
import traceback

import pytest

from globesms import JsonFormatter, Settings, SmsError, SmsService
from globesms._credentials import static_credential
from globesms.emulator import Accept, Delay, Drop, Emulator, HttpError, Reply
from support import DIGITS, KEY_SECRET, NUMBER, TEXT, FakeTime, ServiceFactory

MASKED = "+44****0123"


def _ours(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("globesms")]


def test_sent_record_has_fields(caplog: pytest.LogCaptureFixture,
                                make_service: ServiceFactory) -> None:
    """A successful send logs one INFO sms.sent record with masked number and ids."""
    caplog.set_level(logging.DEBUG)
    receipt = make_service().send(NUMBER, TEXT)
    [record] = _ours(caplog)
    assert record.levelno == logging.INFO
    fields = record.__dict__
    assert fields["event"] == "sms.sent"
    assert fields["outcome"] == "sent"
    assert fields["to"] == MASKED
    assert fields["request_id"] == receipt.request_id
    assert fields["message_id"] == receipt.message_id
    assert fields["attempt"] == 1
    assert isinstance(fields["elapsed_ms"], int)


def test_retry_and_failure_records(caplog: pytest.LogCaptureFixture, emulator: Emulator,
                                   make_service: ServiceFactory) -> None:
    """Each scheduled retry logs WARNING sms.retry; the final failure logs sms.failed."""
    caplog.set_level(logging.DEBUG)
    emulator.script(DIGITS, *[HttpError(400, "Throttling.User", retry_after_ms=100)] * 3)
    with pytest.raises(SmsError):
        make_service().send(NUMBER, TEXT)
    records = _ours(caplog)
    assert [r.__dict__["event"] for r in records] == ["sms.retry", "sms.retry", "sms.failed"]
    retry = records[0].__dict__
    assert records[0].levelno == logging.WARNING
    assert (retry["attempt"], retry["retry_in_ms"], retry["code"]) == (1, 100, "Throttling.User")
    assert retry["error_class"] == "Throttled"
    failed = records[-1].__dict__
    assert (failed["outcome"], failed["attempt"], failed["to"]) == ("failed", 3, MASKED)


def test_uncertain_outcome_logs_error(caplog: pytest.LogCaptureFixture, emulator: Emulator,
                                      make_service: ServiceFactory) -> None:
    """An uncertain outcome is logged at ERROR with outcome=uncertain."""
    caplog.set_level(logging.DEBUG)
    emulator.script(DIGITS, HttpError(500, "InternalError"))
    with pytest.raises(SmsError):
        make_service().send(NUMBER, TEXT)
    [record] = _ours(caplog)
    assert record.levelno == logging.ERROR
    assert record.__dict__["outcome"] == "uncertain"
    assert record.__dict__["error_class"] == "DeliveryUncertain"


def test_rejected_validation_is_logged(caplog: pytest.LogCaptureFixture,
                                       make_service: ServiceFactory) -> None:
    """Invalid input logs sms.invalid with the code, without the number."""
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SmsError):
        make_service().send("+86 138 0013 8000", TEXT)
    [record] = _ours(caplog)
    assert record.__dict__["event"] == "sms.invalid"
    assert record.__dict__["code"] == "MainlandNumber"
    assert record.__dict__["to"] == "+86****8000"
    assert "13800138000" not in record.getMessage()


def _scenarios() -> list[object]:
    return [Accept(), Reply("INVALID_SENDERID"), HttpError(503, "ServiceUnavailable"),
            HttpError(500, "InternalError"), HttpError(502, body="<html>x</html>"),
            Drop(after_read=True), Delay(3.0)]


def test_no_pii_in_logs_errors_or_tracebacks(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, emulator: Emulator, make_service: ServiceFactory,
) -> None:
    """With DEBUG=sdk, no record, error text, repr or traceback holds text, number or secret."""
    monkeypatch.setenv("DEBUG", "sdk")
    caplog.set_level(logging.DEBUG)
    service = make_service(read_timeout=0.3, max_attempts=2)
    texts: list[str] = []
    for outcome in _scenarios():
        emulator.script(DIGITS, outcome, outcome)
        try:
            texts.append(repr(service.send(NUMBER, TEXT)))
        except SmsError as error:
            texts += [str(error), repr(error), "".join(traceback.format_exception(error))]
    texts += [r.getMessage() + json.dumps(r.__dict__, default=str) for r in caplog.records]
    captured = capsys.readouterr()
    texts += [captured.out, captured.err]
    blob = "\n".join(texts)
    assert len(caplog.records) >= len(_scenarios())
    for secret in (TEXT, "483920", DIGITS, "7700900123", KEY_SECRET, "Signature="):
        assert secret not in blob


def test_connection_refused_traceback_has_no_url(fake_time: FakeTime) -> None:
    """requests puts the URL (number and text) in its error; our chained cause drops it."""
    settings = Settings(endpoint="127.0.0.1:9", protocol="http", max_attempts=1)
    service = SmsService(settings, credential=static_credential("k", KEY_SECRET),
                         sleep=fake_time.sleep, clock=fake_time.clock)
    with pytest.raises(SmsError) as caught:
        service.send(NUMBER, TEXT)
    rendered = "".join(traceback.format_exception(caught.value))
    assert "SdkFailure" in rendered
    assert DIGITS not in rendered and "483920" not in rendered


def test_sdk_debug_output_returns_when_opted_out(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
    make_service: ServiceFactory,
) -> None:
    """quiet_sdk_logs=False lets the SDK's own DEBUG=sdk records through (the filter is ours)."""
    monkeypatch.setenv("DEBUG", "sdk")
    caplog.set_level(logging.DEBUG)
    make_service(quiet_sdk_logs=False).send(NUMBER, TEXT)
    assert any(r.name == "darabonba-core" for r in caplog.records)


def test_sdk_records_outside_our_calls_are_untouched() -> None:
    """The filter only drops SDK records emitted inside a globesms call."""
    from globesms._log import SdkQuietFilter, install_sdk_filters, quiet_sdk

    install_sdk_filters()
    sdk_logger = logging.getLogger("darabonba-core")
    [ours] = [f for f in sdk_logger.filters if isinstance(f, SdkQuietFilter)]
    record = sdk_logger.makeRecord("darabonba-core", logging.DEBUG, __file__, 1, "m", (), None)
    assert ours.filter(record) is True
    with quiet_sdk(True):
        assert ours.filter(record) is False


def test_json_formatter_writes_fields(caplog: pytest.LogCaptureFixture,
                                      make_service: ServiceFactory) -> None:
    """JsonFormatter renders one JSON object with the event fields at the top level."""
    caplog.set_level(logging.INFO)
    make_service().send(NUMBER, TEXT)
    [record] = _ours(caplog)
    line = JsonFormatter().format(record)
    data = json.loads(line)
    assert data["event"] == "sms.sent"
    assert data["to"] == MASKED
    assert data["level"] == "INFO"
    assert "\n" not in line


def test_library_adds_no_handlers() -> None:
    """The library leaves handler and level choices to the application."""
    logger = logging.getLogger("globesms")
    assert logger.handlers == [] or all(
        isinstance(h, logging.NullHandler) for h in logger.handlers
    )
    assert logger.level == logging.NOTSET


_SDK_MODULES = ("Tea", "darabonba", "alibabacloud_", "requests", "urllib3", "aiohttp")


@pytest.mark.parametrize(
    "outcome",
    [HttpError(503, body="<html>busy</html>", content_type="text/html"), Drop(after_read=True),
     HttpError(400, "Throttling.User", retry_after_s=1)],
    ids=["html-503", "drop", "throttled"],
)
def test_no_sdk_exception_is_reachable_from_an_error(
    emulator: Emulator, make_service: ServiceFactory, outcome: object
) -> None:
    """Neither __cause__ nor __context__ leads to an SDK exception holding the signed request."""
    emulator.script(DIGITS, outcome, outcome, outcome)
    with pytest.raises(SmsError) as caught:
        make_service().send(NUMBER, TEXT)
    seen: list[BaseException] = []
    stack: list[BaseException | None] = [caught.value]
    while stack:
        current = stack.pop()
        if current is None or current in seen:
            continue
        seen.append(current)
        stack += [current.__cause__, current.__context__]
    modules = [type(e).__module__ for e in seen]
    assert not [m for m in modules if m.startswith(_SDK_MODULES)], modules
    assert not any(hasattr(e, "last_request") for e in seen)
