"""The emulator's six operations, gateway options, delivery lifecycle, faults and admin paths.

Every call goes through the official SDK (sync, and async where marked) with no globesms code
in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from alibabacloud_dysmsapi20180501 import models
from alibabacloud_dysmsapi20180501.client import Client
from alibabacloud_tea_openapi.exceptions import (
    ClientException,
    ServerException,
    ThrottlingException,
)
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_util.models import RuntimeOptions
from Tea.exceptions import UnretryableException

from globesms.emulator import MAGIC_NUMBERS, Conversion, ConversionReport, Emulator
from globesms.emulator._signature import parse_acs_date

KEY_ID = "opsKeyId"
SECRET = "opsSecret-123"
HK = "85212345678"
SG = "6591234567"
CN = "8613800138000"
RT = RuntimeOptions()


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(access_keys={KEY_ID: SECRET}) as running:
        yield running


def client_for(emu: Emulator, **config: Any) -> Client:
    config.setdefault("access_key_id", KEY_ID)
    config.setdefault("access_key_secret", SECRET)
    return Client(Config(endpoint=emu.endpoint, protocol=emu.protocol, **config))


def send(client: Client, to: str = HK, message: str = "hello", **fields: Any) -> Any:
    request = models.SendMessageToGlobeRequest(to=to, message=message, **fields)
    return client.send_message_to_globe_with_options(request, RT).body


def batch(client: Client, numbers: list[str], texts: list[str], **fields: Any) -> Any:
    request = models.BatchSendMessageToGlobeRequest(
        to=json.dumps(numbers), message=json.dumps(texts), **fields
    )
    return client.batch_send_message_to_globe_with_options(request, RT).body


def template(client: Client, to: str = CN, **fields: Any) -> Any:
    fields.setdefault("from_", "Acme")
    fields.setdefault("template_code", "SMS_001")
    request = models.SendMessageWithTemplateRequest(to=to, **fields)
    return client.send_message_with_template_with_options(request, RT).body


def query(client: Client, message_id: str | None) -> Any:
    request = models.QueryMessageRequest(message_id=message_id)
    return client.query_message_with_options(request, RT).body


def gateway_error(call: Any) -> tuple[str, int]:
    with pytest.raises(ClientException) as caught:
        call()
    return caught.value.code, caught.value.status_code


# -- 1. operations -----------------------------------------------------------------------


def test_batch_send_accepts_position_matched_numbers_and_texts(emu: Emulator) -> None:
    """BatchSendMessageToGlobe stores one message per valid number; bad ones go to FailedList."""
    body = batch(
        client_for(emu), [HK, "12", SG, CN], ["a", "b", "c", "d"], from_="Acme", type="MKT"
    )
    assert (body.response_code, body.success_count, body.from_) == ("OK", "2", "Acme")
    assert json.loads(body.failed_list) == ["12", CN]
    ids = json.loads(body.message_id_list)
    assert [(m.to, m.message, m.message_id, m.action) for m in emu.messages] == [
        (HK, "a", ids[0], "BatchSendMessageToGlobe"),
        (SG, "c", ids[1], "BatchSendMessageToGlobe"),
    ]


def test_batch_send_of_exactly_1000_over_64_kib_is_accepted(emu: Emulator) -> None:
    """1,000 numbers (a query string well over 64 KiB) are all accepted."""
    numbers = [f"85261{index:06d}" for index in range(1000)]
    texts = [f"Notice {index}: your parcel is on its way, track it in the app." for index in
             range(1000)]
    body = batch(client_for(emu), numbers, texts)
    assert (body.response_code, body.success_count) == ("OK", "1000")
    assert len(emu.requests[0].query["Message"]) + len(emu.requests[0].query["To"]) > 64 * 1024
    assert len(emu.messages) == 1000


def test_batch_send_of_1001_is_mobile_count_over_limit(emu: Emulator) -> None:
    """1,001 numbers answer MOBILE_COUNT_OVER_LIMIT and store nothing."""
    numbers = [f"85261{index:06d}" for index in range(1001)]
    body = batch(client_for(emu), numbers, ["x"] * 1001)
    assert body.response_code == "MOBILE_COUNT_OVER_LIMIT"
    assert emu.messages == []


@pytest.mark.parametrize(
    ("to", "message", "fields", "code"),
    [
        ("not json", '["a"]', {}, "INVALID_JSON_PARAM"),
        (json.dumps([HK]), json.dumps(["a", "b"]), {}, "INVALID_PARAMETERS"),
        (json.dumps([HK]), json.dumps(["a"]), {"type": "OTP"}, "INVALID_PARAMETERS"),
    ],
)
def test_batch_send_rejects_bad_input(
    emu: Emulator, to: str, message: str, fields: dict[str, str], code: str
) -> None:
    """Non-JSON arrays, unmatched lengths and Type OTP are refused without storing anything."""
    request = models.BatchSendMessageToGlobeRequest(to=to, message=message, **fields)
    body = client_for(emu).batch_send_message_to_globe_with_options(request, RT).body
    assert body.response_code == code
    assert emu.messages == []


@pytest.mark.parametrize("message_type", ["NOTIFY", "MKT"])
def test_batch_send_async_with_each_allowed_type(emu: Emulator, message_type: str) -> None:
    """The async SDK path of BatchSendMessageToGlobe works for NOTIFY and MKT."""
    request = models.BatchSendMessageToGlobeRequest(
        to=json.dumps([HK]), message=json.dumps(["hi"]), type=message_type
    )
    response = asyncio.run(
        client_for(emu).batch_send_message_to_globe_with_options_async(request, RT)
    )
    assert (response.body.response_code, response.body.success_count) == ("OK", "1")
    assert emu.messages[0].message_type == message_type


def test_send_with_template_accepts_mainland_numbers(emu: Emulator) -> None:
    """SendMessageWithTemplate takes a mainland number, a signature and a template."""
    body = template(client_for(emu), template_param='{"code":"1234"}', sms_up_extend_code="9")
    assert (body.response_code, body.to, body.segments) == ("OK", CN, "1")
    assert body.number_detail.country == "China"
    [stored] = emu.messages
    assert (stored.action, stored.sender, stored.template_code, stored.template_param) == (
        "SendMessageWithTemplate", "Acme", "SMS_001", '{"code":"1234"}'
    )


def test_send_with_template_async(emu: Emulator) -> None:
    """The async SDK path of SendMessageWithTemplate works."""
    request = models.SendMessageWithTemplateRequest(to=HK, from_="Acme", template_code="T1")
    response = asyncio.run(
        client_for(emu).send_message_with_template_with_options_async(request, RT)
    )
    assert response.body.response_code == "OK"
    assert emu.messages[0].to == HK


@pytest.mark.parametrize(
    ("fields", "code"),
    [({"from_": None}, "MissingFrom"), ({"template_code": None}, "MissingTemplateCode")],
)
def test_send_with_template_missing_required_is_400(
    emu: Emulator, fields: dict[str, None], code: str
) -> None:
    """Without the signature name or the template code the gateway answers 400 Missing<Name>."""
    assert gateway_error(lambda: template(client_for(emu), **fields)) == (code, 400)
    assert emu.messages == []


def test_send_with_template_checks_number_and_json(emu: Emulator) -> None:
    """A malformed number is MOBILE_NUMBER_ILLEGAL and bad TemplateParam INVALID_JSON_PARAM."""
    client = client_for(emu)
    assert template(client, to="12ab").response_code == "MOBILE_NUMBER_ILLEGAL"
    assert template(client, template_param="[1]").response_code == "INVALID_JSON_PARAM"
    assert emu.messages == []


def test_query_message_reports_a_sent_message(emu: Emulator) -> None:
    """An accepted message is visible to QueryMessage as sent (Status 1) with its fields."""
    client = client_for(emu)
    sent = send(client, to=SG, message="code 1")
    body = query(client, sent.message_id)
    assert (body.response_code, body.status, body.message_id, body.to, body.message) == (
        "OK", "1", sent.message_id, SG, "code 1"
    )
    assert body.error_code == "DELIVERED"
    assert body.send_date and body.receive_date
    assert body.number_detail.country == "Singapore"


def test_query_message_async_and_unknown_id(emu: Emulator) -> None:
    """QueryMessage works async; an unknown id is DATA_NOT_EXIST; no id is 400 MissingMessageId."""
    client = client_for(emu)
    sent = send(client)
    request = models.QueryMessageRequest(message_id=sent.message_id)
    response = asyncio.run(client.query_message_with_options_async(request, RT))
    assert response.body.status == "1"
    assert query(client, "12345").response_code == "DATA_NOT_EXIST"
    assert gateway_error(lambda: query(client, None)) == ("MissingMessageId", 400)


def test_sms_conversion_is_recorded(emu: Emulator) -> None:
    """SmsConversion (Delivered sent as True/False by the SDK) is stored as a Conversion."""
    client = client_for(emu)
    now_ms = int(time.time() * 1000)
    request = models.SmsConversionRequest(
        delivered=True, message_id="m-1", to=HK, conversion_time=now_ms
    )
    assert client.sms_conversion_with_options(request, RT).body.response_code == "OK"
    assert emu.requests[-1].query["Delivered"] == "True"
    request = models.SmsConversionRequest(delivered=False)
    response = asyncio.run(client.sms_conversion_with_options_async(request, RT))
    assert response.body.response_code == "OK"
    first, second = emu.conversions
    assert first == Conversion(True, "m-1", HK, now_ms, first.request_id)
    assert (second.delivered, second.message_id) == (False, None)
    missing = models.SmsConversionRequest(message_id="m-2")
    assert gateway_error(lambda: client.sms_conversion_with_options(missing, RT)) == (
        "MissingDelivered", 400
    )
    future = models.SmsConversionRequest(delivered=True, conversion_time=now_ms + 3_600_000)
    assert client.sms_conversion_with_options(future, RT).body.response_code == (
        "INVALID_PARAMETERS"
    )
    assert len(emu.conversions) == 2


def test_conversion_data_reads_the_form_body(emu: Emulator) -> None:
    """ConversionData's ConversionRate travels in a signed form body and is stored."""
    client = client_for(emu)
    request = models.ConversionDataRequest(conversion_rate="0.53", report_time=1700000000000)
    assert client.conversion_data_with_options(request, RT).body.response_code == "OK"
    assert "ConversionRate" not in emu.requests[0].headers.get("x-acs-action", "")
    request = models.ConversionDataRequest(conversion_rate="1")
    response = asyncio.run(client.conversion_data_with_options_async(request, RT))
    assert response.body.response_code == "OK"
    assert [(r.rate, r.report_time) for r in emu.conversion_reports] == [
        (0.53, 1700000000000), (1.0, None)
    ]
    assert isinstance(emu.conversion_reports[0], ConversionReport)


