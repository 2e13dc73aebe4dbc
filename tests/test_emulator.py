"""The loopback emulator, driven by the official Alibaba Cloud SDK over real HTTP(S)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import json
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import pytest
from alibabacloud_dysmsapi20180501 import models
from alibabacloud_dysmsapi20180501.client import Client
from alibabacloud_tea_openapi.exceptions import (
    ClientException,
    ServerException,
    ThrottlingException,
)
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_openapi.utils import Utils
from alibabacloud_tea_openapi.utils_models import OpenApiRequest, Params
from alibabacloud_tea_util.models import RuntimeOptions
from darabonba.request import DaraRequest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from Tea.exceptions import UnretryableException

import globesms.emulator as emulator_api
from globesms.emulator import (
    Accept,
    AcceptedMessage,
    Delay,
    Drop,
    Emulator,
    HttpError,
    RecordedRequest,
    Reply,
)
from globesms.emulator._segments import GSM7_BASIC, GSM7_EXTENSION, count_segments

KEY_ID = "testKeyId"
SECRET = "testSecret"
HK = "85212345678"
SG = "6591234567"
PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "DEBUG",
)


# -- fixtures and helpers ---------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_proxy_or_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK routes even loopback calls through proxy variables and prints with DEBUG."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(access_keys={KEY_ID: SECRET}) as running:
        yield running


def make_client(
    emu: Emulator,
    *,
    key_id: str = KEY_ID,
    secret: str = SECRET,
    **config: Any,
) -> Client:
    config.setdefault("protocol", emu.protocol)
    return Client(
        Config(
            access_key_id=key_id,
            access_key_secret=secret,
            endpoint=emu.endpoint,
            region_id="ap-southeast-1",
            **config,
        )
    )


def send(
    client: Client,
    to: str | None = HK,
    message: str | None = "hello",
    runtime: RuntimeOptions | None = None,
    **fields: Any,
) -> Any:
    request = models.SendMessageToGlobeRequest(to=to, message=message, **fields)
    return client.send_message_to_globe_with_options(request, runtime or RuntimeOptions())


def signed_headers(
    emu: Emulator,
    query: dict[str, str],
    *,
    body: bytes = b"",
    secret: str = SECRET,
    declared_body: bytes | None = None,
) -> dict[str, str]:
    """Headers for a raw request, signed by the SDK's own ACS3 signing function."""
    request = DaraRequest()
    request.method = "POST"
    request.pathname = "/"
    request.query = dict(query)
    payload = hashlib.sha256(body if declared_body is None else declared_body).hexdigest()
    request.headers = {
        "host": emu.endpoint,
        "x-acs-version": "2018-05-01",
        "x-acs-action": "SendMessageToGlobe",
        "x-acs-date": Utils.get_timestamp(),
        "x-acs-signature-nonce": Utils.get_nonce(),
        "x-acs-content-sha256": payload,
        "accept": "application/json",
    }
    request.headers["Authorization"] = Utils.get_authorization(
        request, "ACS3-HMAC-SHA256", payload, KEY_ID, secret
    )
    return dict(request.headers)


class RawResponse:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = {name.lower(): value for name, value in response.getheaders()}
        self.raw = response.read()

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.raw)
        return data


def raw_request(
    emu: Emulator,
    query: dict[str, str],
    headers: dict[str, str],
    body: bytes = b"",
    connection: http.client.HTTPConnection | None = None,
) -> RawResponse:
    conn = connection or http.client.HTTPConnection(emu.endpoint, timeout=5)
    try:
        conn.request("POST", "/?" + urlencode(query), body=body, headers=headers)
        return RawResponse(conn.getresponse())
    finally:
        if connection is None:
            conn.close()


def short_id(value: object) -> str:
    """A readable test id for long generated texts: ``'ж'x135``, ``'a'x152+…``."""
    if not isinstance(value, str):
        return str(value)
    if len(value) <= 12:
        return ascii(value)
    return f"{value[:1]!a}x{len(value)}:{hashlib.sha256(value.encode()).hexdigest()[:6]}"


def tuple_address(emu: Emulator) -> tuple[str, int]:
    host, port = emu.endpoint.rsplit(":", 1)
    return host, int(port)


def replay(emu: Emulator, recorded: RecordedRequest, **changes: str) -> RawResponse:
    """Send a byte-for-byte equivalent of a recorded request, optionally with query changes."""
    headers = {k: v for k, v in recorded.headers.items() if k != "content-length"}
    return raw_request(emu, {**recorded.query, **changes}, headers)


