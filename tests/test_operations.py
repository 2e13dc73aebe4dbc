"""Every operation besides send, sync and async, against the emulator through the official SDK:
status, batches, mainland templates, conversion reports and the local preview."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from globesms import (
    InvalidRecipient,
    InvalidRequest,
    MessageRejected,
    Settings,
    SmsService,
)
from globesms._credentials import static_credential
from globesms.emulator import Drop, Emulator, HttpError, Reply
from globesms.emulator._segments import count_segments
from support import KEY_ID, KEY_SECRET, NUMBER, TEXT, FakeTime

MODES = pytest.mark.parametrize("mode", ["sync", "async"])
MAINLAND = "+86 138 0013 8000"


@pytest.fixture
def time_() -> FakeTime:
    return FakeTime()


@pytest.fixture
def service(emulator: Emulator, time_: FakeTime) -> SmsService:
    """A service for the emulator with fake time (waits are recorded, not slept)."""
    return SmsService(
        Settings(endpoint=emulator.endpoint, protocol="http"),
        credential=static_credential(KEY_ID, KEY_SECRET),
        sleep=time_.sleep, async_sleep=time_.async_sleep, clock=time_.clock,
    )


def call(service: SmsService, mode: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``name`` or ``name_async`` on the service."""
    if mode == "sync":
        return getattr(service, name)(*args, **kwargs)

    async def go() -> Any:
        try:
            return await getattr(service, f"{name}_async")(*args, **kwargs)
        finally:
            await service.aclose()

    return asyncio.run(go())


def api(emulator: Emulator, action: str | None = None) -> list[Any]:
    return [r for r in emulator.requests if r.action and (action is None or r.action == action)]


# -- status (QueryMessage) ----------------------------------------------------------------------


@MODES
@pytest.mark.parametrize(("rule", "state"), [("sent", "delivered"), ("failed", "failed"),
                                             ("sending", "sending")])
def test_status_reports_the_delivery_state(
    emulator: Emulator, service: SmsService, mode: str, rule: str, state: str
) -> None:
    """Status 1/2/3 become delivered/failed/sending, with UTC-aware dates and a masked repr."""
    receipt = service.send(NUMBER, TEXT)
    emulator.set_delivery(None, rule, error_code="UNDELIV" if rule == "failed" else None)
    status = call(service, mode, "status", receipt.message_id)
    assert status.state == state
    assert status.message_id == receipt.message_id
    assert status.sent_at is not None and status.sent_at.tzinfo is not None
    assert status.sent_at.utcoffset() == timedelta(0)
    # The emulator answers in UTC+8 like the provider: an offset-ignoring parser is 8 h off.
    assert abs(status.sent_at - datetime.now(timezone.utc)) < timedelta(minutes=5)
    if state == "sending":
        assert status.received_at is None
    else:
        assert status.received_at is not None
    if state == "failed":
        assert status.error_code == "UNDELIV"
    assert "7700900123" not in repr(status)


@MODES
def test_status_of_an_unknown_id_is_not_found(
    emulator: Emulator, service: SmsService, mode: str
) -> None:
    """An id the provider does not know is state='not_found', not an exception."""
    status = call(service, mode, "status", "1234567890")
    assert status.state == "not_found"
    assert len(api(emulator, "QueryMessage")) == 1


@MODES
@pytest.mark.parametrize("bad", ["", "  ", "a b", "x" * 65, None, 12, "id\n"])
def test_malformed_message_id_is_refused_unsent(
    emulator: Emulator, service: SmsService, mode: str, bad: Any
) -> None:
    """An empty or malformed id is InvalidRequest and nothing reaches the endpoint."""
    with pytest.raises(InvalidRequest):
        call(service, mode, "status", bad)
    assert api(emulator) == []


@MODES
def test_status_retries_an_uncertain_outcome(
    emulator: Emulator, service: SmsService, mode: str
) -> None:
    """QueryMessage is safe to repeat: a dropped answer is retried, unlike a send."""
    receipt = service.send(NUMBER, TEXT)
    emulator.script(None, Drop(after_read=True))
    status = call(service, mode, "status", receipt.message_id)
    assert status.state == "delivered"
    assert len(api(emulator, "QueryMessage")) == 2


# -- send_batch (BatchSendMessageToGlobe) ----------------------------------------------------------

BATCH = ["+44 7700 900123", "+44 7700 900124", "+44 7700 900125"]


