"""Observers of calls: a small hook protocol, with structured logging as the default hook.

The driver reports four moments of every public call to each hook: started (:meth:`Hook.start`,
which returns the call's :class:`Observer`), a retry scheduled, succeeded, failed. Tracing and
metrics plug in here as further hooks; the driver never imports an observer.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from . import _log
from ._errors import (
    AccountError,
    AuthError,
    ConfigurationError,
    DeliveryUncertain,
    InvalidRequest,
    SmsError,
)


@dataclass(frozen=True)
class CallInfo:
    """What observers may know about a call: nothing that identifies a person.

    ``to`` is masked (country code and last four digits), ``country`` the calling code.
    """

    operation: str
    action: str
    to: str | None
    server_address: str


class Observer(Protocol):
    """One call's observer; every method is called at most once, but ``retry``."""

    def retry(self, error: SmsError, attempt: int, wait: float) -> None: ...

    def succeeded(self, result: Any, attempts: int) -> None: ...

    def failed(self, error: SmsError, attempts: int) -> None: ...


class Hook(Protocol):
    """A backend (logs, traces, metrics) that observes every call."""

    def start(self, call: CallInfo) -> Observer: ...


_OPERATOR_ACTION = (AccountError, AuthError, ConfigurationError, DeliveryUncertain)


class LogHook:
    """The default hook: today's ``sms.*`` log events, one record per meaningful moment."""

    def start(self, call: CallInfo) -> Observer:
        return _LogObserver(call, time.monotonic())


class _LogObserver:
    __slots__ = ("call", "started")

    def __init__(self, call: CallInfo, started: float) -> None:
        self.call = call
        self.started = started

    def _elapsed_ms(self) -> int:
        return round((time.monotonic() - self.started) * 1000)

    def retry(self, error: SmsError, attempt: int, wait: float) -> None:
        call = self.call
        _log.emit(
            logging.WARNING, _log.RETRY, f"{call.operation} to {call.to} after "
            f"{type(error).__name__}", to=call.to, operation=call.operation,
            request_id=error.request_id, code=error.code, attempt=attempt,
            retry_in_ms=round(wait * 1000), outcome="retry", error_class=type(error).__name__,
            elapsed_ms=self._elapsed_ms(),
        )

    def succeeded(self, result: Any, attempts: int) -> None:
        if not _log.logger.isEnabledFor(logging.INFO):
            return
        call = self.call
        event = _log.SENT if call.operation == "send" else f"sms.{call.operation}"
        _log.emit(
            logging.INFO, event, f"to {call.to}" if call.to else call.operation, to=call.to,
            operation=None if call.operation == "send" else call.operation,
            request_id=getattr(result, "request_id", None) or None,
            message_id=getattr(result, "message_id", None) or None, attempt=attempts,
            outcome=getattr(result, "outcome", "sent" if call.operation == "send" else "ok"),
            elapsed_ms=self._elapsed_ms(), segments=getattr(result, "segments", None),
            country=getattr(result, "country", None),
        )

    def failed(self, error: SmsError, attempts: int) -> None:
        call = self.call
        if attempts == 0 and isinstance(error, InvalidRequest):
            _log.emit(
                logging.WARNING, _log.INVALID, str(error), to=call.to, code=error.code,
                operation=None if call.operation == "send" else call.operation,
                outcome="invalid", error_class=type(error).__name__,
                elapsed_ms=self._elapsed_ms(),
            )
            return
        level = logging.ERROR if isinstance(error, _OPERATOR_ACTION) else logging.WARNING
        if type(error) is SmsError:
            level = logging.ERROR
        _log.emit(
            level, _log.FAILED, f"{call.operation} to {call.to}: {type(error).__name__}",
            to=call.to, operation=None if call.operation == "send" else call.operation,
            request_id=error.request_id, code=error.code, attempt=attempts,
            outcome="uncertain" if isinstance(error, DeliveryUncertain) else "failed",
            error_class=type(error).__name__, elapsed_ms=self._elapsed_ms(),
        )