# -- acceptance ------------------------------------------------------------------------


def test_accepted_send_returns_all_fields_and_is_stored(emu: Emulator) -> None:
    """A correctly signed send answers OK with every field and lands in emu.messages."""
    response = send(
        make_client(emu),
        to=SG,
        message="Your code is 123456",
        from_="Alicloud321",
        type="OTP",
        task_id="task-1",
        validity_period=600,
        channel_id="3790",
    )
    body = response.body
    assert response.status_code == 200
    assert body.response_code == "OK"
    assert body.response_description
    assert body.to == SG
    assert body.from_ == "Alicloud321"
    assert body.segments == "1"
    assert len(body.message_id) >= 16
    assert re.fullmatch(r"[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}", body.request_id)
    assert body.number_detail.country == "Singapore"
    assert body.number_detail.carrier == "SingTel"
    assert emu.messages == [
        AcceptedMessage(
            to=SG,
            message="Your code is 123456",
            sender="Alicloud321",
            message_type="OTP",
            task_id="task-1",
            validity_period=600,
            channel_id="3790",
            message_id=body.message_id,
            request_id=body.request_id,
            segments=1,
            country="Singapore",
            region=body.number_detail.region,
            carrier="SingTel",
            accepted_at=emu.messages[0].accepted_at,
        )
    ]
    assert abs(emu.messages[0].accepted_at - time.time()) < 60
    [recorded] = emu.requests
    assert (recorded.action, recorded.http_status, recorded.code, recorded.to) == (
        "SendMessageToGlobe",
        200,
        "OK",
        SG,
    )
    assert recorded.query["Message"] == "Your code is 123456"


def test_unknown_carrier_and_optional_fields_absent(emu: Emulator) -> None:
    """A number phonenumbers cannot place on a carrier reports Unknown; absent params are None."""
    body = send(make_client(emu)).body
    assert body.number_detail.to_map() == {
        "Country": "Hong Kong",
        "Region": "Hong Kong",
        "Carrier": "Unknown",
    }
    assert body.from_ is None
    [message] = emu.messages
    assert (message.sender, message.message_type, message.validity_period) == (None, None, None)


def test_async_sdk_path_is_accepted(emu: Emulator) -> None:
    """The aiohttp path (re-quoted URL, extra unsigned headers) verifies too."""
    client = make_client(emu)
    text = "async ~*+/:@!?=&% 100% é 😀"
    request = models.SendMessageToGlobeRequest(to=HK, message=text, from_="Sender")
    response = asyncio.run(
        client.send_message_to_globe_with_options_async(request, RuntimeOptions())
    )
    assert response.body.response_code == "OK"
    assert [m.message for m in emu.messages] == [text]


def test_sts_token_is_accepted_and_recorded(emu: Emulator) -> None:
    """A request signed with an STS token (extra signed x-acs headers) is accepted."""
    response = send(make_client(emu, security_token="sts-token-value"))
    assert response.body.response_code == "OK"
    headers = emu.requests[0].headers
    assert headers["x-acs-security-token"] == "sts-token-value"
    assert headers["x-acs-accesskey-id"] == KEY_ID