@MODES
def test_batch_sends_valid_numbers_in_one_request(
    emulator: Emulator, service: SmsService, mode: str
) -> None:
    """Valid numbers go out in one request; invalid ones (mainland included) are rejected
    unsent; every input number lands in exactly one list; reprs are masked."""
    numbers = [*BATCH, "12", MAINLAND]
    result = call(service, mode, "send_batch", numbers, "Service notice")
    assert [item.to for item in result.accepted] == [n.replace(" ", "")[1:] for n in BATCH]
    assert {item.to for item in result.rejected} == {"12", MAINLAND}
    assert all(isinstance(item.error, InvalidRecipient) for item in result.rejected)
    assert result.uncertain == []
    assert len(result.request_ids) == 1
    assert len(api(emulator, "BatchSendMessageToGlobe")) == 1
    assert len(emulator.messages) == 3
    assert all(item.message_id for item in result.accepted)
    assert "900123" not in repr(result) and "Service notice" not in repr(result)


@MODES
def test_batch_texts_are_matched_by_position(
    emulator: Emulator, service: SmsService, mode: str
) -> None:
    """A list of texts goes to the numbers at the same positions."""
    texts = ["one", "two", "three"]
    call(service, mode, "send_batch", BATCH, texts)
    sent = {m.to: m.message for m in emulator.messages}
    assert sent == {n.replace(" ", "")[1:]: t for n, t in zip(BATCH, texts, strict=True)}


def _chunk(numbers: list[str]) -> Any:
    from globesms._batch import Chunk

    return Chunk(numbers, ["x"] * len(numbers), None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("numbers", "failed", "ids", "accepted", "rejected", "uncertain"),
    [
        (["441", "442", "443"], [], ["a", "b", "c"], ["441", "442", "443"], [], []),
        (["441", "442", "443"], ["442"], ["a", "c"], ["441", "443"], ["442"], []),
        # fewer ids than unlisted numbers: no pairing can be proven
        (["441", "442", "443"], ["442"], ["a"], [], ["442"], ["441", "443"]),
        (["441", "442"], [], ["a", "b", "c"], [], [], ["441", "442"]),
        # a number sent twice and listed once: which copy failed is unknown
        (["441", "441", "442"], ["441"], ["b"], ["442"], [], ["441", "441"]),
        (["441", "441"], ["441", "441"], [], [], ["441", "441"], []),
    ],
    ids=["all-ok", "one-failed", "ids-short", "ids-long", "duplicate-ambiguous",
         "duplicate-both-failed"],
)
def test_batch_answer_matching(
    numbers: list[str], failed: list[str], ids: list[str], accepted: list[str],
    rejected: list[str], uncertain: list[str],
) -> None:
    """FailedList numbers are rejected; ids pair with the other numbers only when the counts
    prove it; everything else is uncertain; every number lands in exactly one list."""
    from globesms._batch import BatchPlan

    plan = BatchPlan([])
    plan.accept(_chunk(numbers), ("REQ", failed, ids))
    result = plan.result
    assert [item.to for item in result.accepted] == accepted
    assert [item.to for item in result.rejected] == rejected
    assert all(item.error.code == "FailedList" for item in result.rejected)
    assert sorted(result.uncertain) == sorted(uncertain)
    assert len(result.accepted) + len(result.rejected) + len(result.uncertain) == len(numbers)


@MODES
def test_batch_uncertain_request_is_reported_not_retried(
    emulator: Emulator, service: SmsService, mode: str
) -> None:
    """A dropped answer leaves the request's numbers uncertain; the request went out once."""
    emulator.script(None, Drop(after_read=True))
    result = call(service, mode, "send_batch", BATCH, "x")
    assert sorted(result.uncertain) == sorted(n.replace(" ", "")[1:] for n in BATCH)
    assert result.accepted == [] and result.rejected == []
    assert len(api(emulator, "BatchSendMessageToGlobe")) == 1


@MODES
def test_batch_provider_refusal_rejects_the_chunk_without_raising(
    emulator: Emulator, service: SmsService, mode: str
) -> None:
    """A business refusal of one request rejects its numbers; the call does not raise."""
    emulator.script(None, Reply("SMS_CONTENT_ILLEGAL"))
    result = call(service, mode, "send_batch", BATCH, "x")
    assert len(result.rejected) == 3
    assert all(isinstance(item.error, MessageRejected) for item in result.rejected)


@MODES
def test_batch_stopper_raises_before_anything_is_sent(emulator: Emulator, mode: str) -> None:
    """An auth failure on the first request stops the whole batch with the error."""
    bad = SmsService(Settings(endpoint=emulator.endpoint, protocol="http"),
                     credential=static_credential(KEY_ID, "wrong-secret"))
    with pytest.raises(Exception) as caught:
        call(bad, mode, "send_batch", BATCH, "x")
    assert type(caught.value).__name__ == "AuthError"
    assert emulator.messages == []