@pytest.mark.parametrize("rate", ["1.5", "-0.1", "nan", "abc"])
def test_conversion_rate_outside_zero_one_is_invalid(emu: Emulator, rate: str) -> None:
    """A ConversionRate that is not a number in [0, 1] is INVALID_PARAMETERS and not stored."""
    request = models.ConversionDataRequest(conversion_rate=rate)
    body = client_for(emu).conversion_data_with_options(request, RT).body
    assert body.response_code == "INVALID_PARAMETERS"
    assert emu.conversion_reports == []


def test_conversion_data_without_rate_is_missing(emu: Emulator) -> None:
    """ConversionData without ConversionRate is HTTP 400 MissingConversionRate."""
    request = models.ConversionDataRequest(report_time=1)
    assert gateway_error(
        lambda: client_for(emu).conversion_data_with_options(request, RT)
    ) == ("MissingConversionRate", 400)


def test_mainland_number_is_not_supported_by_send_message_to_globe(emu: Emulator) -> None:
    """SendMessageToGlobe answers NOT_SUPPORTED_COUNTRY (HTTP 200) for a +86 number."""
    assert send(client_for(emu), to=CN).response_code == "NOT_SUPPORTED_COUNTRY"
    assert emu.requests[0].http_status == 200
    assert emu.messages == []