def test_long_query_over_64_kib_is_accepted(emu: Emulator) -> None:
    """A message whose encoded query exceeds 64 KiB is accepted and segmented."""
    text = "ж" * 12000  # 6 bytes each once percent-encoded: ~72 KiB of query
    response = send(make_client(emu), message=text)
    assert response.body.response_code == "OK"
    assert response.body.segments == str(-(-12000 // 67))
    assert emu.messages[0].message == text


def test_concurrent_sends_are_all_recorded(emu: Emulator) -> None:
    """Parallel SDK calls are each accepted once, with distinct message ids."""
    client = make_client(emu)
    with ThreadPoolExecutor(max_workers=8) as pool:
        bodies = list(pool.map(lambda i: send(client, message=f"m{i}").body, range(24)))
    assert {b.response_code for b in bodies} == {"OK"}
    assert len({m.message_id for m in emu.messages}) == 24
    assert sorted(m.message for m in emu.messages) == sorted(f"m{i}" for i in range(24))


def test_keep_alive_serves_several_requests_on_one_connection(emu: Emulator) -> None:
    """HTTP/1.1 keep-alive: two requests on one connection are both answered."""
    conn = http.client.HTTPConnection(emu.endpoint, timeout=5)
    try:
        for text in ("one", "two"):
            query = {"To": HK, "Message": text}
            answer = raw_request(emu, query, signed_headers(emu, query), connection=conn)
            assert answer.status == 200
            assert answer.json()["ResponseCode"] == "OK"
    finally:
        conn.close()
    assert [m.message for m in emu.messages] == ["one", "two"]


# -- gateway checks --------------------------------------------------------------------


def test_wrong_secret_is_signature_does_not_match(emu: Emulator) -> None:
    """A wrong AccessKey secret gives ClientException SignatureDoesNotMatch 400, nothing stored."""
    with pytest.raises(ClientException) as caught:
        send(make_client(emu, secret="not-the-secret"))
    assert (caught.value.code, caught.value.status_code) == ("SignatureDoesNotMatch", 400)
    assert caught.value.request_id not in ("", "None")
    assert emu.messages == []
    assert [(r.http_status, r.code) for r in emu.requests] == [(400, "SignatureDoesNotMatch")]


def test_unknown_access_key_id_is_not_found(emu: Emulator) -> None:
    """An unknown AccessKey id gives InvalidAccessKeyId.NotFound 404."""
    with pytest.raises(ClientException) as caught:
        send(make_client(emu, key_id="nobody"))
    assert (caught.value.code, caught.value.status_code) == ("InvalidAccessKeyId.NotFound", 404)
    assert emu.messages == []


def test_replayed_request_is_signature_nonce_used(emu: Emulator) -> None:
    """Re-sending a recorded, validly signed request is rejected as a nonce replay."""
    send(make_client(emu))
    answer = replay(emu, emu.requests[0])
    assert answer.status == 400
    assert answer.json()["Code"] == "SignatureNonceUsed"
    assert len(emu.messages) == 1


def test_tampered_query_value_is_signature_does_not_match(emu: Emulator) -> None:
    """Changing one query value after signing breaks the signature."""
    query = {"To": HK, "Message": "original"}
    headers = signed_headers(emu, query)
    answer = raw_request(emu, {**query, "Message": "tampered"}, headers)
    assert (answer.status, answer.json()["Code"]) == (400, "SignatureDoesNotMatch")
    assert emu.messages == []


def test_body_hash_mismatch_is_signature_does_not_match(emu: Emulator) -> None:
    """A body that differs from the signed x-acs-content-sha256 is rejected."""
    query = {"To": HK, "Message": "hi"}
    headers = signed_headers(emu, query, declared_body=b"")
    answer = raw_request(emu, query, headers, body=b"smuggled")
    assert (answer.status, answer.json()["Code"]) == (400, "SignatureDoesNotMatch")
    assert "x-acs-content-sha256" in answer.json()["Message"]
    assert emu.messages == []


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"authorization": None}, "IncompleteSignature"),
        ({"authorization": "ACS3-HMAC-SHA256 garbage"}, "IncompleteSignature"),
        ({"authorization": "ACS3-HMAC-SM3 Credential=x"}, "InvalidSignatureMethod"),
        ({"x-acs-date": "2026-11-25 12:00:00"}, "InvalidTimeStamp.Format"),
        ({"x-acs-date": "2026-13-45T12:00:00Z"}, "InvalidTimeStamp.Format"),
        ({"x-acs-unsigned-extra": "1"}, "IncompleteSignature"),
    ],
)
def test_malformed_signature_material_is_rejected(
    emu: Emulator, change: dict[str, str | None], code: str
) -> None:
    """Missing or malformed Authorization/x-acs-date headers get the gateway's 400 code."""
    query = {"To": HK, "Message": "hi"}
    headers = {k.lower(): v for k, v in signed_headers(emu, query).items()}
    for name, value in change.items():
        if value is None:
            headers.pop(name)
        else:
            headers[name] = value
    answer = raw_request(emu, query, headers)
    assert (answer.status, answer.json()["Code"]) == (400, code)
    assert emu.requests[-1].code == code


@pytest.mark.parametrize(
    ("skew_s", "accepted"), [(16 * 60, False), (-16 * 60, False), (14 * 60, True)]
)
def test_timestamp_window_is_fifteen_minutes(skew_s: int, accepted: bool) -> None:
    """x-acs-date more than 15 minutes from the emulator clock is InvalidTimeStamp.Expired."""
    with Emulator(access_keys={KEY_ID: SECRET}, clock=lambda: time.time() + skew_s) as emu:
        if accepted:
            assert send(make_client(emu)).body.response_code == "OK"
        else:
            with pytest.raises(ClientException) as caught:
                send(make_client(emu))
            assert (caught.value.code, caught.value.status_code) == (
                "InvalidTimeStamp.Expired",
                400,
            )
        assert len(emu.messages) == int(accepted)


