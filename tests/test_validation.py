"""Validation before the network: bad input raises InvalidRequest and nothing is sent."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import NUMBER, TEXT, ServiceFactory
from globesms import InvalidRecipient, InvalidRequest
from globesms.emulator import Emulator


@pytest.mark.parametrize(
    "to",
    ["", "1234567", "+1234567890123456", "+44 7700 9OO123", "+44.7700.900123", "0044 7700 900123",
     "+86 138 0013 8000", "8613800138000", 447700900123, None],
    ids=["empty", "7-digits", "16-digits", "letters", "dots", "00-prefix", "mainland-plus",
         "mainland", "int", "none"],
)
def test_bad_numbers_raise_invalid_recipient(
    emulator: Emulator, make_service: ServiceFactory, to: Any
) -> None:
    """Numbers that are not 8-15 digits with a real country code never reach the network."""
    with pytest.raises(InvalidRecipient):
        make_service().send(to, TEXT)
    assert emulator.requests == []


def test_mainland_number_message_says_why(make_service: ServiceFactory) -> None:
    """A +86 number is refused with a message saying this API cannot reach it."""
    with pytest.raises(InvalidRecipient, match="Chinese mainland") as caught:
        make_service().send("+86 138 0013 8000", TEXT)
    assert "13800138000" not in str(caught.value)


@pytest.mark.parametrize("to", ["+44 (7700) 900-123", "+852 1234 5678", "[65] 9123 4567"])
def test_formatting_characters_are_accepted(
    emulator: Emulator, make_service: ServiceFactory, to: str
) -> None:
    """Plus, spaces, dashes and brackets are stripped before sending."""
    make_service().send(to, TEXT)
    [message] = emulator.messages
    assert message.to.isdigit()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"message": ""}, "empty"),
        ({"message": " \n\t "}, "empty"),
        ({"message": "x" * 1601}, "1601 characters"),
        ({"message": b"bytes"}, "must be a string"),
        ({"message": "caf\udce9"}, "not valid Unicode"),
        ({"task_id": "t\udcff"}, "task_id"),
        ({"sender": "Acme-Corp"}, "letters and digits"),
        ({"sender": "AcmeCorpLtd1"}, "11 characters"),
        ({"sender": "1234567890123456"}, "15 digits"),
        ({"sender": ""}, "letters and digits"),
        ({"sender": 123}, "must be a string"),
        ({"message_type": "otp"}, "OTP, NOTIFY or MKT"),
        ({"message_type": "PROMO"}, "OTP, NOTIFY or MKT"),
        ({"task_id": "t" * 256}, "task_id"),
        ({"task_id": ""}, "task_id"),
        ({"validity_period": 0}, "validity_period"),
        ({"validity_period": -5}, "validity_period"),
        ({"validity_period": 1.5}, "validity_period"),
        ({"validity_period": True}, "validity_period"),
    ],
)
def test_bad_arguments_raise_invalid_request(
    emulator: Emulator, make_service: ServiceFactory, kwargs: dict[str, Any], match: str
) -> None:
    """Each bad argument gets a clear InvalidRequest naming the fix; nothing is sent."""
    message = kwargs.pop("message", TEXT)
    with pytest.raises(InvalidRequest, match=match) as caught:
        make_service().send(NUMBER, message, **kwargs)
    assert not isinstance(caught.value, InvalidRecipient)
    assert caught.value.retryable is False
    assert emulator.requests == []


def test_limits_at_the_boundary_are_accepted(
    emulator: Emulator, make_service: ServiceFactory
) -> None:
    """1,600 characters, an 11-character alphanumeric and a 15-digit sender are fine."""
    service = make_service()
    service.send(NUMBER, "x" * 1600, sender="AcmeCorpLtd", task_id="t" * 255)
    service.send(NUMBER, TEXT, sender="123456789012345")
    assert len(emulator.messages) == 2


def test_max_message_length_is_configurable(
    emulator: Emulator, make_service: ServiceFactory
) -> None:
    """max_message_length lowers the bound."""
    with pytest.raises(InvalidRequest, match="limit is 20"):
        make_service(max_message_length=20).send(NUMBER, "x" * 21)
    assert emulator.requests == []
