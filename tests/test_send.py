"""Sending through the real SDK to the emulator: receipts and provider answers."""

from __future__ import annotations

import pickle

import pytest

from globesms import (
    AccountError,
    AuthError,
    InvalidRecipient,
    MessageRejected,
    SendReceipt,
    SmsError,
    Throttled,
)
from globesms.emulator import Emulator, HttpError, Reply
from support import DIGITS, KEY_ID, NUMBER, TEXT, ServiceFactory


def test_send_returns_receipt_from_accepted_message(
    emulator: Emulator, make_service: ServiceFactory
) -> None:
    """A valid send reaches the provider once, signed, and returns its receipt fields."""
    service = make_service()
    receipt = service.send(NUMBER, TEXT, sender="Acme", message_type="OTP", task_id="t-1",
                           validity_period=300)

    assert isinstance(receipt, SendReceipt)
    [stored] = emulator.messages
    assert receipt.message_id == stored.message_id
    assert receipt.request_id == stored.request_id
    assert receipt.to == DIGITS
    assert receipt.segments == stored.segments == 1
    assert receipt.sender == "Acme"
    assert receipt.attempts == 1
    assert receipt.country == stored.country
    assert (stored.to, stored.message, stored.sender) == (DIGITS, TEXT, "Acme")
    assert (stored.message_type, stored.task_id, stored.validity_period) == ("OTP", "t-1", 300)
    [request] = emulator.requests
    assert request.headers["authorization"].startswith(f"ACS3-HMAC-SHA256 Credential={KEY_ID},")


def test_settings_sender_and_type_apply_when_not_given(
    emulator: Emulator, make_service: ServiceFactory
) -> None:
    """Default sender and message type come from settings; call arguments override them."""
    service = make_service(sender="Default1", message_type="NOTIFY")
    service.send(NUMBER, TEXT)
    service.send(NUMBER, TEXT, sender="Other", message_type="OTP")
    first, second = emulator.messages
    assert (first.sender, first.message_type) == ("Default1", "NOTIFY")
    assert (second.sender, second.message_type) == ("Other", "OTP")


def test_receipt_repr_masks_the_number(make_service: ServiceFactory) -> None:
    """The receipt's repr shows the country code and last four digits only."""
    receipt = make_service().send(NUMBER, TEXT)
    assert DIGITS not in repr(receipt)
    assert "+44****0123" in repr(receipt)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("MOBILE_NUMBER_ILLEGAL", InvalidRecipient),
        ("INVALID_SENDERID", MessageRejected),
        ("AMOUNT_NOT_ENOUGH", AccountError),
        ("RAM_PERMISSION_DENY", AuthError),
        ("isv.BUSINESS_LIMIT_DAY", Throttled),
        ("SOMETHING_NEW", SmsError),
    ],
)
def test_business_codes_raise_their_class(
    emulator: Emulator, make_service: ServiceFactory, code: str, expected: type[SmsError]
) -> None:
    """An HTTP 200 answer with a non-OK ResponseCode raises its mapped class, code kept."""
    emulator.script(DIGITS, Reply(code))
    with pytest.raises(expected) as caught:
        make_service().send(NUMBER, TEXT)
    error = caught.value
    assert type(error) is expected
    assert error.code == code
    assert error.http_status == 200
    assert error.request_id
    assert str(error).startswith(f"[{error.request_id}] {code}: ")
    assert emulator.messages == []


def test_unknown_code_is_root_class_and_not_retried(
    emulator: Emulator, make_service: ServiceFactory
) -> None:
    """An unknown code maps to SmsError, not retryable, after exactly one request."""
    emulator.script(DIGITS, Reply("BRAND_NEW_CODE"))
    with pytest.raises(SmsError) as caught:
        make_service().send(NUMBER, TEXT)
    assert type(caught.value) is SmsError
    assert caught.value.retryable is False
    assert caught.value.attempts == 1
    assert len(emulator.requests) == 1


def test_wrong_secret_is_auth_error(emulator: Emulator, make_service: ServiceFactory) -> None:
    """A wrong AccessKey secret gets the gateway's SignatureDoesNotMatch as AuthError."""
    with pytest.raises(AuthError) as caught:
        make_service(secret="not-the-secret").send(NUMBER, TEXT)
    assert caught.value.code == "SignatureDoesNotMatch"
    assert caught.value.http_status == 400
    assert caught.value.retryable is False
    assert len(emulator.requests) == 1
    assert emulator.messages == []


def test_unknown_key_is_auth_error(emulator: Emulator, make_service: ServiceFactory) -> None:
    """An unknown AccessKey ID gets InvalidAccessKeyId.NotFound as AuthError."""
    with pytest.raises(AuthError) as caught:
        make_service(key_id="nobody").send(NUMBER, TEXT)
    assert caught.value.code == "InvalidAccessKeyId.NotFound"
    assert caught.value.http_status == 404


def test_gateway_code_family_maps_missing_parameter(
    emulator: Emulator, make_service: ServiceFactory
) -> None:
    """A Missing<Name> gateway code maps through its family to InvalidRequest."""
    emulator.script(DIGITS, HttpError(400, "MissingTo", "To is mandatory"))
    with pytest.raises(SmsError) as caught:
        make_service().send(NUMBER, TEXT)
    assert type(caught.value).__name__ == "InvalidRequest"
    assert caught.value.code == "MissingTo"


def test_errors_survive_pickling(emulator: Emulator, make_service: ServiceFactory) -> None:
    """Mapped errors pickle with their attributes (task queues re-raise them elsewhere)."""
    emulator.script(DIGITS, Reply("INVALID_SENDERID"))
    with pytest.raises(MessageRejected) as caught:
        make_service().send(NUMBER, TEXT)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is MessageRejected
    assert (copy.code, copy.request_id, copy.attempts) == (
        "INVALID_SENDERID", caught.value.request_id, 1)
    assert str(copy) == str(caught.value)


def test_closed_service_refuses_to_send(make_service: ServiceFactory) -> None:
    """A closed service raises instead of sending."""
    service = make_service()
    with service:
        pass
    with pytest.raises(SmsError, match="closed"):
        service.send(NUMBER, TEXT)


def test_one_service_is_safe_to_share_between_threads(
    emulator: Emulator, make_service: ServiceFactory
) -> None:
    """Concurrent sends from many threads through one service all succeed, each once."""
    from concurrent.futures import ThreadPoolExecutor

    service = make_service()
    numbers = [f"+4477009{index:05d}" for index in range(40)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        receipts = list(pool.map(lambda n: service.send(n, TEXT), numbers))
    assert len({r.message_id for r in receipts}) == 40
    assert sorted(m.to for m in emulator.messages) == sorted(n[1:] for n in numbers)
    assert all(r.attempts == 1 for r in receipts)


def test_injected_sdk_client_is_used(emulator: Emulator) -> None:
    """A caller-built SDK client is used as is, with globesms validation and mapping around it."""
    from alibabacloud_dysmsapi20180501.client import Client
    from alibabacloud_tea_openapi.models import Config

    from globesms import Settings, SmsService
    from support import KEY_SECRET

    client = Client(Config(access_key_id=KEY_ID, access_key_secret=KEY_SECRET,
                           endpoint=emulator.endpoint, protocol="http"))
    service = SmsService(Settings(endpoint=emulator.endpoint, protocol="http"), client=client)
    receipt = service.send(NUMBER, TEXT)
    assert [m.message_id for m in emulator.messages] == [receipt.message_id]
    with pytest.raises(InvalidRecipient):
        service.send("12", TEXT)
    assert len(emulator.requests) == 1