def test_unknown_action_is_invalid_api_not_found(emu: Emulator) -> None:
    """A signed call to an action the emulator does not serve gives InvalidApi.NotFound 404."""
    params = Params(
        action="NoSuchAction",
        version="2018-05-01",
        protocol="HTTP",
        pathname="/",
        method="POST",
        auth_type="AK",
        style="RPC",
        req_body_type="formData",
        body_type="json",
    )
    with pytest.raises(ClientException) as caught:
        make_client(emu).call_api(params, OpenApiRequest(query={"To": HK}), RuntimeOptions())
    assert (caught.value.code, caught.value.status_code) == ("InvalidApi.NotFound", 404)
    assert emu.requests[0].action == "NoSuchAction"


@pytest.mark.parametrize(
    ("fields", "code"),
    [({"to": None}, "MissingTo"), ({"message": None}, "MissingMessage")],
)
def test_missing_required_parameter_is_http_400(
    emu: Emulator, fields: dict[str, None], code: str
) -> None:
    """Omitting To or Message is a gateway error, HTTP 400 Missing<Name>."""
    with pytest.raises(ClientException) as caught:
        send(make_client(emu), **fields)
    assert (caught.value.code, caught.value.status_code) == (code, 400)
    assert emu.messages == []


def test_malformed_http_is_answered_in_json_and_recorded(emu: Emulator) -> None:
    """A request line that is not HTTP gets a JSON 400 and is still recorded."""
    conn = http.client.HTTPConnection(emu.endpoint, timeout=5)
    try:
        conn.connect()
        assert conn.sock is not None
        conn.sock.sendall(b"NOT AN HTTP REQUEST LINE AT ALL\r\n\r\n")
        response = http.client.HTTPResponse(conn.sock)
        response.begin()
        assert response.status == 400
        assert json.loads(response.read())["Code"] == "BadRequest"
    finally:
        conn.close()
    [recorded] = emu.requests
    assert (type(recorded.http_status), recorded.http_status, recorded.code) == (
        int,
        400,
        "BadRequest",
    )


def test_overlong_request_line_is_414_in_json(emu: Emulator) -> None:
    """A request line beyond the 1 MiB limit is answered 414 in JSON and recorded."""
    with socket.create_connection(tuple_address(emu), timeout=5) as sock:
        with contextlib.suppress(ConnectionError):
            sock.sendall(b"POST /?" + b"a" * (1024 * 1024 + 1) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 414
        assert json.loads(response.read())["Code"] == "RequestURITooLong"
    assert [(r.http_status, r.code) for r in emu.requests] == [(414, "RequestURITooLong")]


def test_chunked_body_is_read_and_hashed(emu: Emulator) -> None:
    """A chunked request body is reassembled and checked against x-acs-content-sha256."""
    query = {"To": HK, "Message": "chunked"}
    results = []
    for body in (b"abc", b"abd"):
        headers = signed_headers(emu, query, declared_body=b"abc")
        conn = http.client.HTTPConnection(emu.endpoint, timeout=5)
        try:
            conn.request(
                "POST",
                "/?" + urlencode(query),
                body=iter([body]),
                headers=headers,
                encode_chunked=True,
            )
            results.append(conn.getresponse().status)
        finally:
            conn.close()
    assert results == [200, 400]
    assert [m.message for m in emu.messages] == ["chunked"]


# -- business errors (HTTP 200) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "code"),
    [
        ("+85212345678", "MOBILE_NUMBER_ILLEGAL"),
        ("852-1234-5678", "MOBILE_NUMBER_ILLEGAL"),
        ("8521234", "MOBILE_NUMBER_ILLEGAL"),
        ("8521234567890123", "MOBILE_NUMBER_ILLEGAL"),
        ("99912345678", "MOBILE_NUMBER_ILLEGAL"),
        ("".join(chr(0xFF10 + int(d)) for d in HK), "MOBILE_NUMBER_ILLEGAL"),  # full-width
        ("8613800138000", "NOT_SUPPORTED_COUNTRY"),
    ],
)
def test_bad_recipient_is_business_error(emu: Emulator, to: str, code: str) -> None:
    """Malformed numbers and Chinese mainland numbers are HTTP 200 with a non-OK code."""
    response = send(make_client(emu), to=to)
    assert (response.status_code, response.body.response_code) == (200, code)
    assert emu.messages == []
    assert emu.requests[0].code == code


