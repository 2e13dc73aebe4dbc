"""Validation before the network: every check that can fail without asking Alibaba.

A request that fails here raises :class:`InvalidRequest` (or :class:`InvalidRecipient`) and
nothing is sent. Messages name the field and the fix, never the number or the text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import phonenumbers

from ._errors import InvalidRecipient, InvalidRequest

MESSAGE_TYPES = ("OTP", "NOTIFY", "MKT")
MAX_TASK_ID = 255
_NUMBER_NOISE = str.maketrans("", "", "+ -()[]\t")
_MAINLAND = 86
#: Every assigned country calling code, as the digits it is written with, from phonenumbers'
#: metadata (kept current upstream). Codes are prefix-free, 1-3 digits, none starts with 0.
_CALLING_CODES: dict[str, int] = {
    str(code): code for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE
}
_EXAMPLE = "'+44 7700 900123'"
#: Control characters a message may not hold: C0 and DEL, but tab, line feed, form feed (a GSM-7
#: extension character) and carriage return.
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f]")


@dataclass(frozen=True, repr=False)
class Recipient:
    """A recipient number reduced to ASCII digits (country code first), with its masked form."""

    digits: str
    country_code: int

    @property
    def masked(self) -> str:
        """Country code and last four digits: ``+44****0123``."""
        return mask_digits(self.digits, self.country_code)

    def __repr__(self) -> str:
        return f"Recipient({self.masked})"


def mask_digits(digits: str, country_code: int | None) -> str:
    """Mask a digit string, keeping the country code (when known) and the last four digits."""
    if country_code is None or len(digits) < 8:
        return "<invalid>"
    return f"+{country_code}****{digits[-4:]}"


def mask_number(raw: object) -> str:
    """Best-effort mask of anything a caller passed as a number (for logs of rejected input).

    It reads digits exactly as :func:`parse_recipient` does, so a log line never shows a country
    code that validation would not have found.
    """
    if not isinstance(raw, str):
        return "<invalid>"
    digits = _ascii_digits(raw).translate(_NUMBER_NOISE)
    if not (digits.isascii() and digits.isdigit()):
        return "<invalid>"
    return mask_digits(digits, _country_code(digits))


def _ascii_digits(text: str) -> str:
    """``text`` with every decimal digit of another script (fullwidth U+FF14, Arabic-Indic
    U+0664) written as its ASCII digit; anything else, superscripts and circled digits
    included, stays as it is (and fails the digit check)."""
    if text.isascii():
        return text
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in text)


def _country_code(digits: str) -> int | None:
    """The country calling code a digit string starts with, looked up as written."""
    for length in (1, 2, 3):
        code = _CALLING_CODES.get(digits[:length])
        if code is not None:
            return code
    return None


def parse_recipient(to: object, *, mainland: bool = False) -> Recipient:
    """Normalise ``to`` to international ASCII digits or raise :class:`InvalidRecipient`.

    ``mainland=False`` (SendMessageToGlobe) refuses Chinese mainland numbers; ``mainland=True``
    (SendMessageWithTemplate) accepts only them.
    """
    if not isinstance(to, str):
        raise InvalidRecipient(
            f"to must be a string such as {_EXAMPLE}, not {type(to).__name__}",
            code="InvalidTo",
        )
    text = _ascii_digits(to.strip())
    digits = text.translate(_NUMBER_NOISE)
    if not digits.isascii() or not digits.isdigit() or not 8 <= len(digits) <= 15:
        raise InvalidRecipient(
            "to must be an international number of 8-15 digits with its country code, "
            f"e.g. {_EXAMPLE} (only +, spaces, dashes and brackets may be added)",
            code="InvalidTo",
        )
    if digits.startswith("0"):
        raise InvalidRecipient(_leading_zero_hint(digits), code="InvalidTo")
    if "(0)" in text.replace(" ", ""):
        raise InvalidRecipient(
            "to has a trunk prefix '(0)' after the country code, which is only dialled inside "
            f"the country; remove it, e.g. '+44 (0)7700 900123' is {_EXAMPLE}",
            code="InvalidTo",
        )
    country_code = _country_code(digits)
    if country_code is None:
        raise InvalidRecipient(
            "to does not start with a known country calling code; write it in international "
            f"format, e.g. {_EXAMPLE}",
            code="InvalidTo",
        )
    if mainland and country_code != _MAINLAND:
        raise InvalidRecipient(
            "send_template reaches Chinese mainland (+86) numbers only; use send for this number",
            code="NotMainlandNumber",
        )
    if not mainland and country_code == _MAINLAND:
        raise InvalidRecipient(
            "send cannot reach Chinese mainland (+86) numbers; use send_template with an "
            "approved template and signature for them",
            code="MainlandNumber",
        )
    return Recipient(digits, country_code)


def _leading_zero_hint(digits: str) -> str:
    """The fix for a number that starts with 0: an international call prefix or a trunk prefix.

    No country is guessed for a trunk 0: the same national number is valid in many numbering
    plans (phonenumbers finds ``0612345678`` valid in 26 countries), so the hint shows the
    rewrite on an example instead. The hint never holds the caller's digits beyond the masked
    form ``+44****0123``.
    """
    if digits.startswith("00"):
        rest = digits[2:]
        code = _country_code(rest)
        if code is not None and len(rest) >= 8:
            return (
                "to starts with the international call prefix 00; write + instead: "
                f"{mask_digits(rest, code)} (international format, e.g. {_EXAMPLE})"
            )
        return (
            "to starts with the international call prefix 00; write + and the country code "
            f"instead, e.g. {_EXAMPLE}"
        )
    return (
        "to starts with 0, a trunk prefix only dialled inside a country; write the number in "
        "international format: + and the country code instead of the 0, e.g. the UK number "
        f"07700 900123 is {_EXAMPLE}"
    )


def is_valid_unicode(text: str) -> bool:
    """Whether ``text`` can be sent: lone surrogates cannot be encoded as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_sender(sender: str) -> str | None:
    """The problem with a sender ID, or None when it is acceptable."""
    if not sender or not sender.isascii() or not sender.isalnum():
        return "must be 1-15 ASCII letters and digits"
    if sender.isdigit():
        return None if len(sender) <= 15 else "must be at most 15 digits"
    return None if len(sender) <= 11 else "must be at most 11 characters when it has a letter"


