"""One function per operation: validate the arguments, build the SDK request, read the answer.

Each returns a :class:`Job` for the driver. Validation raises :class:`InvalidRequest` before any
network call; reading an answer returns the result or raises the error the one table maps.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from alibabacloud_dysmsapi20180501 import models

from ._driver import Job
from ._errors import DeliveryUncertain, InvalidRequest, error_for_code
from ._results import STATES, DeliveryStatus, Reported, SendReceipt
from ._settings import Settings
from ._transport import Answer, retry_hint
from ._validate import Outgoing, Recipient, is_valid_unicode, parse_recipient, validate

#: Message ids and template codes: printable ASCII without spaces.
_TOKEN = re.compile(r"[\x21-\x7e]{1,64}")
#: The provider's "no such record (yet)" code.
NOT_FOUND = "DATA_NOT_EXIST"


def check_code(answer: Answer) -> Any:
    """The body of an accepted answer, or raise the mapped error of any other."""
    body = answer.body
    code = getattr(body, "response_code", None)
    if code == "OK":
        return body
    if not code:
        raise DeliveryUncertain(
            "the answer had no ResponseCode; the request may have been processed, check before "
            "repeating it",
            code="UnparsableResponse",
            http_status=answer.status,
            request_id=getattr(body, "request_id", None),
        )
    raise error_for_code(
        code, http_status=answer.status, request_id=body.request_id,
        retry_after=retry_hint(answer.headers),
    )


def _receipt(
    answer: Answer, attempts: int, recipient: Recipient, sender: str | None,
) -> SendReceipt:
    body = check_code(answer)
    detail = body.number_detail
    return SendReceipt(
        message_id=body.message_id or "",
        request_id=body.request_id or "",
        to=body.to or recipient.digits,
        segments=int(body.segments) if str(body.segments or "").isdigit() else 0,
        sender=getattr(body, "from_", None) or sender,
        country=getattr(detail, "country", None),
        region=getattr(detail, "region", None),
        carrier=getattr(detail, "carrier", None),
        attempts=attempts,
    )


# -- SendMessageToGlobe ----------------------------------------------------------------------------


def outgoing(
    settings: Settings, to: object, message: object, sender: object, message_type: object,
    task_id: object, validity_period: object,
) -> Outgoing:
    """The validated send, with the settings' defaults for sender and type."""
    return validate(
        to, message,
        sender=settings.sender if sender is None else sender,
        message_type=settings.message_type if message_type is None else message_type,
        task_id=task_id, validity_period=validity_period,
        max_message_length=settings.max_message_length,
    )


def send(
    settings: Settings, to: object, message: object, sender: object, message_type: object,
    task_id: object, validity_period: object,
) -> Job[SendReceipt]:
    out = outgoing(settings, to, message, sender, message_type, task_id, validity_period)
    request = models.SendMessageToGlobeRequest(
        to=out.recipient.digits, message=out.message, from_=out.sender, type=out.message_type,
        task_id=out.task_id, validity_period=out.validity_period,
    )
    recipient, chosen = out.recipient, out.sender
    return Job(request, lambda answer, attempts: _receipt(answer, attempts, recipient, chosen))


# -- SendMessageWithTemplate -----------------------------------------------------------------------


def template(
    to: object, template_code: object, sign_name: object, params: object,
    validity_period: object,
) -> Job[SendReceipt]:
    recipient = parse_recipient(to, mainland=True)
    code = token(template_code, "template_code", "InvalidTemplateCode")
    if not isinstance(sign_name, str) or not sign_name.strip() or not is_valid_unicode(sign_name):
        raise InvalidRequest("sign_name must be the approved signature name, a non-empty string",
                             code="InvalidSignName")
    encoded: str | None = None
    if params is not None:
        if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
            raise InvalidRequest("params must be a mapping of template variable names to values",
                                 code="InvalidTemplateParam")
        try:
            encoded = json.dumps(dict(params), ensure_ascii=False, allow_nan=False)
            encoded.encode("utf-8")
        except (TypeError, ValueError):
            raise InvalidRequest(
                "params must hold JSON values only (strings, numbers, booleans, lists, mappings)",
                code="InvalidTemplateParam",
            ) from None
    _positive_int(validity_period, "validity_period", "InvalidValidityPeriod")
    request = models.SendMessageWithTemplateRequest(
        to=recipient.digits, from_=sign_name, template_code=code, template_param=encoded,
        validity_period=validity_period,
    )
    return Job(request, lambda answer, attempts: _receipt(answer, attempts, recipient, None))


