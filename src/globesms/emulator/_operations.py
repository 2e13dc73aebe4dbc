"""The six operations of Dysmsapi 2018-05-01, behind the gateway checks.

Each handler takes the request parameters (query, plus a form body's fields)
and answers either a gateway error (``GatewayError``: HTTP 400
``Missing<Name>``) or HTTP 200 with a ``ResponseCode``. Rejected requests are
never stored as messages.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ._faults import MAGIC_BY_NUMBER
from ._gateway import GatewayError, Response, business_response, json_body, new_request_id
from ._numbers import check_number, describe_number
from ._records import AcceptedMessage, Changes, Conversion, ConversionReport
from ._segments import count_segments

SEND = "SendMessageToGlobe"
BATCH = "BatchSendMessageToGlobe"
TEMPLATE = "SendMessageWithTemplate"
QUERY = "QueryMessage"
CONVERSION = "SmsConversion"
CONVERSION_DATA = "ConversionData"
ACTIONS = frozenset({SEND, BATCH, TEMPLATE, QUERY, CONVERSION, CONVERSION_DATA})
SEND_ACTIONS = frozenset({SEND, TEMPLATE})
"""Operations whose ``To`` is one number (magic numbers apply to them)."""

MESSAGE_TYPES = ("OTP", "NOTIFY", "MKT")
BATCH_MESSAGE_TYPES = ("NOTIFY", "MKT")
BATCH_LIMIT = 1000
DEFAULT_MAX_RECORDS = 1000
"""Messages (and requests, conversions) kept by default; the oldest are dropped beyond it."""
DELIVERY_STATUSES = {"sent": "1", "failed": "2", "sending": "3"}
DEFAULT_FAILURE_CODE = "UNDELIVERED"
DELIVERED_CODE = "DELIVERED"

_DESCRIPTIONS = {
    "OK": "The request was accepted",
    "MOBILE_NUMBER_ILLEGAL": "The mobile number is not a valid international number",
    "NOT_SUPPORTED_COUNTRY": "Chinese mainland numbers are not supported by this operation",
    "SYSTEM_ERROR": "System error, please try again later",
    "INVALID_SENDERID": "The sender ID is not an approved one",
    "SMS_SIGN_NAME_ILLEGAL": "The signature name is not an approved one",
    "SMS_CONTENT_CODE_ILLEGAL": "The template code is not an approved one",
    "CONTENT_MISSING_PARAMETERS": "A template variable has no value",
    "MOBILE_COUNT_OVER_LIMIT": f"A batch takes at most {BATCH_LIMIT} numbers",
    "DATA_NOT_EXIST": "No message with this MessageId",
    "INVALID_JSON_PARAM": "A parameter is not the JSON it should be",
}
_TEMPLATE_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def describe(code: str) -> str:
    return _DESCRIPTIONS.get(code, code)


def _reply(code: str, to: str | None = None, description: str = "") -> Response:
    return business_response(code, description or describe(code), to)


def _require(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise GatewayError(400, f"Missing{name}", f"{name} is mandatory for this action.")
    return value


def _positive_int(text: str | None) -> int | None:
    """None when absent; raise ValueError when not a positive integer."""
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ValueError(text)
    return int(text)


def _validity(params: Mapping[str, str], to: str | None) -> int | Response | None:
    """ValidityPeriod as seconds (None when absent), or the INVALID_PARAMETERS answer."""
    try:
        return _positive_int(params.get("ValidityPeriod"))
    except ValueError:
        return _reply(
            "INVALID_PARAMETERS", to, "ValidityPeriod must be a positive number of seconds"
        )


def _message_id() -> str:
    # Unique enough for a test endpoint; the OS random source costs a syscall per call.
    return f"{_ids.getrandbits(63):019d}0"


_ids = random.Random()  # noqa: S311 - ids, not secrets


def _format_date(epoch: float) -> str:
    """The provider's date form, in its own zone (UTC+8), so clients must honour the offset."""
    return time.strftime("%a, %d %b %Y %H:%M:%S +0800", time.gmtime(epoch + 8 * 3600))


@dataclass(frozen=True)
class Policy:
    """Approved lists; None means "accept anything"."""

    sender_ids: frozenset[str] | None = None
    sign_names: frozenset[str] | None = None
    templates: Mapping[str, str | None] | None = None


@dataclass(frozen=True)
class DeliveryRule:
    status: str
    error_code: str | None
    description: str | None