@pytest.mark.parametrize(
    "fields", [{"type": "PROMO"}, {"type": ""}, {"validity_period": -5}, {"validity_period": 0}]
)
def test_invalid_optional_parameter_is_invalid_parameters(
    emu: Emulator, fields: dict[str, Any]
) -> None:
    """A Type outside OTP/NOTIFY/MKT or a non-positive ValidityPeriod is INVALID_PARAMETERS."""
    response = send(make_client(emu), **fields)
    assert response.body.response_code == "INVALID_PARAMETERS"
    assert emu.messages == []


@pytest.mark.parametrize("message_type", ["OTP", "NOTIFY", "MKT"])
def test_each_message_type_is_accepted(emu: Emulator, message_type: str) -> None:
    """The three documented Type values are accepted and stored."""
    assert send(make_client(emu), type=message_type).body.response_code == "OK"
    assert emu.messages[0].message_type == message_type


# -- scripted outcomes -------------------------------------------------------------------


def test_reply_outcome_answers_http_200_with_that_code(emu: Emulator) -> None:
    """Reply gives HTTP 200 with the scripted ResponseCode and stores nothing."""
    emu.script(HK, Reply("SYSTEM_ERROR", "try later"))
    response = send(make_client(emu))
    assert (response.status_code, response.body.response_code) == (200, "SYSTEM_ERROR")
    assert response.body.response_description == "try later"
    assert emu.messages == []


def test_reply_ok_and_accept_are_normal_handling(emu: Emulator) -> None:
    """Reply("OK") and Accept() both run the normal path, including its validation."""
    emu.script(None, Reply("OK"), Accept(), Accept())
    client = make_client(emu)
    assert send(client).body.response_code == "OK"
    assert send(client).body.response_code == "OK"
    assert send(client, to="8613800138000").body.response_code == "NOT_SUPPORTED_COUNTRY"
    assert len(emu.messages) == 2


def test_http_error_outcomes_map_to_sdk_exceptions(emu: Emulator) -> None:
    """HttpError 503 -> ServerException, 400 Throttling.User -> ClientException (no header)."""
    emu.script(HK, HttpError(503, "ServiceUnavailable", "busy"), HttpError(400, "Throttling.User"))
    client = make_client(emu)
    with pytest.raises(ServerException) as server_error:
        send(client)
    assert (server_error.value.code, server_error.value.status_code) == ("ServiceUnavailable", 503)
    assert "busy" in server_error.value.message
    with pytest.raises(ClientException) as client_error:
        send(client)
    assert (client_error.value.code, client_error.value.status_code) == ("Throttling.User", 400)
    assert emu.messages == []
    assert [r.code for r in emu.requests] == ["ServiceUnavailable", "Throttling.User"]


def test_http_error_default_code_comes_from_status(emu: Emulator) -> None:
    """An HttpError without a code gets a gateway-like one derived from the status."""
    emu.script(HK, HttpError(500), HttpError(504))
    client = make_client(emu)
    for code in ("InternalError", "GatewayTimeout"):
        with pytest.raises(ServerException) as caught:
            send(client)
        assert caught.value.code == code


def test_x_acs_retry_after_becomes_throttling_exception(emu: Emulator) -> None:
    """x-acs-retry-after (ms) makes the SDK raise ThrottlingException with retry_after."""
    emu.script(HK, HttpError(429, "Throttling.User", retry_after_ms=1500))
    with pytest.raises(ThrottlingException) as caught:
        send(make_client(emu))
    assert (caught.value.retry_after, caught.value.code) == (1500, "Throttling.User")
    assert caught.value.status_code == 429


def test_retry_after_seconds_header_is_sent(emu: Emulator) -> None:
    """retry_after_s sends a standard Retry-After header (the SDK ignores it)."""
    emu.script(HK, HttpError(429, "Throttling.User", retry_after_s=2))
    with pytest.raises(ClientException) as caught:
        send(make_client(emu))
    assert caught.value.code == "Throttling.User"
    emu.script(HK, HttpError(429, "Throttling.User", retry_after_s=2))
    query = {"To": HK, "Message": "hi"}
    answer = raw_request(emu, query, signed_headers(emu, query))
    assert (answer.status, answer.headers["retry-after"]) == (429, "2")
    assert "x-acs-retry-after" not in answer.headers