def test_batch_is_split_at_1000_and_paced_one_per_second(
    emulator: Emulator, service: SmsService, time_: FakeTime
) -> None:
    """2,001 numbers go out in 3 requests, each waiting for the next 1-per-second slot."""
    numbers = [f"+44 7700 9{i:05d}" for i in range(2001)]
    result = service.send_batch(numbers, "x")
    requests = api(emulator, "BatchSendMessageToGlobe")
    assert len(requests) == 3
    assert len(result.accepted) == 2001
    assert len(result.request_ids) == 3
    # one request per second, spaced with the governor's 3 % margin and 5 ms wake-up grid
    assert len(time_.sleeps) == 2 and all(1.0 <= s <= 1.05 for s in time_.sleeps)
    # and between consecutive calls on the same service
    service.send_batch(numbers[:2], "x")
    assert 1.0 <= time_.sleeps[-1] <= 1.05


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [({"message_type": "OTP"}, "InvalidType"), ({"message_type": "X"}, "InvalidType"),
     ({"sender": "bad sender!"}, "InvalidSender")],
)
def test_batch_option_errors_refuse_the_whole_call(
    emulator: Emulator, service: SmsService, kwargs: dict[str, Any], code: str
) -> None:
    """OTP batches (the API refuses them) and bad options raise before anything is sent."""
    with pytest.raises(InvalidRequest) as caught:
        service.send_batch(BATCH, "x", **kwargs)
    assert caught.value.code == code
    assert api(emulator) == []


@pytest.mark.parametrize("to", ["+44 7700 900123", [], None, 5])
def test_batch_needs_a_list_of_numbers(
    emulator: Emulator, service: SmsService, to: Any
) -> None:
    """``to`` must be a non-empty list; a lone string is refused (it would be split)."""
    with pytest.raises(InvalidRequest):
        service.send_batch(to, "x")
    assert api(emulator) == []


def test_batch_text_list_length_must_match(emulator: Emulator, service: SmsService) -> None:
    """A list of texts of another length than ``to`` is refused."""
    with pytest.raises(InvalidRequest):
        service.send_batch(BATCH, ["a", "b"])


# -- send_template (SendMessageWithTemplate) -----------------------------------------------------


@MODES
def test_template_reaches_a_mainland_number(
    emulator: Emulator, service: SmsService, mode: str
) -> None:
    """A +86 number gets the template with its parameters as JSON."""
    receipt = call(service, mode, "send_template", MAINLAND, "SMS_123", sign_name="Acme",
                   params={"code": "483920"})
    assert receipt.message_id
    (message,) = emulator.messages
    assert message.to == "8613800138000"
    assert "483920" not in repr(receipt)