# -- 2. gateway options --------------------------------------------------------------------


def test_approved_lists_answer_their_codes() -> None:
    """Unapproved sender ID, signature or template give INVALID_SENDERID / SMS_*_ILLEGAL."""
    with Emulator(
        access_keys={KEY_ID: SECRET}, sender_ids=["Acme"], sign_names=["AcmeSign"],
        template_codes={"SMS_1": "Code ${code}"},
    ) as emu:
        client = client_for(emu)
        assert send(client, from_="Other").response_code == "INVALID_SENDERID"
        assert send(client, from_="acme").response_code == "INVALID_SENDERID"
        assert batch(client, [HK], ["x"], from_="Other").response_code == "INVALID_SENDERID"
        assert template(client, from_="X", template_code="SMS_1").response_code == (
            "SMS_SIGN_NAME_ILLEGAL"
        )
        assert template(client, from_="AcmeSign", template_code="SMS_2").response_code == (
            "SMS_CONTENT_CODE_ILLEGAL"
        )
        assert template(client, from_="AcmeSign", template_code="SMS_1").response_code == (
            "CONTENT_MISSING_PARAMETERS"
        )
        assert emu.messages == []
        assert send(client, from_="Acme").response_code == "OK"
        body = template(
            client, from_="AcmeSign", template_code="SMS_1", template_param='{"code": 42}'
        )
        assert body.response_code == "OK"
        assert [m.message for m in emu.messages] == ["hello", "Code 42"]