def test_html_error_body_is_unretryable_for_the_sdk(emu: Emulator) -> None:
    """A raw HTML 502 body cannot be parsed by the SDK: UnretryableException."""
    page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    emu.script(None, HttpError(502, body=page, content_type="text/html"))
    with pytest.raises(UnretryableException) as caught:
        send(make_client(emu))
    assert "json" in str(caught.value.inner_exception).lower()
    emu.script(None, HttpError(502, body=page, content_type="text/html"))
    query = {"To": HK, "Message": "hi"}
    answer = raw_request(emu, query, signed_headers(emu, query))
    assert (answer.status, answer.raw.decode(), answer.headers["content-type"]) == (
        502,
        page,
        "text/html",
    )


def test_delay_then_reply_applies_the_follow_up(emu: Emulator) -> None:
    """Delay(then=...) waits, then applies its follow-up outcome."""
    emu.script(HK, Delay(0.01, then=Reply("QPS_LIMIT_CONTROL")), Delay(0.01))
    client = make_client(emu)
    assert send(client).body.response_code == "QPS_LIMIT_CONTROL"
    assert send(client).body.response_code == "OK"
    assert len(emu.messages) == 1


def test_delay_longer_than_read_timeout_times_out_and_close_cuts_it() -> None:
    """A long Delay trips the SDK read timeout; close() ends the delay promptly, storing nothing."""
    emu = Emulator(access_keys={KEY_ID: SECRET}).start()
    try:
        emu.script(HK, Delay(60))
        with pytest.raises(UnretryableException) as caught:
            send(make_client(emu), runtime=RuntimeOptions(read_timeout=200))
        assert "timed out" in str(caught.value.inner_exception).lower()
        [pending] = emu.requests
        assert (pending.http_status, pending.code) == (None, None)
    finally:
        started = time.monotonic()
        emu.close()
    assert time.monotonic() - started < 5
    assert emu.messages == []


@pytest.mark.parametrize("after_read", [True, False])
def test_drop_closes_the_connection_without_answer(emu: Emulator, after_read: bool) -> None:
    """Drop closes the connection: the SDK sees a disconnect; recorded with status None."""
    emu.script(HK, Drop(after_read=after_read))
    client = make_client(emu)
    with pytest.raises(UnretryableException) as caught:
        send(client)
    assert "aborted" in str(caught.value.inner_exception).lower()
    assert [(r.http_status, r.code, r.to) for r in emu.requests] == [(None, None, HK)]
    assert emu.messages == []
    assert send(client).body.response_code == "OK"


def test_drop_before_read_leaves_the_body_unread(emu: Emulator) -> None:
    """Drop(after_read=False) drops before the body is read, so a bad body goes unnoticed."""
    query = {"To": HK, "Message": "hi"}
    emu.script(HK, Drop(after_read=False))
    headers = signed_headers(emu, query, declared_body=b"")
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
        raw_request(emu, query, headers, body=b"unexpected body")
    emu.script(HK, Drop(after_read=True))
    headers = signed_headers(emu, query, declared_body=b"")
    answer = raw_request(emu, query, headers, body=b"unexpected body")
    assert (answer.status, answer.json()["Code"]) == (400, "SignatureDoesNotMatch")
    assert [r.http_status for r in emu.requests] == [None, 400]


def test_scripts_are_consumed_in_order_and_per_recipient(emu: Emulator) -> None:
    """Per-recipient queues come first, in order; others fall back to the global queue."""
    emu.script(HK, Reply("SYSTEM_ERROR"), HttpError(503, "ServiceUnavailable"), Accept())
    emu.script(None, Reply("QPS_LIMIT_CONTROL"))
    client = make_client(emu)
    with pytest.raises(ClientException):
        send(make_client(emu, secret="wrong"))  # rejected: consumes nothing
    assert send(client, to=SG).body.response_code == "QPS_LIMIT_CONTROL"
    assert send(client, to=SG).body.response_code == "OK"
    assert send(client).body.response_code == "SYSTEM_ERROR"
    with pytest.raises(ServerException):
        send(client)
    assert send(client).body.response_code == "OK"
    assert send(client).body.response_code == "OK"
    assert [m.to for m in emu.messages] == [SG, HK, HK]


def test_global_queue_serves_a_recipient_whose_queue_is_empty(emu: Emulator) -> None:
    """Once a recipient's own queue is exhausted, the global queue applies to it too."""
    emu.script(HK, Reply("SYSTEM_ERROR"))
    emu.script(None, Reply("AMOUNT_NOT_ENOUGH"))
    client = make_client(emu)
    assert send(client).body.response_code == "SYSTEM_ERROR"
    assert send(client).body.response_code == "AMOUNT_NOT_ENOUGH"
    assert send(client).body.response_code == "OK"