# -- QueryMessage ----------------------------------------------------------------------------------


def status(message_id: object) -> Job[DeliveryStatus]:
    checked = token(message_id, "message_id", "InvalidMessageId")
    return Job(models.QueryMessageRequest(message_id=checked),
               lambda answer, attempts: _status(answer, checked))


def _status(answer: Answer, message_id: str) -> DeliveryStatus:
    if getattr(answer.body, "response_code", None) == NOT_FOUND:
        return DeliveryStatus(message_id=message_id, state="not_found",
                              request_id=answer.body.request_id or "")
    body = check_code(answer)
    state = STATES.get(str(body.status or ""))
    if state is None:
        raise DeliveryUncertain(
            "the status answer had no known Status; query again later",
            code="UnparsableResponse", http_status=answer.status, request_id=body.request_id,
        )
    detail = body.number_detail
    return DeliveryStatus(
        message_id=body.message_id or message_id,
        state=state,
        error_code=body.error_code or None,
        error_description=body.error_description or None,
        sent_at=provider_time(body.send_date),
        received_at=provider_time(body.receive_date),
        to=body.to or None,
        country=getattr(detail, "country", None),
        carrier=getattr(detail, "carrier", None),
        request_id=body.request_id or "",
    )


def provider_time(text: object) -> datetime | None:
    """A provider date (``Mon, 24 Dec 2018 16:58:22 +0800``, or ISO 8601) in UTC, else None."""
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        try:
            when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if when.tzinfo is None:  # no offset given: the provider's own zone is UTC+8
        return None
    return when.astimezone(timezone.utc)


# -- SmsConversion and ConversionData --------------------------------------------------------------


def conversion(message_id: object, to: object, delivered: object, at: object) -> Job[Reported]:
    checked = token(message_id, "message_id", "InvalidMessageId")
    digits = None
    if to is not None:
        try:
            digits = parse_recipient(to).digits
        except InvalidRequest as error:
            if error.code != "MainlandNumber":
                raise
            digits = parse_recipient(to, mainland=True).digits
    if not isinstance(delivered, bool):
        raise InvalidRequest("delivered must be True or False", code="InvalidDelivered")
    request = models.SmsConversionRequest(
        message_id=checked, to=digits, delivered=delivered, conversion_time=epoch_ms(at, "at"),
    )
    return Job(request, _reported)


def conversion_rate(rate: object, at: object) -> Job[Reported]:
    if (
        isinstance(rate, bool) or not isinstance(rate, (int, float))
        or not math.isfinite(rate) or not 0 <= rate <= 1
    ):
        raise InvalidRequest("rate must be a number from 0 to 1 (verified / requested)",
                             code="InvalidConversionRate")
    request = models.ConversionDataRequest(conversion_rate=repr(float(rate)),
                                           report_time=epoch_ms(at, "at"))
    return Job(request, _reported)


def _reported(answer: Answer, attempts: int) -> Reported:
    body = check_code(answer)
    return Reported(request_id=body.request_id or "", attempts=attempts)


# -- argument checks shared by the operations ------------------------------------------------------


def token(value: object, name: str, code: str) -> str:
    """An id or code: 1-64 printable ASCII characters, no spaces."""
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise InvalidRequest(f"{name} must be a non-empty id of printable ASCII characters "
                             "(no spaces, at most 64)", code=code)
    return value


def epoch_ms(at: object, name: str) -> int | None:
    """A timezone-aware datetime not in the future, as milliseconds since the epoch."""
    if at is None:
        return None
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise InvalidRequest(f"{name} must be a timezone-aware datetime, e.g. "
                             "datetime.now(timezone.utc)", code="InvalidTime")
    try:
        ms = round(at.timestamp() * 1000)
    except (OverflowError, OSError, ValueError):
        ms = -1
    now = datetime.now(timezone.utc).timestamp() * 1000
    if ms < 0 or ms > now + 1000:
        raise InvalidRequest(f"{name} must not be in the future", code="InvalidTime")
    return ms


def _positive_int(value: object, name: str, code: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise InvalidRequest(f"{name} must be a whole number of seconds > 0", code=code)