def test_security_tokens_only_listed_ones_pass() -> None:
    """With security_tokens set, another STS token is 400 InvalidSecurityToken.Expired."""
    with Emulator(access_keys={KEY_ID: SECRET}, security_tokens=["good-token"]) as emu:
        assert send(client_for(emu, security_token="good-token")).response_code == "OK"
        assert gateway_error(lambda: send(client_for(emu, security_token="old-token"))) == (
            "InvalidSecurityToken.Expired", 400
        )
        assert send(client_for(emu)).response_code == "OK"
        assert len(emu.messages) == 2


def test_sts_key_without_its_token_is_missing_security_token() -> None:
    """A key bound to an STS token, signed without any token: 400 MissingSecurityToken."""
    keys = {"STS.tempKey": "tempSecret", KEY_ID: SECRET}
    with Emulator(access_keys=keys, sts_tokens={"STS.tempKey": "tok-1"}) as emu:
        temp = client_for(emu, access_key_id="STS.tempKey", access_key_secret="tempSecret")
        assert gateway_error(lambda: send(temp)) == ("MissingSecurityToken", 400)
        assert emu.messages == []
        assert [r.code for r in emu.requests] == ["MissingSecurityToken"]


def test_sts_key_with_another_token_is_a_mismatch() -> None:
    """A key bound to an STS token, signed with another token: 400 MismatchWithAccessKey."""
    keys = {"STS.tempKey": "tempSecret", KEY_ID: SECRET}
    with Emulator(access_keys=keys, sts_tokens={"STS.tempKey": "tok-1"}) as emu:
        temp = client_for(
            emu, access_key_id="STS.tempKey", access_key_secret="tempSecret",
            security_token="tok-2",
        )
        assert gateway_error(lambda: send(temp)) == (
            "InvalidSecurityToken.MismatchWithAccessKey", 400
        )
        assert emu.messages == []


def test_sts_key_with_its_token_is_accepted_and_other_keys_unaffected() -> None:
    """The bound token passes (signed by the SDK's STS path); a long-term key needs none."""
    keys = {"STS.tempKey": "tempSecret", KEY_ID: SECRET}
    with Emulator(access_keys=keys, sts_tokens={"STS.tempKey": "tok-1"}) as emu:
        temp = client_for(
            emu, access_key_id="STS.tempKey", access_key_secret="tempSecret",
            security_token="tok-1",
        )
        assert send(temp).response_code == "OK"
        assert send(client_for(emu)).response_code == "OK"
        assert emu.requests[0].headers["x-acs-security-token"] == "tok-1"
        assert len(emu.messages) == 2


