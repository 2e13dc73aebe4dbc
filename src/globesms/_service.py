"""The facade: :class:`SmsService` turns one call into a receipt or one globesms error."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any

from alibabacloud_dysmsapi20180501 import models
from alibabacloud_tea_util.models import RuntimeOptions
from tenacity import RetryCallState

from . import _log
from ._client import build_client, clear_answer, last_answer, seconds_to_ms
from ._credentials import CredentialGate, CredentialSource, default_credential
from ._errors import (
    AccountError,
    AuthError,
    ConfigurationError,
    DeliveryUncertain,
    InvalidRequest,
    SmsError,
    describe,
    error_for_code,
    error_for_exception,
    redirect_error,
)
from ._retry import Clock, policy
from ._settings import Settings
from ._validate import Outgoing, mask_number, validate


@dataclass(frozen=True, kw_only=True, repr=False)
class SendReceipt:
    """What Alibaba Cloud accepted. ``repr`` masks the number."""

    message_id: str
    request_id: str
    to: str
    segments: int
    sender: str | None
    country: str | None
    region: str | None
    carrier: str | None
    attempts: int

    def __repr__(self) -> str:
        return (
            f"SendReceipt(message_id={self.message_id!r}, request_id={self.request_id!r}, "
            f"to={mask_number(self.to)!r}, segments={self.segments!r}, sender={self.sender!r}, "
            f"country={self.country!r}, region={self.region!r}, carrier={self.carrier!r}, "
            f"attempts={self.attempts!r})"
        )


class SmsService:
    """Send SMS through SendMessageToGlobe with validation, safe retries and safe logs.

    Build it once and share it between threads. ``settings`` defaults to
    :meth:`Settings.load`; ``credential`` defaults to the Alibaba Cloud default chain; ``client``
    replaces the SDK client entirely (its own credential is then used as is). ``sleep`` and
    ``clock`` exist for tests.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        credential: CredentialSource | None = None,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self.settings = settings if settings is not None else Settings.load()
        if self.settings.quiet_sdk_logs:
            _log.install_sdk_filters()
        self._sleep = sleep
        self._clock = clock
        self._closed = False
        with _log.quiet_sdk(self.settings.quiet_sdk_logs):
            if client is not None:
                self._client = client
                self._gate: CredentialGate | None = (
                    CredentialGate(credential, clock=clock) if credential is not None else None
                )
            else:
                source = credential if credential is not None else default_credential()
                self._client = build_client(self.settings, source)
                self._gate = CredentialGate(source, clock=clock)

    def __repr__(self) -> str:
        return f"SmsService(endpoint={self.settings.endpoint!r}, region={self.settings.region!r})"

    def __enter__(self) -> SmsService:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting sends. Connections belong to the SDK's shared pool and stay there."""
        self._closed = True

    def send(
        self,
        to: str,
        message: str,
        *,
        sender: str | None = None,
        message_type: str | None = None,
        task_id: str | None = None,
        validity_period: int | None = None,
    ) -> SendReceipt:
        """Send ``message`` to ``to``; return the receipt or raise a :class:`SmsError`.

        ``sender`` and ``message_type`` default to the settings. Invalid input raises
        :class:`InvalidRequest` and nothing is sent; :class:`DeliveryUncertain` means the SMS
        may have gone out.
        """
        started = self._clock()
        with _log.quiet_sdk(self.settings.quiet_sdk_logs):
            try:
                if self._closed:
                    raise ConfigurationError("this SmsService is closed; build a new one",
                                             code="ServiceClosed")
                outgoing = validate(
                    to,
                    message,
                    sender=self.settings.sender if sender is None else sender,
                    message_type=(
                        self.settings.message_type if message_type is None else message_type
                    ),
                    task_id=task_id,
                    validity_period=validity_period,
                    max_message_length=self.settings.max_message_length,
                )
            except InvalidRequest as error:
                _log.emit(
                    logging.WARNING, _log.INVALID, str(error), to=mask_number(to), code=error.code,
                    outcome="invalid", error_class=type(error).__name__,
                    elapsed_ms=self._elapsed_ms(started),
                )
                raise
            try:
                if self._gate is not None:
                    self._gate.ensure()
                receipt = self._send_with_retries(outgoing, started)
            except SmsError as error:
                self._log_failure(error, outgoing, started)
                raise
        _log.emit(
            logging.INFO, _log.SENT, f"to {outgoing.recipient.masked}",
            to=outgoing.recipient.masked, request_id=receipt.request_id,
            message_id=receipt.message_id, attempt=receipt.attempts, outcome="sent",
            elapsed_ms=self._elapsed_ms(started), segments=receipt.segments,
            country=receipt.country,
        )
        return receipt

    # -- one send, several attempts ------------------------------------------------------------

    def _send_with_retries(self, outgoing: Outgoing, started: float) -> SendReceipt:
        request = models.SendMessageToGlobeRequest(
            to=outgoing.recipient.digits,
            message=outgoing.message,
            from_=outgoing.sender,
            type=outgoing.message_type,
            task_id=outgoing.task_id,
            validity_period=outgoing.validity_period,
        )
        retrying = policy(
            self.settings,
            sleep=self._sleep,
            clock=self._clock,
            started=started,
            before_sleep=lambda state: self._log_retry(state, outgoing, started),
        )
        attempts = 0
        try:
            for attempt in retrying:
                with attempt:
                    attempts += 1
                    receipt = self._attempt(request, outgoing, started, attempts)
        except SmsError as error:
            error.attempts = attempts
            raise
        return receipt

    def _attempt(
        self,
        request: models.SendMessageToGlobeRequest,
        outgoing: Outgoing,
        started: float,
        attempt: int,
    ) -> SendReceipt:
        remaining = started + self.settings.deadline - self._clock()
        runtime = RuntimeOptions(
            connect_timeout=seconds_to_ms(min(self.settings.connect_timeout, remaining)),
            read_timeout=seconds_to_ms(min(self.settings.read_timeout, remaining)),
        )
        clear_answer()
        failure: Exception | None = None
        try:
            response = self._client.send_message_to_globe_with_options(request, runtime)
        except Exception as exc:  # anything the SDK raises is mapped, never leaked as is
            failure = exc
        if failure is not None:
            # Raised outside the except block, so the SDK exception (which holds the signed
            # request) is neither the __cause__ nor the __context__ of what the caller sees.
            answer = last_answer()
            error = error_for_exception(failure, http_status=answer[0] if answer else None)
            if error.retry_after is None and answer is not None:
                error.retry_after = _retry_after(answer[1])
            raise error from describe(failure)
        if 300 <= response.status_code < 400:
            raise redirect_error(response.status_code)
        body = response.body
        code = getattr(body, "response_code", None)
        if code != "OK":
            answer = last_answer()
            if not code:
                raise DeliveryUncertain(
                    "the answer had no ResponseCode; the SMS may have gone out, check delivery "
                    "before resending",
                    code="UnparsableResponse",
                    http_status=response.status_code,
                    request_id=getattr(body, "request_id", None),
                )
            raise error_for_code(
                code,
                http_status=response.status_code,
                request_id=body.request_id,
                retry_after=_retry_after(answer[1]) if answer is not None else None,
            )
        detail = body.number_detail
        return SendReceipt(
            message_id=body.message_id or "",
            request_id=body.request_id or "",
            to=body.to or outgoing.recipient.digits,
            segments=int(body.segments) if str(body.segments or "").isdigit() else 0,
            sender=body.from_ or outgoing.sender,
            country=getattr(detail, "country", None),
            region=getattr(detail, "region", None),
            carrier=getattr(detail, "carrier", None),
            attempts=attempt,
        )

    # -- logs ----------------------------------------------------------------------------------

    def _elapsed_ms(self, started: float) -> int:
        return round((self._clock() - started) * 1000)

    def _log_retry(self, state: RetryCallState, outgoing: Outgoing, started: float) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        _log.emit(
            logging.WARNING, _log.RETRY,
            f"to {outgoing.recipient.masked} after {type(error).__name__}",
            to=outgoing.recipient.masked,
            request_id=getattr(error, "request_id", None),
            code=getattr(error, "code", None),
            attempt=state.attempt_number,
            retry_in_ms=round(state.upcoming_sleep * 1000),
            outcome="retry",
            error_class=type(error).__name__,
            elapsed_ms=self._elapsed_ms(started),
        )

    def _log_failure(self, error: SmsError, outgoing: Outgoing, started: float) -> None:
        operator_action = (AccountError, AuthError, ConfigurationError, DeliveryUncertain)
        level = logging.ERROR if isinstance(error, operator_action) else logging.WARNING
        if type(error) is SmsError:
            level = logging.ERROR
        _log.emit(
            level, _log.FAILED, f"to {outgoing.recipient.masked}: {type(error).__name__}",
            to=outgoing.recipient.masked, request_id=error.request_id, code=error.code,
            attempt=error.attempts,
            outcome="uncertain" if isinstance(error, DeliveryUncertain) else "failed",
            error_class=type(error).__name__, elapsed_ms=self._elapsed_ms(started),
        )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """A retry hint from ``x-acs-retry-after`` (milliseconds) or ``Retry-After`` (seconds/date)."""
    acs = headers.get("x-acs-retry-after")
    if acs:
        try:
            ms = int(acs)
        except ValueError:
            ms = 0
        if ms > 0:
            return ms / 1000.0
    standard = headers.get("retry-after")
    if not standard:
        return None
    try:
        return max(0.0, float(standard))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(standard)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())