@MODES
def test_template_refuses_other_numbers(
    emulator: Emulator, service: SmsService, mode: str
) -> None:
    """A non-mainland number is InvalidRecipient with a hint to use send."""
    with pytest.raises(InvalidRecipient) as caught:
        call(service, mode, "send_template", NUMBER, "SMS_123", sign_name="Acme")
    assert "send" in str(caught.value)
    assert api(emulator) == []


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [(("",), {"sign_name": "Acme"}), (("SMS_1",), {"sign_name": ""}),
     (("SMS_1",), {"sign_name": "Acme", "params": ["code"]}),
     (("SMS_1",), {"sign_name": "Acme", "params": {"code": object()}}),
     (("SMS_1",), {"sign_name": "Acme", "params": {"x": float("nan")}}),
     (("SMS_1",), {"sign_name": "Acme", "validity_period": 0})],
)
def test_template_arguments_are_validated(
    emulator: Emulator, service: SmsService, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Bad template codes, sign names and parameters are refused before the network."""
    with pytest.raises(InvalidRequest):
        service.send_template(MAINLAND, *args, **kwargs)
    assert api(emulator) == []


def test_send_still_refuses_mainland_and_points_at_send_template(service: SmsService) -> None:
    """send() refuses +86 and names send_template."""
    with pytest.raises(InvalidRecipient) as caught:
        service.send(MAINLAND, TEXT)
    assert "send_template" in str(caught.value)


# -- conversions (SmsConversion, ConversionData) ---------------------------------------------------


@MODES
def test_report_conversion(emulator: Emulator, service: SmsService, mode: str) -> None:
    """SmsConversion carries the message id, number and time; the result has a request id."""
    receipt = service.send(NUMBER, TEXT)
    at = datetime.now(timezone.utc) - timedelta(seconds=1)
    reported = call(service, mode, "report_conversion", receipt.message_id, to=NUMBER, at=at)
    assert reported.request_id
    assert len(api(emulator, "SmsConversion")) == 1


@MODES
def test_report_conversion_rate_goes_in_a_form_body(
    emulator: Emulator, service: SmsService, mode: str
) -> None:
    """ConversionData's signed form body is accepted by the emulator's signature check."""
    reported = call(service, mode, "report_conversion_rate", 0.42)
    assert reported.request_id
    assert len(api(emulator, "ConversionData")) == 1


@pytest.mark.parametrize(
    ("name", "args", "kwargs"),
    [("report_conversion_rate", (1.5,), {}), ("report_conversion_rate", (-0.1,), {}),
     ("report_conversion_rate", (True,), {}), ("report_conversion_rate", ("0.5",), {}),
     ("report_conversion_rate", (float("nan"),), {}),
     ("report_conversion", ("",), {}), ("report_conversion", ("1",), {"delivered": "yes"}),
     ("report_conversion", ("1",), {"to": "12"}),
     ("report_conversion", ("1",), {"at": datetime.now()}),  # naive
     ("report_conversion", ("1",), {"at": datetime.now(timezone.utc) + timedelta(hours=1)}),
     ("report_conversion_rate", (0.5,), {"at": "yesterday"})],
)
def test_conversion_arguments_are_validated(
    emulator: Emulator, service: SmsService, name: str, args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """Rates outside [0, 1], naive or future times and bad ids are refused unsent."""
    with pytest.raises(InvalidRequest):
        getattr(service, name)(*args, **kwargs)
    assert api(emulator) == []


@MODES
def test_conversion_report_retries_an_uncertain_outcome(
    emulator: Emulator, service: SmsService, mode: str
) -> None:
    """Reports are harmless to repeat: a 500 is retried."""
    emulator.script(None, HttpError(500, "InternalError"))
    reported = call(service, mode, "report_conversion_rate", 0.5)
    assert reported.attempts == 2


# -- preview ---------------------------------------------------------------------------------------


def test_preview_counts_without_sending(emulator: Emulator, service: SmsService) -> None:
    """Preview returns encoding and segments, masks the number and sends nothing."""
    preview = service.preview(NUMBER, "a" * 161)
    assert (preview.encoding, preview.characters, preview.segments) == ("GSM-7", 161, 2)
    assert preview.country == "44"
    assert "900123" not in repr(preview)
    assert service.preview(NUMBER, "你好").encoding == "UCS-2"
    assert api(emulator) == []


@pytest.mark.parametrize(
    ("text", "segments"),
    [("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3), ("€" * 80, 1),
     ("€" * 81, 2), ("a" * 152 + "€", 1), ("a" * 159 + "€" + "a" * 10, 2),
     ("你" * 70, 1), ("你" * 71, 2), ("😀" * 35, 1), ("😀" * 36, 2), ("a" * 67 + "😀" * 2, 2),
     ("a" * 66 + "😀" * 2, 1)],
)
def test_preview_segment_rules(service: SmsService, text: str, segments: int) -> None:
    """GSM 03.38 and UCS-2 part sizes; extension characters and surrogate pairs never split."""
    assert service.preview(NUMBER, text).segments == segments


@pytest.mark.parametrize(
    ("to", "message"), [("07700 900123", TEXT), (NUMBER, ""), (MAINLAND, TEXT), (None, TEXT)]
)
def test_preview_raises_what_send_raises(
    service: SmsService, to: Any, message: Any
) -> None:
    """Preview raises the same class and code as send for the same invalid input."""
    with pytest.raises(InvalidRequest) as previewed:
        service.preview(to, message)
    with pytest.raises(InvalidRequest) as sent:
        service.send(to, message)
    assert (type(previewed.value), previewed.value.code) == (type(sent.value), sent.value.code)


GSM = "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCXYZÄÖÑÜ§¿abcxyzäöñüà"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(GSM + "€[]{}\\^~|") | st.characters(), min_size=1,
               max_size=400).filter(lambda t: t.strip()))
def test_preview_agrees_with_the_emulator(text: str) -> None:
    """The facade's segment count equals the emulator's independent count for any text."""
    from globesms._segments import segments_of

    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return
    assert segments_of(text) == count_segments(text)


# -- logs -----------------------------------------------------------------------------------------


def test_operations_log_no_number_text_or_parameters(
    emulator: Emulator, service: SmsService, caplog: pytest.LogCaptureFixture
) -> None:
    """Every operation's log records hold no full number, text or template parameter."""
    caplog.set_level(logging.DEBUG)
    receipt = service.send(NUMBER, TEXT)
    service.status(receipt.message_id)
    service.send_batch(BATCH, "Batch text 1234567")
    service.send_template(MAINLAND, "SMS_1", sign_name="Acme", params={"code": "483920"})
    service.report_conversion(receipt.message_id, to=NUMBER)
    service.report_conversion_rate(0.3)
    events = {getattr(r, "event", None) for r in caplog.records}
    assert {"sms.sent", "sms.status", "sms.send_batch", "sms.send_template",
            "sms.report_conversion", "sms.report_conversion_rate"} <= events
    dump = json.dumps([{**r.__dict__, "msg": r.getMessage()} for r in caplog.records],
                      default=str)
    for secret in ("447700900123", "7700 900123", TEXT, "Batch text", "483920",
                   "8613800138000", KEY_SECRET):
        assert secret not in dump




# -- the async request is the SDK's own, for every operation ---------------------------------------

_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
_AT_MS = int(_AT.timestamp() * 1000)
_WIRE = [
    ("send_message_to_globe_with_options",
     lambda m: m.SendMessageToGlobeRequest(to="447700900123", message="Hi é 😀 &=?",
                                           from_="Acme", type="NOTIFY", task_id="t-1",
                                           validity_period=60),
     "send", ("+447700900123", "Hi é 😀 &=?"),
     {"sender": "Acme", "message_type": "NOTIFY", "task_id": "t-1", "validity_period": 60}),
    ("batch_send_message_to_globe_with_options",
     lambda m: m.BatchSendMessageToGlobeRequest(
         to=json.dumps(["447700900123", "447700900124"]),
         message=json.dumps(["Hi é", "Yo 😀"], ensure_ascii=False), type="MKT"),
     "send_batch", (["+447700900123", "+447700900124"], ["Hi é", "Yo 😀"]),
     {"message_type": "MKT"}),
    ("send_message_with_template_with_options",
     lambda m: m.SendMessageWithTemplateRequest(
         to="8613800138000", from_="Acme", template_code="SMS_1",
         template_param=json.dumps({"code": "483920"})),
     "send_template", ("+8613800138000", "SMS_1"),
     {"sign_name": "Acme", "params": {"code": "483920"}}),
    ("query_message_with_options", lambda m: m.QueryMessageRequest(message_id="123"),
     "status", ("123",), {}),
    ("sms_conversion_with_options",
     lambda m: m.SmsConversionRequest(message_id="123", to="447700900123", delivered=False,
                                      conversion_time=_AT_MS),
     "report_conversion", ("123",), {"to": "+447700900123", "delivered": False, "at": _AT}),
    ("conversion_data_with_options",
     lambda m: m.ConversionDataRequest(conversion_rate="0.5", report_time=_AT_MS),
     "report_conversion_rate", (0.5,), {"at": _AT}),
]


def _signed_headers(headers: dict[str, str]) -> dict[str, str]:
    names = headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    return {name: headers[name] for name in names}


@pytest.mark.parametrize(("method", "model", "name", "args", "kwargs"), _WIRE,
                         ids=[case[2] for case in _WIRE])
def test_async_wire_request_is_the_sdks(
    emulator: Emulator, service: SmsService, method: str, model: Callable[[Any], Any],
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
) -> None:
    """For every operation the async request equals the SDK's own sync one: same target, same
    signed headers (the body hash of ConversionData's form body included), only date, nonce
    and signature differ; the emulator verifies both signatures."""
    from alibabacloud_dysmsapi20180501 import models
    from alibabacloud_dysmsapi20180501.client import Client
    from alibabacloud_tea_openapi.models import Config
    from alibabacloud_tea_util.models import RuntimeOptions

    from globesms._version import version

    sdk = Client(Config(access_key_id=KEY_ID, access_key_secret=KEY_SECRET,
                        endpoint=emulator.endpoint, protocol="http",
                        user_agent=f"globesms/{version()}"))
    with contextlib.suppress(Exception):
        getattr(sdk, method)(model(models), RuntimeOptions())
    with contextlib.suppress(Exception):
        call(service, "async", name, *args, **kwargs)
    theirs, ours = api(emulator)
    assert ours.action == theirs.action
    assert (ours.http_status, ours.code) == (theirs.http_status, theirs.code)
    assert ours.target == theirs.target
    ours_signed, theirs_signed = _signed_headers(ours.headers), _signed_headers(theirs.headers)
    assert set(ours_signed) == set(theirs_signed)
    varying = {"x-acs-date", "x-acs-signature-nonce"}
    assert {k: v for k, v in ours_signed.items() if k not in varying} == {
        k: v for k, v in theirs_signed.items() if k not in varying}
    assert ours.query == theirs.query
