"""Validation before the network: bad input raises InvalidRequest and nothing is sent."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from globesms import InvalidRecipient, InvalidRequest
from globesms._validate import _country_code, mask_number, parse_recipient, validate
from globesms.emulator import Emulator
from support import DIGITS, NUMBER, TEXT, ServiceFactory


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


def _in_script(text: str, zero: int) -> str:
    """``text`` with its ASCII digits written in the script whose digit zero is ``zero``."""
    return "".join(chr(zero + int(ch)) if ch.isdigit() else ch for ch in text)


def _invalid_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.__dict__ for r in caplog.records if r.__dict__.get("event") == "sms.invalid"]


@pytest.mark.parametrize(
    "to",
    ["07700 900123", "0207 946 0958", "0612345678", "01234 567890", "+0 7700 900123",
     "0 44 7700 900123"],
)
def test_trunk_prefix_is_refused_with_the_international_form(
    emulator: Emulator, make_service: ServiceFactory, caplog: pytest.LogCaptureFixture, to: str
) -> None:
    """A leading 0 (after an optional +) is refused unsent, with the international form."""
    caplog.set_level(logging.WARNING)
    with pytest.raises(InvalidRecipient) as caught:
        make_service().send(to, TEXT)
    assert caught.value.code == "InvalidTo"
    assert "'+44 7700 900123'" in caught.value.hint
    assert "trunk prefix" in caught.value.hint
    assert emulator.requests == []
    [record] = _invalid_records(caplog)
    assert record["to"] == "<invalid>"


@pytest.mark.parametrize(
    ("to", "form"),
    [("001 212 555 0123", "+1****0123"), ("0044 7700 900123", "+44****0123"),
     ("00 999 1234 5678", None)],
)
def test_international_call_prefix_is_refused_with_the_plus_form(
    emulator: Emulator, make_service: ServiceFactory, to: str, form: str | None
) -> None:
    """A leading 00 is refused, with the masked + form when the rest has a real calling code."""
    with pytest.raises(InvalidRecipient, match="international call prefix 00") as caught:
        make_service().send(to, TEXT)
    if form is not None:
        assert form in caught.value.hint
    assert to.replace(" ", "")[2:] not in str(caught.value)
    assert emulator.requests == []


def test_bracketed_trunk_zero_after_country_code_is_refused(
    emulator: Emulator, make_service: ServiceFactory
) -> None:
    """'+44 (0)7700 900123' would be sent as 4407700900123: it is refused with the fix."""
    with pytest.raises(InvalidRecipient, match=r"\(0\)"):
        make_service().send("+44 (0)7700 900123", TEXT)
    assert emulator.requests == []


def test_country_code_comes_from_calling_code_data() -> None:
    """Only real calling codes are read, as written: 1, 44, 852, never 0, 07 or 061."""
    assert parse_recipient("+852 1234 5678").country_code == 852
    assert parse_recipient("+1 212 555 0123").country_code == 1
    assert _country_code("0612345678") is None
    assert _country_code("07700900123") is None
    assert _country_code("999123456") is None  # 999 is not assigned


@pytest.mark.parametrize(
    "to",
    ["\u00b2" * 9, "".join(chr(0x2460 + i) for i in range(9)), "+\u00b244 7700 900123",
     "+44 7700 900" + _in_script("12", 0x0660) + "\u00b3", "+44\u00a07700900123"],
    ids=["superscripts", "circled", "superscript-in-code", "mixed-superscript", "nbsp"],
)
def test_non_decimal_characters_are_refused_without_crashing(
    emulator: Emulator, make_service: ServiceFactory, caplog: pytest.LogCaptureFixture, to: str
) -> None:
    """Superscripts, circled digits and the like are InvalidRecipient logged as <invalid>."""
    caplog.set_level(logging.WARNING)
    with pytest.raises(InvalidRecipient):
        make_service().send(to, TEXT)
    assert emulator.requests == []
    assert [r["to"] for r in _invalid_records(caplog)] == ["<invalid>"]


@pytest.mark.parametrize(
    "to",
    [_in_script(NUMBER, 0xFF10), _in_script(NUMBER, 0x0660), _in_script(NUMBER, 0x06F0),
     "+44 " + _in_script("7700 900123", 0x0966)],
    ids=["fullwidth", "arabic-indic", "extended-arabic-indic", "devanagari"],
)
def test_decimal_digits_of_other_scripts_are_normalised(
    emulator: Emulator, make_service: ServiceFactory, caplog: pytest.LogCaptureFixture, to: str
) -> None:
    """Decimal digits of any script are sent, masked and logged as ASCII digits."""
    caplog.set_level(logging.INFO)
    receipt = make_service().send(to, TEXT)
    [message] = emulator.messages
    assert message.to == DIGITS
    assert [r.__dict__["to"] for r in caplog.records if r.__dict__.get("event")] == [
        "+44****0123"]
    assert mask_number(to) == "+44****0123"
    assert "+44****0123" in repr(receipt)


def test_masking_reads_numbers_as_validation_does() -> None:
    """mask_number never shows a country code that validation would not find."""
    for to in ["07700 900123", "0612345678", "+0 7700 900123", "\u00b2" * 9, "\u2460" * 9]:
        assert mask_number(to) == "<invalid>", to
    assert mask_number(_in_script(NUMBER, 0xFF10)) == "+44****0123"


class _Unequal:
    """An argument whose comparisons raise, like a numpy array's truth value."""

    def __eq__(self, other: object) -> bool:
        raise TypeError("no comparison")

    __hash__ = None  # type: ignore[assignment]


def test_message_type_of_any_type_is_invalid_request(
    emulator: Emulator, make_service: ServiceFactory
) -> None:
    """A message_type that is not a string is InvalidRequest, not the TypeError it raises."""
    with pytest.raises(InvalidRequest, match="message_type"):
        make_service().send(NUMBER, TEXT, message_type=_Unequal())
    assert emulator.requests == []


_OPTIONS: dict[str, Any] = {"sender": None, "message_type": None, "task_id": None,
                            "validity_period": None, "max_message_length": 1600}


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f"])
def test_control_characters_are_refused(char: str) -> None:
    """A NUL, bell, escape or DEL in a message is refused, naming the code point, not the text."""
    with pytest.raises(InvalidRequest) as caught:
        validate(NUMBER, f"Your code{char} is 1", **_OPTIONS)
    assert f"U+{ord(char):04X}" in str(caught.value)
    assert "Your code" not in str(caught.value)


@pytest.mark.parametrize("text", ["line one\nline two", "a\tb", "a\r\nb", "form\ffeed"])
def test_line_breaks_tabs_and_form_feed_are_allowed(text: str) -> None:
    """Tab, line feed, carriage return and form feed (a GSM-7 extension character) are fine."""
    assert validate(NUMBER, text, **_OPTIONS).message == text
