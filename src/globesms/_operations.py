"""Operation descriptors: every remote call globesms makes, described by data.

Nothing outside this module names an API action. Both transports take an :class:`Operation`: the
sync one calls the SDK's own ``*_with_options`` method, the async one signs the same parameters
with the SDK's utilities and sends them where the descriptor says they travel (the query string,
or a form body for ``ConversionData``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alibabacloud_dysmsapi20180501 import models

VERSION = "2018-05-01"


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: each is a singleton
class Operation:
    """One API operation and the rules globesms applies to it.

    ``repeatable``: a repeat cannot do harm (reads, reports that overwrite), so an uncertain
    outcome may be retried. Sends are never repeatable: a repeat may be a duplicate SMS.
    ``account_rate``: the documented per-account limit, requests per second.
    """

    name: str
    action: str
    request_model: type[Any]
    body_model: type[Any]
    sdk_method: str
    form_body: bool = False
    repeatable: bool = False
    account_rate: float = 0.0

    def __repr__(self) -> str:
        return f"Operation({self.action})"


SEND = Operation(
    "send", "SendMessageToGlobe", models.SendMessageToGlobeRequest,
    models.SendMessageToGlobeResponseBody, "send_message_to_globe_with_options",
    account_rate=2000.0,
)
SEND_BATCH = Operation(
    "send_batch", "BatchSendMessageToGlobe", models.BatchSendMessageToGlobeRequest,
    models.BatchSendMessageToGlobeResponseBody, "batch_send_message_to_globe_with_options",
    account_rate=1.0,
)
SEND_TEMPLATE = Operation(
    "send_template", "SendMessageWithTemplate", models.SendMessageWithTemplateRequest,
    models.SendMessageWithTemplateResponseBody, "send_message_with_template_with_options",
    account_rate=1500.0,
)
STATUS = Operation(
    "status", "QueryMessage", models.QueryMessageRequest, models.QueryMessageResponseBody,
    "query_message_with_options", repeatable=True, account_rate=300.0,
)
REPORT_CONVERSION = Operation(
    "report_conversion", "SmsConversion", models.SmsConversionRequest,
    models.SmsConversionResponseBody, "sms_conversion_with_options", repeatable=True,
    account_rate=500.0,
)
REPORT_CONVERSION_RATE = Operation(
    "report_conversion_rate", "ConversionData", models.ConversionDataRequest,
    models.ConversionDataResponseBody, "conversion_data_with_options", form_body=True,
    repeatable=True, account_rate=10.0,
)

OPERATIONS: tuple[Operation, ...] = (
    SEND, SEND_BATCH, SEND_TEMPLATE, STATUS, REPORT_CONVERSION, REPORT_CONVERSION_RATE,
)
