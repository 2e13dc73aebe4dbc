"""Every operation and every gateway check over HTTPS, on the SDK's sync and async paths."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from alibabacloud_dysmsapi20180501 import models
from alibabacloud_dysmsapi20180501.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_util.models import RuntimeOptions

from globesms.emulator import Emulator

KEY_ID = "tlsKeyId"
SECRET = "tlsSecret-456"
RT = RuntimeOptions()


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(access_keys={KEY_ID: SECRET}, tls=True) as running:
        yield running


def _client(emu: Emulator, key_id: str = KEY_ID, secret: str = SECRET) -> Client:
    return Client(Config(access_key_id=key_id, access_key_secret=secret, endpoint=emu.endpoint,
                         protocol="https", ca=emu.ca_file))


# (operation method, request) for each of the six operations.
OPERATIONS: dict[str, tuple[str, Callable[[], Any]]] = {
    "SendMessageToGlobe": ("send_message_to_globe", lambda: models.SendMessageToGlobeRequest(
        to="85212345678", message="hello € 😀")),
    "BatchSendMessageToGlobe": ("batch_send_message_to_globe",
                                lambda: models.BatchSendMessageToGlobeRequest(
                                    to=json.dumps(["85212345678", "6591234567"]),
                                    message=json.dumps(["a", "b"]), type="NOTIFY")),
    "SendMessageWithTemplate": ("send_message_with_template",
                                lambda: models.SendMessageWithTemplateRequest(
                                    to="8613800138000", from_="Acme", template_code="SMS_1",
                                    template_param=json.dumps({"code": "1234"}))),
    "QueryMessage": ("query_message", lambda: models.QueryMessageRequest(message_id="none")),
    "SmsConversion": ("sms_conversion", lambda: models.SmsConversionRequest(
        delivered=True, to="85212345678")),
    "ConversionData": ("conversion_data", lambda: models.ConversionDataRequest(
        conversion_rate="0.5")),
}
EXPECTED_CODE = {"QueryMessage": "DATA_NOT_EXIST"}


def _call(client: Client, operation: str, path: str) -> Any:
    method, build = OPERATIONS[operation]
    if path == "sync":
        return getattr(client, f"{method}_with_options")(build(), RT)
    return asyncio.run(getattr(client, f"{method}_with_options_async")(build(), RT))


@pytest.mark.parametrize("path", ["sync", "async"])
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_operation_over_https(emu: Emulator, operation: str, path: str) -> None:
    """Each operation answers over HTTPS with its documented code, on both SDK paths."""
    response = _call(_client(emu), operation, path)
    assert response.status_code == 200
    assert response.body.response_code == EXPECTED_CODE.get(operation, "OK")
    assert response.body.request_id


@pytest.mark.parametrize("path", ["sync", "async"])
@pytest.mark.parametrize(
    ("key_id", "secret", "code", "status"),
    [("nobody", SECRET, "InvalidAccessKeyId.NotFound", 404),
     (KEY_ID, "wrong", "SignatureDoesNotMatch", 400)],
    ids=["unknown-key", "wrong-secret"],
)
def test_gateway_checks_over_https(
    emu: Emulator, path: str, key_id: str, secret: str, code: str, status: int
) -> None:
    """Unknown keys and wrong secrets get the gateway's code and status over HTTPS too."""
    before = len(emu.messages)
    with pytest.raises(ClientException) as caught:
        _call(_client(emu, key_id, secret), "SendMessageToGlobe", path)
    assert (caught.value.code, caught.value.status_code) == (code, status)
    assert len(emu.messages) == before


def _replay_over_https(emu: Emulator, target: str, headers: dict[str, str]) -> tuple[int, str]:
    import http.client
    import ssl

    context = ssl.create_default_context(cafile=emu.ca_file)
    host, port = emu.endpoint.rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=5)
    try:
        kept = {k: v for k, v in headers.items() if k not in ("content-length", "host")}
        conn.putrequest("POST", target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("host", headers["host"])
        for name, value in kept.items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, json.loads(response.read())["Code"]
    finally:
        conn.close()


def test_replayed_nonce_and_tampered_query_over_https(emu: Emulator) -> None:
    """Over HTTPS, a replayed request gets SignatureNonceUsed and a tampered one
    SignatureDoesNotMatch, and neither is stored."""
    _call(_client(emu), "SendMessageToGlobe", "sync")
    recorded = emu.requests[-1]
    stored = len(emu.messages)
    assert _replay_over_https(emu, recorded.target, recorded.headers) == (
        400, "SignatureNonceUsed")
    tampered = recorded.target.replace("To=85212345678", "To=85212345679")
    assert tampered != recorded.target
    assert _replay_over_https(emu, tampered, recorded.headers) == (400, "SignatureDoesNotMatch")
    assert len(emu.messages) == stored


@pytest.mark.parametrize("path", ["sync", "async"])
@pytest.mark.parametrize("skew", [-16 * 60, 16 * 60], ids=["behind", "ahead"])
def test_expired_timestamp_over_https(path: str, skew: int) -> None:
    """A request more than 15 minutes off the gateway's clock gets InvalidTimeStamp.Expired."""
    import time

    with Emulator(access_keys={KEY_ID: SECRET}, tls=True,
                  clock=lambda: time.time() + skew) as skewed:
        with pytest.raises(ClientException) as caught:
            _call(_client(skewed), "SendMessageToGlobe", path)
        assert (caught.value.code, caught.value.status_code) == ("InvalidTimeStamp.Expired", 400)
        assert skewed.messages == []
