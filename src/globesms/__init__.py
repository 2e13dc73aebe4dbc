"""globesms: send international SMS through Alibaba Cloud's SendMessageToGlobe, safely.

The public API is assembled here and only here.
"""

from importlib.metadata import version as _version

from ._errors import (
    AccountError,
    AuthError,
    ConfigurationError,
    DeliveryUncertain,
    InvalidRecipient,
    InvalidRequest,
    MessageRejected,
    NetworkError,
    ServiceUnavailable,
    SmsError,
    Throttled,
    TransientError,
)
from ._log import JsonFormatter
from ._service import SendReceipt, SmsService
from ._settings import Settings

__version__ = _version("globesms")

__all__ = [
    "AccountError",
    "AuthError",
    "ConfigurationError",
    "DeliveryUncertain",
    "InvalidRecipient",
    "InvalidRequest",
    "JsonFormatter",
    "MessageRejected",
    "NetworkError",
    "SendReceipt",
    "ServiceUnavailable",
    "Settings",
    "SmsError",
    "SmsService",
    "Throttled",
    "TransientError",
    "__version__",
]
