"""globesms: send international SMS through Alibaba Cloud's SendMessageToGlobe, safely.

The public API is assembled here and only here. Names are imported on first use (PEP 562), so
importing a part of the package (the pytest plugin, the emulator) does not import the Alibaba SDK,
whose credential library reads its environment once, at import.
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
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
        StoreUnavailable,
        Throttled,
        TransientError,
    )
    from ._log import JsonFormatter
    from ._results import (
        Accepted,
        BatchResult,
        DeliveryStatus,
        Preview,
        Rejected,
        Reported,
        SendReceipt,
    )
    from ._service import SmsService
    from ._settings import Settings
    from ._verify._redis import RedisStore
    from ._verify._service import Challenge, CheckResult, VerificationService
    from ._verify._stores import MemoryStore, SqliteStore

_ERRORS = (
    "AccountError",
    "AuthError",
    "ConfigurationError",
    "DeliveryUncertain",
    "InvalidRecipient",
    "InvalidRequest",
    "MessageRejected",
    "NetworkError",
    "ServiceUnavailable",
    "SmsError",
    "StoreUnavailable",
    "Throttled",
    "TransientError",
)
_HOMES: dict[str, str] = {
    **dict.fromkeys(_ERRORS, "._errors"),
    "JsonFormatter": "._log",
    **dict.fromkeys(
        ("Accepted", "BatchResult", "DeliveryStatus", "Preview", "Rejected", "Reported",
         "SendReceipt"), "._results"),
    "SmsService": "._service",
    "Settings": "._settings",
    "Challenge": "._verify._service",
    "CheckResult": "._verify._service",
    "MemoryStore": "._verify._stores",
    "RedisStore": "._verify._redis",
    "SqliteStore": "._verify._stores",
    "VerificationService": "._verify._service",
}

__all__ = [
    "Accepted",
    "AccountError",
    "AuthError",
    "BatchResult",
    "Challenge",
    "CheckResult",
    "ConfigurationError",
    "DeliveryStatus",
    "DeliveryUncertain",
    "InvalidRecipient",
    "InvalidRequest",
    "JsonFormatter",
    "MemoryStore",
    "MessageRejected",
    "NetworkError",
    "Preview",
    "RedisStore",
    "Rejected",
    "Reported",
    "SendReceipt",
    "ServiceUnavailable",
    "Settings",
    "SmsError",
    "SmsService",
    "SqliteStore",
    "StoreUnavailable",
    "Throttled",
    "TransientError",
    "VerificationService",
    "__version__",
]


def __getattr__(name: str) -> _typing.Any:
    if name == "__version__":  # read on first use: package metadata costs ~30 ms of import
        from ._version import version

        value = globals()["__version__"] = version()
        return value
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'globesms' has no attribute {name!r}")
    value = getattr(_importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
