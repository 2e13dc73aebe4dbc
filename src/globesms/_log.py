"""Structured, PII-safe logging.

The library only emits records on ``logging.getLogger("globesms")``: no handlers (but the
``NullHandler`` the logging HOWTO asks libraries to add), no levels, no ``basicConfig``. Each
record carries a stable ``event`` and its fields in ``extra``; numbers are masked (country code
and last four digits) and message text is never logged.

The official SDK's loggers (``darabonba-core``, ``alibabacloud-tea``) print signed headers and URLs
holding the number and text when ``DEBUG=sdk`` is set, the credential library's ``credentials``
logger prints tracebacks for every failed metadata probe, and urllib3 logs each URL at DEBUG.
While a globesms call runs (and only then), :class:`SdkQuietFilter` drops those loggers' records.
Turn this off with ``quiet_sdk_logs = false`` (``GLOBESMS_QUIET_SDK_LOGS=0``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

logger = logging.getLogger("globesms")
# The logging HOWTO's advice for libraries: a NullHandler only, so an application that configured
# no logging does not get our records printed by logging's last-resort handler.
logger.addHandler(logging.NullHandler())

#: Event names (stable; part of the public contract).
SENT = "sms.sent"
FAILED = "sms.failed"
RETRY = "sms.retry"
INVALID = "sms.invalid"

#: The fields a record may carry in ``extra``.
FIELDS = (
    "event",
    "operation",
    "to",
    "request_id",
    "message_id",
    "code",
    "attempt",
    "elapsed_ms",
    "outcome",
    "error_class",
    "retry_in_ms",
    "segments",
    "country",
)

#: Loggers under the SDK that print URLs (number and text), signed headers or tracebacks.
SDK_LOGGERS = (
    "darabonba-core",
    "alibabacloud-tea",
    "credentials",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.util.retry",
)
#: How many quiet globesms calls the current context is inside (calls nest: verification sends).
_IN_CALL: ContextVar[int] = ContextVar("globesms_in_call", default=0)


class SdkQuietFilter(logging.Filter):
    """Drop SDK log records emitted while a quiet globesms call is running."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _IN_CALL.get() == 0


_FILTER = SdkQuietFilter()


def install_sdk_filters() -> None:
    """Attach the quiet filter to the SDK's loggers (idempotent)."""
    for name in SDK_LOGGERS:
        sdk_logger = logging.getLogger(name)
        if _FILTER not in sdk_logger.filters:
            sdk_logger.addFilter(_FILTER)
        for handler in sdk_logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)


class _Quiet:
    """Marks the current context as inside a globesms call while entered (a class, not a
    generator: it runs on every call)."""

    __slots__ = ()

    def __enter__(self) -> None:
        _IN_CALL.set(_IN_CALL.get() + 1)

    def __exit__(self, *exc: object) -> None:
        _IN_CALL.set(_IN_CALL.get() - 1)


_QUIET, _NOT_QUIET = _Quiet(), contextlib.nullcontext()


def quiet_sdk(enabled: bool) -> contextlib.AbstractContextManager[None]:
    """Mark the current context as a globesms call, so SDK records are dropped (if enabled)."""
    return _QUIET if enabled else _NOT_QUIET


def emit(level: int, event: str, text: str, **fields: Any) -> None:
    """Log one event with its fields; ``None`` fields are left out."""
    if logger.isEnabledFor(level):
        extra = {key: value for key, value in fields.items() if value is not None}
        extra["event"] = event
        logger.log(level, "%s %s", event, text, extra=extra)


class JsonFormatter(logging.Formatter):
    """Format records as one JSON object per line, with globesms fields at the top level.

    >>> handler = logging.StreamHandler()
    >>> handler.setFormatter(JsonFormatter())
    """

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            value = record.__dict__.get(key)
            if value is not None:
                payload[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            payload["exc_type"] = record.exc_info[0].__name__
        return json.dumps(payload, ensure_ascii=False, default=str)