def test_sts_tokens_must_name_known_keys() -> None:
    """sts_tokens for an AccessKey id the emulator does not know is refused at construction."""
    with pytest.raises(ValueError, match="access_keys"):
        Emulator(access_keys={KEY_ID: SECRET}, sts_tokens={"STS.other": "tok"})
    with pytest.raises(ValueError, match="non-empty"):
        Emulator(access_keys={KEY_ID: SECRET}, sts_tokens={KEY_ID: " "})


def test_any_signed_token_passes_by_default(emu: Emulator) -> None:
    """Without security_tokens, any correctly signed STS token is accepted."""
    assert send(client_for(emu, security_token="whatever")).response_code == "OK"


def test_qps_limit_throttles_with_retry_after() -> None:
    """Beyond qps per second: 400 Throttling.User with x-acs-retry-after; later it passes."""
    start, now = time.time(), [0.0]

    def clock() -> float:
        return start + now[0]

    with Emulator(access_keys={KEY_ID: SECRET, "other": "s"}, qps=2, clock=clock) as emu:
        client = client_for(emu)
        assert send(client).response_code == "OK"
        now[0] += 0.25
        assert send(client).response_code == "OK"
        with pytest.raises(ThrottlingException) as caught:
            send(client)
        assert (caught.value.code, caught.value.status_code) == ("Throttling.User", 400)
        assert caught.value.retry_after == 750
        assert send(client_for(emu, access_key_id="other", access_key_secret="s"))
        now[0] += 0.75
        assert send(client).response_code == "OK"
        assert len(emu.messages) == 4


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "America/Los_Angeles", "Pacific/Kiritimati"])
def test_timestamp_window_is_utc_whatever_the_process_zone(zone: str) -> None:
    """With TZ set, x-acs-date is still read as UTC: SDK requests pass, the window holds."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        assert time.timezone != 0 or time.altzone != 0
        assert parse_acs_date("2024-01-02T03:04:05Z") == 1704164645
        for skew, ok in ((14 * 60, True), (16 * 60, False)):
            skewed = lambda s=skew: time.time() + s  # noqa: E731
            with Emulator(access_keys={KEY_ID: SECRET}, clock=skewed) as emu:
                if ok:
                    assert send(client_for(emu)).response_code == "OK"
                else:
                    assert gateway_error(lambda e=emu: send(client_for(e))) == (
                        "InvalidTimeStamp.Expired", 400
                    )
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()


# -- 3. lifecycle ----------------------------------------------------------------------------


def test_set_delivery_holds_fails_and_releases(emu: Emulator) -> None:
    """set_delivery makes QueryMessage report sending, then failed with a code, then sent."""
    client = client_for(emu)
    held = send(client, to=HK).message_id
    other = send(client, to=SG).message_id
    emu.set_delivery(HK, "sending")
    body = query(client, held)
    assert (body.status, body.error_code, body.receive_date) == ("3", None, None)
    assert query(client, other).status == "1"
    emu.set_delivery(HK, "failed", error_code="IDD:UNKNOWN_SUBSCRIBER", description="no such")
    body = query(client, held)
    assert (body.status, body.error_code, body.error_description) == (
        "2", "IDD:UNKNOWN_SUBSCRIBER", "no such"
    )
    emu.set_delivery(None, "failed")
    assert query(client, other).error_code == "UNDELIVERED"
    emu.set_delivery(HK, "sent")
    assert query(client, held).status == "1"
    assert emu.delivery_status(held) == "sent"
    with pytest.raises(ValueError, match="status"):
        emu.set_delivery(HK, "lost")


# -- 4. faults -------------------------------------------------------------------------------


@pytest.mark.parametrize("magic", MAGIC_NUMBERS, ids=lambda m: m.to)
def test_magic_numbers_behave_as_documented(magic: Any) -> None:
    """Each magic number gives the HTTP status, code and delivery state its table row says."""
    with Emulator(access_keys={KEY_ID: SECRET}) as emu:
        client = client_for(emu, read_timeout=300)
        if magic.http_status is None:
            with pytest.raises(UnretryableException):
                send(client, to=magic.to)
            assert emu.messages == []
        elif magic.http_status == 200:
            body = send(client, to=magic.to)
            assert body.response_code == magic.code
            if magic.code == "OK":
                assert query(client, body.message_id).status == {
                    "sent": "1", "failed": "2", "sending": "3"
                }[magic.delivery]
            elif magic.code == "SYSTEM_ERROR":
                assert send(client, to=magic.to).response_code == "OK"
                assert send(client, to=magic.to).response_code == "SYSTEM_ERROR"
        else:
            with pytest.raises((ClientException, ServerException, ThrottlingException)) as caught:
                send(client, to=magic.to)
            error: Any = caught.value
            assert (error.code, error.status_code) == (magic.code, magic.http_status)
            if magic.code == "Throttling.User":
                assert isinstance(error, ThrottlingException) and error.retry_after == 1000
        assert emu.requests[0].to == magic.to


def test_magic_numbers_table_is_consistent() -> None:
    """The table has unique, valid-looking numbers in the +44 7700 900 drama range."""
    numbers = [magic.to for magic in MAGIC_NUMBERS]
    assert len(set(numbers)) == len(numbers) >= 8
    assert all(n.startswith("4477009009") and len(n) == 12 for n in numbers)


def _chaos_codes(seed: int) -> list[str]:
    with Emulator(access_keys={KEY_ID: SECRET}) as emu:
        emu.chaos(seed=seed, drop=0.1, http_503=0.2, system_error=0.2, delay=(0.1, 0.0))
        client = client_for(emu)
        for _ in range(60):
            with contextlib.suppress(ServerException, UnretryableException):
                send(client)
        return [str(r.code) for r in emu.requests]


def test_chaos_is_reproducible_and_mixes_faults() -> None:
    """The same seed gives the same fault sequence; each fault kind shows up."""
    first, second = _chaos_codes(7), _chaos_codes(7)
    assert first == second
    assert {"OK", "SYSTEM_ERROR", "ServiceUnavailable", "None"} <= set(first)
    assert 10 < first.count("OK") < 50
    assert _chaos_codes(8) != first


def test_chaos_off_and_validation(emu: Emulator) -> None:
    """emu.chaos() with no rates turns it off; rates outside [0,1] or summing over 1 fail."""
    emu.chaos(seed=1, http_500=1.0)
    with pytest.raises(ServerException):
        send(client_for(emu))
    emu.chaos()
    assert send(client_for(emu)).response_code == "OK"
    with pytest.raises(ValueError):
        emu.chaos(drop=0.7, http_503=0.7)
    with pytest.raises(ValueError):
        emu.chaos(drop=1.5)


# -- 5. inspection ---------------------------------------------------------------------------


def _get(url: str) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as response:
        return json.loads(response.read())


def test_admin_paths_serve_records_as_json(emu: Emulator) -> None:
    """GET /_emulator/messages and /requests return JSON; secrets are redacted, no recording."""
    send(client_for(emu, security_token="tok-secret"), to=SG, message="hi there")
    messages = _get(emu.admin_url + "messages")["messages"]
    assert [(m["to"], m["message"], m["action"]) for m in messages] == [
        (SG, "hi there", "SendMessageToGlobe")
    ]
    requests = _get(emu.admin_url + "requests")["requests"]
    assert requests[0]["headers"]["authorization"] == "<redacted>"
    assert requests[0]["headers"]["x-acs-security-token"] == "<redacted>"
    assert (requests[0]["code"], requests[0]["query"]["To"]) == ("OK", SG)
    assert _get(emu.admin_url + "conversions") == {"conversions": []}
    assert len(emu.requests) == 1
    with pytest.raises(urllib.error.HTTPError) as caught:
        _get(emu.admin_url + "nothing")
    assert caught.value.code == 404