@dataclass(frozen=True, repr=False)
class Outgoing:
    """A validated SendMessageToGlobe request."""

    recipient: Recipient
    message: str
    sender: str | None
    message_type: str | None
    task_id: str | None
    validity_period: int | None

    def __repr__(self) -> str:
        return f"Outgoing(to={self.recipient.masked}, chars={len(self.message)})"


def check_options(
    sender: object, message_type: object, task_id: object, validity_period: object,
) -> tuple[str | None, str | None, str | None, int | None]:
    """The checks of a send's options (sender ID, type, task id, validity period); returns them
    as the types they were checked to be."""
    if sender is not None:
        if not isinstance(sender, str):
            raise InvalidRequest(f"sender must be a string, not {type(sender).__name__}",
                                 code="InvalidSender")
        problem = check_sender(sender)
        if problem:
            raise InvalidRequest(f"sender {problem}", code="InvalidSender")
    if message_type is not None and (
        not isinstance(message_type, str) or message_type not in MESSAGE_TYPES
    ):
        raise InvalidRequest("message_type must be OTP, NOTIFY or MKT", code="InvalidType")
    if task_id is not None and (
        not isinstance(task_id, str)
        or not 1 <= len(task_id) <= MAX_TASK_ID
        or not is_valid_unicode(task_id)
    ):
        raise InvalidRequest(f"task_id must be a string of 1-{MAX_TASK_ID} Unicode characters",
                             code="InvalidTaskId")
    if validity_period is not None and (
        isinstance(validity_period, bool)
        or not isinstance(validity_period, int)
        or validity_period <= 0
    ):
        raise InvalidRequest("validity_period must be a whole number of seconds > 0",
                             code="InvalidValidityPeriod")
    return sender, message_type, task_id, validity_period


def validate(
    to: object,
    message: object,
    *,
    sender: object,
    message_type: object,
    task_id: object,
    validity_period: object,
    max_message_length: int,
) -> Outgoing:
    """Check every argument of a send; raise :class:`InvalidRequest` on the first problem."""
    recipient = parse_recipient(to)
    if not isinstance(message, str):
        raise InvalidRequest(f"message must be a string, not {type(message).__name__}",
                             code="InvalidMessage")
    if not message.strip():
        raise InvalidRequest("message is empty; give the text to send", code="InvalidMessage")
    if not is_valid_unicode(message):
        raise InvalidRequest(
            "message holds text that is not valid Unicode (a lone surrogate, e.g. from "
            "undecodable input bytes); decode the input as UTF-8 first",
            code="InvalidMessage",
        )
    control = _CONTROL.search(message)
    if control is not None:
        raise InvalidRequest(
            f"message holds the control character U+{ord(control.group()):04X}, which no handset "
            "shows; remove it (line breaks and tabs are fine)",
            code="InvalidMessage",
        )
    if len(message) > max_message_length:
        raise InvalidRequest(
            f"message has {len(message)} characters; the limit is {max_message_length} "
            "(max_message_length)",
            code="MessageTooLong",
        )
    sender, message_type, task_id, validity_period = check_options(
        sender, message_type, task_id, validity_period)
    return Outgoing(
        recipient=recipient,
        message=message,
        sender=sender,
        message_type=message_type,
        task_id=task_id,
        validity_period=validity_period,
    )
