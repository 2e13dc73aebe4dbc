"""Observers of calls: a small hook protocol, with structured logging as the default hook.

The driver reports the moments of every public call to each hook: started (:meth:`Hook.start`,
which returns the call's :class:`Observer`), a wait for a rate slot, a retry scheduled, and one
end: succeeded, failed, or interrupted (cancelled, or an exception that is not an
:class:`SmsError`). Observers start and end in the caller's thread or task, so an observer may
attach a context for the duration of the call. Tracing and metrics plug in here as further hooks
(:func:`default_hooks`); the driver never imports an observer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from . import _log
from ._errors import (
    AccountError,
    AuthError,
    ConfigurationError,
    DeliveryUncertain,
    InvalidRequest,
    SmsError,
)

if TYPE_CHECKING:
    from ._settings import Settings

R = TypeVar("R")


@dataclass(frozen=True)
class CallInfo:
    """What observers may know about a call: nothing that identifies a person.

    ``to`` is masked (country code and last four digits), :attr:`country` the calling code.
    ``messages`` is how many messages the call sends (a batch request's numbers; 0 for a batch
    refused as a whole by validation).
    """

    operation: str
    action: str
    to: str | None
    server_address: str
    messages: int = 1

    @property
    def country(self) -> str | None:
        """The recipient's country calling code (``"44"``), when the call has one recipient."""
        to = self.to
        if to is None or not to.startswith("+"):
            return None
        end = to.find("*")
        return to[1:end] if end > 1 else None


class Observer(Protocol):
    """One call's observer. Exactly one of ``succeeded``, ``failed`` and ``interrupted`` ends
    the call; ``rate_wait`` (every rate-governed attempt) and ``retry`` come before it."""

    def rate_wait(self, seconds: float) -> None: ...

    def retry(self, error: SmsError, attempt: int, wait: float) -> None: ...

    def succeeded(self, result: Any, attempts: int) -> None: ...

    def failed(self, error: SmsError, attempts: int) -> None: ...

    def interrupted(self, error: BaseException, attempts: int) -> None: ...


class Hook(Protocol):
    """A backend (logs, traces, metrics) that observes every call."""

    def start(self, call: CallInfo) -> Observer: ...


def default_hooks(settings: Settings) -> list[Hook]:
    """Structured logs, and OpenTelemetry when ``opentelemetry-api`` is importable and the
    ``otel`` setting is on (it records only while the application has configured an SDK)."""
    hooks: list[Hook] = [LogHook()]
    if settings.otel:
        from . import _otel

        if _otel.available():
            hooks.append(_otel.OtelHook())
    return hooks


_OPERATOR_ACTION = (AccountError, AuthError, ConfigurationError, DeliveryUncertain)


#: Operations observed outside the driver (the verification layer logs its own events).
VERIFY_START = "verify.start"
VERIFY_CHECK = "verify.check"


class Observation:
    """The observers of one call made outside the driver (a verification's start or check).

    ``with Observation(hooks, call) as observed: return observed.done(result)``: leaving the
    block ends every observer, with the result, the :class:`SmsError` (its ``attempts``) or any
    other exception. Entered and left in the caller's thread or task, like the driver's calls.
    """

    __slots__ = ("_observers", "_result")

    def __init__(self, hooks: Iterable[Hook], call: CallInfo) -> None:
        self._observers = [hook.start(call) for hook in hooks]
        self._result: Any = None

    def __enter__(self) -> Observation:
        return self

    def done(self, result: R) -> R:
        """Record the call's result and return it."""
        self._result = result
        return result

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object,
    ) -> None:
        for observer in self._observers:
            if exc is None:
                observer.succeeded(self._result, 0)
            elif isinstance(exc, SmsError):
                observer.failed(exc, exc.attempts)
            else:
                observer.interrupted(exc, 0)


class LogHook:
    """The default hook: today's ``sms.*`` log events, one record per meaningful moment.

    Verification calls are left to the verification layer's own ``verify.*`` events.
    """

    def start(self, call: CallInfo) -> Observer:
        if call.operation.startswith("verify."):
            return SILENT
        return _LogObserver(call, time.monotonic())


class SilentObserver:
    """An observer that records nothing (a base for observers that need only some moments)."""

    def rate_wait(self, seconds: float) -> None:
        pass

    def retry(self, error: SmsError, attempt: int, wait: float) -> None:
        pass

    def succeeded(self, result: Any, attempts: int) -> None:
        pass

    def failed(self, error: SmsError, attempts: int) -> None:
        pass

    def interrupted(self, error: BaseException, attempts: int) -> None:
        pass


SILENT = SilentObserver()


class _LogObserver:
    __slots__ = ("call", "started")

    def __init__(self, call: CallInfo, started: float) -> None:
        self.call = call
        self.started = started

    def _elapsed_ms(self) -> int:
        return round((time.monotonic() - self.started) * 1000)

    def rate_wait(self, seconds: float) -> None:
        pass

    def interrupted(self, error: BaseException, attempts: int) -> None:
        pass

    def retry(self, error: SmsError, attempt: int, wait: float) -> None:
        call = self.call
        _log.emit(
            logging.WARNING, _log.RETRY, f"{_subject(call)} after "
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
            level, _log.FAILED, f"{_subject(call)}: {type(error).__name__}",
            to=call.to, operation=None if call.operation == "send" else call.operation,
            request_id=error.request_id, code=error.code, attempt=attempts,
            outcome="uncertain" if isinstance(error, DeliveryUncertain) else "failed",
            error_class=type(error).__name__, elapsed_ms=self._elapsed_ms(),
        )


def _subject(call: CallInfo) -> str:
    """What a record's text says the call was: ``send to +44****0123``, or ``status``."""
    return f"{call.operation} to {call.to}" if call.to else call.operation
