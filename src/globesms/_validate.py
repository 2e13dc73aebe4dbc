"""Validation before the network: every check that can fail without asking Alibaba.

A request that fails here raises :class:`InvalidRequest` (or :class:`InvalidRecipient`) and
nothing is sent. Messages name the field and the fix, never the number or the text.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers

from ._errors import InvalidRecipient, InvalidRequest

MESSAGE_TYPES = ("OTP", "NOTIFY", "MKT")
MAX_TASK_ID = 255
_NUMBER_NOISE = str.maketrans("", "", "+ -()[]\t")
_MAINLAND = 86
#: Every assigned country calling code, from phonenumbers' metadata (kept current upstream).
_CALLING_CODES = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


@dataclass(frozen=True, repr=False)
class Recipient:
    """A recipient number reduced to digits (country code first), with its masked form."""

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
    """Best-effort mask of anything a caller passed as a number (for logs of rejected input)."""
    if not isinstance(raw, str):
        return "<invalid>"
    digits = raw.translate(_NUMBER_NOISE)
    if not digits.isdigit():
        return "<invalid>"
    return mask_digits(digits, _country_code(digits))


def _country_code(digits: str) -> int | None:
    """The ITU calling code a digit string starts with (codes are prefix-free: 1-3 digits)."""
    for length in (1, 2, 3):
        code = int(digits[:length])
        if code in _CALLING_CODES:
            return code
    return None


def parse_recipient(to: object, *, mainland: bool = False) -> Recipient:
    """Normalise ``to`` to international digits or raise :class:`InvalidRecipient`.

    ``mainland=False`` (SendMessageToGlobe) refuses Chinese mainland numbers; ``mainland=True``
    (SendMessageWithTemplate) accepts only them.
    """
    if not isinstance(to, str):
        raise InvalidRecipient(
            f"to must be a string such as '+44 7700 900123', not {type(to).__name__}",
            code="InvalidTo",
        )
    digits = to.strip().translate(_NUMBER_NOISE)
    if not digits.isascii() or not digits.isdigit() or not 8 <= len(digits) <= 15:
        raise InvalidRecipient(
            "to must be an international number of 8-15 digits with its country code, "
            "e.g. '+44 7700 900123' (only +, spaces, dashes and brackets may be added)",
            code="InvalidTo",
        )
    country_code = _country_code(digits)
    if country_code is None:
        raise InvalidRecipient(
            "to does not start with a known country calling code; write it in international "
            "format, e.g. '+44 7700 900123' (no leading 00 or trunk 0)",
            code="InvalidTo",
        )
    if mainland and country_code != _MAINLAND:
        raise InvalidRecipient(
            "send_template reaches Chinese mainland (+86) numbers only; use send for this number",
            code="NotMainlandNumber",
        )
    if not mainland and country_code == _MAINLAND:
        raise InvalidRecipient(
            "SendMessageToGlobe cannot reach Chinese mainland (+86) numbers; use Alibaba Cloud's "
            "mainland SMS API for them",
            code="MainlandNumber",
        )
    return Recipient(digits, country_code)


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
    if len(message) > max_message_length:
        raise InvalidRequest(
            f"message has {len(message)} characters; the limit is {max_message_length} "
            "(max_message_length)",
            code="MessageTooLong",
        )
    if sender is not None:
        if not isinstance(sender, str):
            raise InvalidRequest(f"sender must be a string, not {type(sender).__name__}",
                                 code="InvalidSender")
        problem = check_sender(sender)
        if problem:
            raise InvalidRequest(f"sender {problem}", code="InvalidSender")
    if message_type is not None and message_type not in MESSAGE_TYPES:
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
    return Outgoing(
        recipient=recipient,
        message=message,
        sender=sender,
        message_type=message_type,
        task_id=task_id,
        validity_period=validity_period,
    )