def test_reset_forgets_messages_requests_scripts_and_nonces(emu: Emulator) -> None:
    """reset() empties the records and queues; a replayed nonce is then accepted again."""
    send(make_client(emu))
    recorded = emu.requests[0]
    emu.script(HK, Reply("SYSTEM_ERROR"))
    emu.reset()
    assert (emu.messages, emu.requests) == ([], [])
    answer = replay(emu, recorded)
    assert (answer.status, answer.json()["ResponseCode"]) == (200, "OK")


# -- outcome and emulator validation ----------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: HttpError(100),
        lambda: HttpError(204),
        lambda: HttpError(503, retry_after_ms=-1),
        lambda: Delay(-1),
        lambda: Delay(float("nan")),
        lambda: Reply(""),
    ],
)
def test_invalid_outcomes_are_refused(build: Callable[[], object]) -> None:
    """Outcomes that cannot be played back raise ValueError when built."""
    with pytest.raises(ValueError):
        build()


def test_script_refuses_non_outcomes(emu: Emulator) -> None:
    """script() accepts only outcome objects."""
    with pytest.raises(TypeError):
        emu.script(HK, "SYSTEM_ERROR")  # type: ignore[arg-type]


def test_lifecycle_errors_and_endpoint() -> None:
    """endpoint needs a started emulator; start twice fails; close is idempotent."""
    emu = Emulator(access_keys={KEY_ID: SECRET})
    with pytest.raises(RuntimeError):
        _ = emu.endpoint
    emu.start()
    try:
        assert re.fullmatch(r"127\.0\.0\.1:\d+", emu.endpoint)
        assert emu.access_keys == {KEY_ID: SECRET}
        assert emu.ca_file is None
        with pytest.raises(RuntimeError):
            emu.start()
    finally:
        emu.close()
        emu.close()
    with pytest.raises(RuntimeError):
        emu.start()


def test_access_keys_is_a_copy(emu: Emulator) -> None:
    """Mutating emu.access_keys does not change which keys the emulator accepts."""
    emu.access_keys["intruder"] = "x"
    with pytest.raises(ClientException) as caught:
        send(make_client(emu, key_id="intruder", secret="x"))
    assert caught.value.code == "InvalidAccessKeyId.NotFound"


def test_public_names() -> None:
    """The package exports exactly its documented, sorted public names."""
    assert emulator_api.__all__ == sorted(
        emulator_api.__all__, key=lambda n: (not n.isupper(), n[0].islower(), n)
    )
    assert set(emulator_api.__all__) == {
        "MAGIC_NUMBERS",
        "Accept",
        "AcceptedMessage",
        "Conversion",
        "ConversionReport",
        "MagicNumber",
        "serve",
        "Delay",
        "Drop",
        "Emulator",
        "HttpError",
        "Outcome",
        "RecordedRequest",
        "Reply",
    }


# -- privacy -----------------------------------------------------------------------------


def test_reprs_hide_message_text_and_credentials(emu: Emulator) -> None:
    """Neither record's repr shows the message text, the Authorization header or the token."""
    send(make_client(emu, security_token="sts-secret-token"), message="code 987654")
    text = repr(emu.messages) + repr(emu.requests) + repr(emu)
    for leaked in ("987654", "Signature=", "sts-secret-token", SECRET, "authorization", HK):
        assert leaked not in text
    assert "Hong Kong" in text


def test_emulator_writes_nothing_to_stdout_or_stderr(
    emu: Emulator, capfd: pytest.CaptureFixture[str]
) -> None:
    """Requests, rejections and faults leave no output (URLs carry numbers and text)."""
    client = make_client(emu)
    send(client, message="secret text")
    with pytest.raises(ClientException):
        send(make_client(emu, secret="wrong"), message="secret text")
    emu.script(HK, Drop())
    with pytest.raises(UnretryableException):
        send(client, message="secret text")
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert len(emu.requests) == 3