class Api:
    """Operation handlers and the state they share; thread-safe."""

    def __init__(
        self,
        policy: Policy,
        clock: Callable[[], float],
        *,
        max_records: int = DEFAULT_MAX_RECORDS,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.changes = Changes()
        self._lock = threading.Lock()
        self._messages: deque[AcceptedMessage] = deque()
        self._by_id: dict[str, AcceptedMessage] = {}
        self._conversions: deque[Conversion] = deque(maxlen=max_records)
        self._reports: deque[ConversionReport] = deque(maxlen=max_records)
        self._delivery: dict[str | None, DeliveryRule] = {}
        self._message_delivery: dict[str, DeliveryRule] = {}
        self._max_records = max_records

    # -- state ---------------------------------------------------------------------------

    def messages(self) -> list[AcceptedMessage]:
        with self._lock:
            return list(self._messages)

    def conversions(self) -> list[Conversion]:
        with self._lock:
            return list(self._conversions)

    def reports(self) -> list[ConversionReport]:
        with self._lock:
            return list(self._reports)

    def message(self, message_id: str) -> AcceptedMessage | None:
        with self._lock:
            return self._by_id.get(message_id)

    def set_delivery(self, to: str | None, rule: DeliveryRule | None) -> None:
        with self._lock:
            if rule is None:
                self._delivery.pop(to, None)
            else:
                self._delivery[to] = rule
        self.changes.bump()

    def set_message_delivery(self, message_id: str, rule: DeliveryRule) -> bool:
        """Set one message's delivery state; False when no kept message has this id."""
        with self._lock:
            if message_id not in self._by_id:
                return False
            self._message_delivery[message_id] = rule
        self.changes.bump()
        return True

    def delivery_rules(self) -> dict[str | None, DeliveryRule]:
        with self._lock:
            return dict(self._delivery)

    def clear_delivery(self) -> None:
        with self._lock:
            self._delivery.clear()
            self._message_delivery.clear()
        self.changes.bump()

    def clear_messages(self) -> None:
        with self._lock:
            self._messages.clear()
            self._by_id.clear()
            self._message_delivery.clear()
        self.changes.bump()

    def reset(self) -> None:
        with self._lock:
            self._messages.clear()
            self._by_id.clear()
            self._conversions.clear()
            self._reports.clear()
            self._delivery.clear()
            self._message_delivery.clear()
        self.changes.bump()

    def _store(self, messages: list[AcceptedMessage]) -> None:
        if not messages:
            return
        with self._lock:
            self._messages.extend(messages)
            for message in messages:
                self._by_id[message.message_id] = message
            while len(self._messages) > self._max_records:
                dropped = self._messages.popleft()
                self._by_id.pop(dropped.message_id, None)
                self._message_delivery.pop(dropped.message_id, None)
        self.changes.bump()

    # -- dispatch ------------------------------------------------------------------------

    def handle(self, action: str, params: Mapping[str, str]) -> Response:
        handler = {
            SEND: self.send_message_to_globe,
            BATCH: self.batch_send,
            TEMPLATE: self.send_with_template,
            QUERY: self.query_message,
            CONVERSION: self.sms_conversion,
            CONVERSION_DATA: self.conversion_data,
        }[action]
        return handler(params)

    def _accepted(
        self,
        *,
        action: str,
        to: str,
        text: str,
        params: Mapping[str, str],
        validity: int | None,
        request_id: str,
        template_code: str | None = None,
    ) -> AcceptedMessage:
        detail = describe_number(to)
        return AcceptedMessage(
            to=to,
            message=text,
            sender=params.get("From"),
            message_type=params.get("Type"),
            task_id=params.get("TaskId"),
            validity_period=validity,
            channel_id=params.get("ChannelId"),
            message_id=_message_id(),
            request_id=request_id,
            segments=count_segments(text),
            country=detail.country,
            region=detail.region,
            carrier=detail.carrier,
            action=action,
            template_code=template_code,
            template_param=params.get("TemplateParam") if template_code is not None else None,
            accepted_at=self.clock(),
        )

    @staticmethod
    def _number_detail(message: AcceptedMessage) -> dict[str, str]:
        return {"Country": message.country, "Region": message.region, "Carrier": message.carrier}

    # -- SendMessageToGlobe --------------------------------------------------------------

    def send_message_to_globe(self, params: Mapping[str, str]) -> Response:
        to = _require(params, "To")
        text = _require(params, "Message")
        number_error = check_number(to)
        if number_error is not None:
            return _reply(number_error, to)
        rejected = self._check_sender_and_type(params, to, MESSAGE_TYPES)
        if rejected is not None:
            return rejected
        validity = _validity(params, to)
        if isinstance(validity, Response):
            return validity
        return self._accept_one(SEND, to, text, params, validity, sender=params.get("From"))

    def _check_sender_and_type(
        self, params: Mapping[str, str], to: str | None, types: tuple[str, ...]
    ) -> Response | None:
        """INVALID_SENDERID for an unapproved From, INVALID_PARAMETERS for a Type not in types."""
        sender = params.get("From")
        approved = self.policy.sender_ids
        if sender is not None and approved is not None and sender not in approved:
            return _reply("INVALID_SENDERID", to)
        message_type = params.get("Type")
        if message_type is not None and message_type not in types:
            return _reply("INVALID_PARAMETERS", to, f"Type must be one of {', '.join(types)}")
        return None

    def _accept_one(
        self, action: str, to: str, text: str, params: Mapping[str, str], validity: int | None,
        *, sender: str | None = None, template_code: str | None = None,
    ) -> Response:
        """Store one accepted message and answer with its receipt."""
        request_id = new_request_id()
        accepted = self._accepted(
            action=action, to=to, text=text, params=params, validity=validity,
            request_id=request_id, template_code=template_code,
        )
        self._store([accepted])
        payload: dict[str, object] = {
            "RequestId": request_id,
            "ResponseCode": "OK",
            "ResponseDescription": describe("OK"),
            "Segments": str(accepted.segments),
            "To": to,
            "MessageId": accepted.message_id,
            "NumberDetail": self._number_detail(accepted),
        }
        if sender is not None:
            payload["From"] = sender
        return Response(status=200, body=json_body(payload), request_id=request_id, code="OK")

    # -- BatchSendMessageToGlobe ---------------------------------------------------------

    def batch_send(self, params: Mapping[str, str]) -> Response:
        to_text = _require(params, "To")
        message_text = _require(params, "Message")
        numbers, texts = _json_strings(to_text), _json_strings(message_text)
        if numbers is None or texts is None:
            return _reply(
                "INVALID_JSON_PARAM", None, "To and Message must be JSON arrays of strings"
            )
        if len(numbers) > BATCH_LIMIT:
            return _reply("MOBILE_COUNT_OVER_LIMIT")
        if not numbers or len(numbers) != len(texts):
            return _reply(
                "INVALID_PARAMETERS", None, "To and Message must have the same, non-zero length"
            )
        rejected = self._check_sender_and_type(params, None, BATCH_MESSAGE_TYPES)
        if rejected is not None:
            return rejected
        sender = params.get("From")
        validity = _validity(params, None)
        if isinstance(validity, Response):
            return validity
        request_id = new_request_id()
        accepted: list[AcceptedMessage] = []
        failed: list[str] = []
        for number, text in zip(numbers, texts, strict=True):
            if not text or check_number(number) is not None:
                failed.append(number)
                continue
            accepted.append(
                self._accepted(
                    action=BATCH, to=number, text=text, params=params, validity=validity,
                    request_id=request_id,
                )
            )
        self._store(accepted)
        payload: dict[str, object] = {
            "RequestId": request_id,
            "ResponseCode": "OK",
            "ResponseDescription": describe("OK"),
            "SuccessCount": str(len(accepted)),
            "FailedList": json.dumps(failed),
            "MessageIdList": json.dumps([message.message_id for message in accepted]),
        }
        if sender is not None:
            payload["From"] = sender
        return Response(status=200, body=json_body(payload), request_id=request_id, code="OK")

    # -- SendMessageWithTemplate ---------------------------------------------------------

    def send_with_template(self, params: Mapping[str, str]) -> Response:
        to = _require(params, "To")
        sign_name = _require(params, "From")
        template_code = _require(params, "TemplateCode")
        number_error = check_number(to, allow_mainland=True)
        if number_error is not None:
            return _reply(number_error, to)
        if self.policy.sign_names is not None and sign_name not in self.policy.sign_names:
            return _reply("SMS_SIGN_NAME_ILLEGAL", to)
        templates = self.policy.templates
        if templates is not None and template_code not in templates:
            return _reply("SMS_CONTENT_CODE_ILLEGAL", to)
        variables: dict[str, object] = {}
        param_text = params.get("TemplateParam")
        if param_text:
            try:
                parsed = json.loads(param_text)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                return _reply("INVALID_JSON_PARAM", to, "TemplateParam must be a JSON object")
            variables = parsed
        template_text = templates.get(template_code) if templates is not None else None
        text = ""
        if template_text is not None:
            missing = [
                name for name in _TEMPLATE_VARIABLE.findall(template_text) if name not in variables
            ]
            if missing:
                return _reply("CONTENT_MISSING_PARAMETERS", to)
            text = _TEMPLATE_VARIABLE.sub(lambda m: str(variables[m.group(1)]), template_text)
        validity = _validity(params, to)
        if isinstance(validity, Response):
            return validity
        return self._accept_one(TEMPLATE, to, text, params, validity, template_code=template_code)

    # -- QueryMessage --------------------------------------------------------------------

    def delivery_of(self, message: AcceptedMessage) -> DeliveryRule:
        """The delivery state ``message`` reports now.

        Its own state (set from the inbox or ``set_message_delivery``) wins, then its
        number's rule, then a magic number's, then the rule for every number.
        """
        with self._lock:
            rule = self._message_delivery.get(message.message_id) or self._delivery.get(message.to)
            if rule is None:
                magic = MAGIC_BY_NUMBER.get(message.to)
                if magic is not None and magic.delivery != "sent":
                    rule = DeliveryRule(magic.delivery, None, None)
                else:
                    rule = self._delivery.get(None)
        return rule or DeliveryRule("sent", None, None)

    def query_message(self, params: Mapping[str, str]) -> Response:
        message_id = _require(params, "MessageId")
        with self._lock:
            message = self._by_id.get(message_id)
        if message is None:
            return _reply("DATA_NOT_EXIST")
        rule = self.delivery_of(message)
        request_id = new_request_id()
        payload: dict[str, object] = {
            "RequestId": request_id,
            "ResponseCode": "OK",
            "ResponseDescription": describe("OK"),
            "MessageId": message.message_id,
            "To": message.to,
            "Message": message.message,
            "Status": DELIVERY_STATUSES[rule.status],
            "SendDate": _format_date(message.accepted_at),
            "NumberDetail": self._number_detail(message),
        }
        if rule.status == "sent":
            payload["ErrorCode"] = rule.error_code or DELIVERED_CODE
            payload["ErrorDescription"] = rule.description or "delivered"
            payload["ReceiveDate"] = _format_date(message.accepted_at)
        elif rule.status == "failed":
            payload["ErrorCode"] = rule.error_code or DEFAULT_FAILURE_CODE
            payload["ErrorDescription"] = rule.description or "the carrier reported a failure"
            payload["ReceiveDate"] = _format_date(message.accepted_at)
        return Response(status=200, body=json_body(payload), request_id=request_id, code="OK")

    # -- SmsConversion -------------------------------------------------------------------

    def sms_conversion(self, params: Mapping[str, str]) -> Response:
        delivered_text = _require(params, "Delivered")
        if delivered_text.lower() not in ("true", "false"):
            return _reply("INVALID_PARAMETERS", None, "Delivered must be true or false")
        to = params.get("To")
        if to is not None and check_number(to, allow_mainland=True) is not None:
            return _reply("MOBILE_NUMBER_ILLEGAL", to)
        conversion_time: int | None = None
        time_text = params.get("ConversionTime")
        if time_text is not None:
            try:
                conversion_time = _positive_int(time_text)
            except ValueError:
                conversion_time = -1
            if conversion_time == -1 or (
                conversion_time is not None and conversion_time > (self.clock() + 60) * 1000
            ):
                return _reply(
                    "INVALID_PARAMETERS", None,
                    "ConversionTime must be epoch milliseconds, not in the future",
                )
        request_id = new_request_id()
        record = Conversion(
            delivered=delivered_text.lower() == "true",
            message_id=params.get("MessageId"),
            to=to,
            conversion_time=conversion_time,
            request_id=request_id,
        )
        with self._lock:
            self._conversions.append(record)
        return _ok(request_id)

    # -- ConversionData ------------------------------------------------------------------

    def conversion_data(self, params: Mapping[str, str]) -> Response:
        rate_text = _require(params, "ConversionRate")
        try:
            rate = float(rate_text)
        except ValueError:
            rate = math.nan
        if not 0.0 <= rate <= 1.0:
            return _reply("INVALID_PARAMETERS", None, "ConversionRate must be a number in [0, 1]")
        try:
            report_time = _positive_int(params.get("ReportTime"))
        except ValueError:
            return _reply("INVALID_PARAMETERS", None, "ReportTime must be epoch milliseconds")
        request_id = new_request_id()
        with self._lock:
            self._reports.append(
                ConversionReport(rate=rate, report_time=report_time, request_id=request_id)
            )
        return _ok(request_id)


def _ok(request_id: str) -> Response:
    payload: dict[str, object] = {
        "RequestId": request_id,
        "ResponseCode": "OK",
        "ResponseDescription": describe("OK"),
    }
    return Response(status=200, body=json_body(payload), request_id=request_id, code="OK")


def _json_strings(text: str) -> list[str] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return None
    return value