# -- TLS ---------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["config", "runtime"])
def test_tls_with_the_emulator_ca_is_trusted(where: str) -> None:
    """With tls=True the SDK trusts emu.ca_file via Config(ca=) or RuntimeOptions(ca=)."""
    with Emulator(access_keys={KEY_ID: SECRET}, tls=True) as emu:
        assert emu.protocol == "https"
        ca_file = emu.ca_file
        assert ca_file is not None and os.path.isfile(ca_file)
        if where == "config":
            client, runtime = make_client(emu, ca=ca_file), RuntimeOptions()
        else:
            client, runtime = make_client(emu), RuntimeOptions(ca=ca_file)
        assert send(client, runtime=runtime).body.response_code == "OK"
        request = models.SendMessageToGlobeRequest(to=HK, message="async over tls")
        response = asyncio.run(client.send_message_to_globe_with_options_async(request, runtime))
        assert response.body.response_code == "OK"
        assert len(emu.messages) == 2
    assert not os.path.exists(ca_file)


def test_tls_without_the_ca_is_refused_by_the_sdk() -> None:
    """An SDK client that does not trust the emulator CA fails the handshake."""
    with Emulator(access_keys={KEY_ID: SECRET}, tls=True) as emu:
        with pytest.raises(UnretryableException) as caught:
            send(make_client(emu))
        assert "certificate" in str(caught.value.inner_exception).lower()
        assert emu.messages == []


def test_tls_without_trustme_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """tls=True without trustme installed raises an ImportError naming the extra."""
    monkeypatch.setitem(sys.modules, "trustme", None)
    with pytest.raises(ImportError, match=r"globesms\[emulator\]"):
        Emulator(access_keys={KEY_ID: SECRET}, tls=True)


# -- segments ----------------------------------------------------------------------------


def test_gsm7_tables_have_their_standard_sizes() -> None:
    """The default alphabet has 127 printable entries and the extension table 10."""
    assert (len(GSM7_BASIC), len(GSM7_EXTENSION)) == (127, 10)
    assert not GSM7_BASIC & GSM7_EXTENSION


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¡ÄÖÑÜ§¿äöñüà" * 3, 1),
        ("€" * 80, 1),
        ("€" * 81, 2),
        ("[]{}\\^~|\f€" * 8, 1),
        ("[]{}\\^~|\f€" * 8 + "a", 2),
        ("a" * 159 + "^", 2),
        ("a" * 152 + "€" + "a" * 152, 3),
        ("ж" * 70, 1),
        ("ж" * 71, 2),
        ("ж" * 134, 2),
        ("ж" * 135, 3),
        ("a" * 69 + "`", 1),
        ("a" * 70 + "`", 2),
        ("😀" * 35, 1),
        ("😀" * 36, 2),
        ("ж" * 69 + "😀", 2),
        ("ж" * 66 + "😀" + "ж" * 66, 3),
        ("😀" * 66, 2),
        ("😀" * 67, 3),
    ],
    ids=short_id,
)
def test_count_segments(text: str, segments: int) -> None:
    """GSM-7 160/153, extension chars count two, UCS-2 70/67 with emoji as two units."""
    assert count_segments(text) == segments


@pytest.mark.parametrize(
    ("text", "segments"),
    [("a" * 160, "1"), ("a" * 161, "2"), ("€" * 81, "2"), ("😀" * 35, "1"), ("😀" * 36, "2")],
    ids=short_id,
)
def test_segments_are_reported_and_stored(emu: Emulator, text: str, segments: str) -> None:
    """The Segments field and the stored message agree with the segment count."""
    assert send(make_client(emu), message=text).body.segments == segments
    assert emu.messages[0].segments == int(segments)


# -- fuzz --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_emu() -> Iterator[Emulator]:
    with Emulator(access_keys={KEY_ID: SECRET}) as running:
        yield running


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(text=st.text(min_size=1, max_size=400), sender=st.none() | st.text(max_size=20))
def test_any_text_and_sender_is_accepted_when_signed(
    shared_emu: Emulator, text: str, sender: str | None
) -> None:
    """Arbitrary Unicode message text and sender IDs survive signing and are stored verbatim."""
    response = send(make_client(shared_emu), message=text, from_=sender)
    assert response.body.response_code == "OK"
    stored = shared_emu.messages[-1]
    assert (stored.message, stored.sender) == (text, sender)
    assert stored.segments == count_segments(text)


def test_derived_gateway_codes_do_not_follow_the_interpreter() -> None:
    """413/414/416/422 keep their codes on every Python (3.13 renamed the status phrases)."""
    from globesms.emulator._gateway import default_code, default_message

    assert [default_code(s) for s in (413, 414, 416, 422)] == [
        "RequestEntityTooLarge", "RequestURITooLong", "RequestedRangeNotSatisfiable",
        "UnprocessableEntity",
    ]
    assert default_message(414) == "Request-URI Too Long"
    assert (default_code(502), default_code(599)) == ("BadGateway", "Http599")
