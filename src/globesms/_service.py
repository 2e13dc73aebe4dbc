"""The facade: :class:`SmsService` turns one call into a receipt or one globesms error.

``send`` and ``send_async`` are two thin loops over one :class:`_Call`, which owns everything
else: validation, the request, the deadline and per-attempt timeouts, the meaning of an answer,
and the log events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from alibabacloud_dysmsapi20180501 import models
from tenacity import AsyncRetrying, RetryCallState, Retrying

from . import _log
from ._client import build_client
from ._credentials import CredentialGate, CredentialSource, default_credential
from ._errors import (
    AccountError,
    AuthError,
    ConfigurationError,
    DeliveryUncertain,
    InvalidRequest,
    SmsError,
    TransientError,
    error_for_code,
)
from ._governor import RateGovernor
from ._retry import Clock, async_policy, policy, should_retry
from ._settings import Settings
from ._transport import Answer, AsyncTransport, SyncTransport, retry_hint
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

    Build it once and share it between threads and tasks. ``settings`` defaults to
    :meth:`Settings.load`; ``credential`` defaults to the Alibaba Cloud default chain; ``client``
    replaces the SDK client entirely (its own credential is then used as is). ``sleep``,
    ``async_sleep`` and ``clock`` exist for tests.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        credential: CredentialSource | None = None,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self.settings = settings if settings is not None else Settings.load()
        if self.settings.quiet_sdk_logs:
            _log.install_sdk_filters()
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._clock = clock
        self._closed = False
        with _log.quiet_sdk(self.settings.quiet_sdk_logs):
            if client is None:
                source = credential if credential is not None else default_credential()
                client = build_client(self.settings, source)
                credential = source
        self._gate = CredentialGate(credential, clock=clock) if credential is not None else None
        self._sync = SyncTransport(client)
        self._async = AsyncTransport(
            client, endpoint=str(self.settings.endpoint), protocol=self.settings.protocol,
            ca_file=self.settings.ca_file, pool_size=self.settings.max_in_flight,
        )
        self._governor = (
            RateGovernor(self.settings.max_rate, clock=clock)
            if self.settings.max_rate is not None
            else None
        )
        self._slots = threading.BoundedSemaphore(self.settings.max_in_flight)
        self._async_slots: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Semaphore
        ] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"SmsService(endpoint={self.settings.endpoint!r}, region={self.settings.region!r})"

    def __enter__(self) -> SmsService:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> SmsService:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def close(self) -> None:
        """Stop accepting sends. Sync connections belong to the SDK's shared pool and stay."""
        self._closed = True

    async def aclose(self) -> None:
        """Stop accepting sends and close this event loop's connection pool."""
        self._closed = True
        await self._async.aclose()

    # -- the two entry points --------------------------------------------------------------------

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
        with self._call(to, message, sender, message_type, task_id, validity_period) as call:
            if self._gate is not None:
                self._gate.ensure()
            try:  # first attempt outside tenacity: a success allocates no retry state
                return self._attempt(call)
            except SmsError as error:
                if not call.may_retry(error):
                    raise
                first: SmsError | None = error
            retrying: Retrying = policy(
                self.settings, sleep=self._sleep, clock=self._clock, started=call.started,
                before_sleep=call.log_retry,
            )
            for attempt in retrying:
                with attempt:
                    if first is not None:  # hand the first failure to the one policy
                        replay, first = first, None
                        raise replay
                    return self._attempt(call)
        raise AssertionError("unreachable")  # pragma: no cover - tenacity re-raises

    def _attempt(self, call: _Call) -> SendReceipt:
        call.attempts += 1
        self._wait_for_rate(call, self._sleep)
        if not self._slots.acquire(timeout=call.slot_timeout()):
            raise _busy()
        try:
            answer = self._sync.send(call.request, **call.timeouts())
        finally:
            self._slots.release()
        return call.receipt(answer)

    async def send_async(
        self,
        to: str,
        message: str,
        *,
        sender: str | None = None,
        message_type: str | None = None,
        task_id: str | None = None,
        validity_period: int | None = None,
    ) -> SendReceipt:
        """``send`` for asyncio: same arguments, receipt, errors, retries and log events.

        Connections are pooled per service and event loop (close with :meth:`aclose` or
        ``async with``); waits never block the loop; cancelling stops the retries.
        """
        with self._call(to, message, sender, message_type, task_id, validity_period) as call:
            if self._gate is not None and not self._gate.ready:
                await asyncio.to_thread(self._gate.ensure)
            try:  # first attempt outside tenacity, as in send
                return await self._attempt_async(call)
            except SmsError as error:
                if not call.may_retry(error):
                    raise
                first: SmsError | None = error
            retrying: AsyncRetrying = async_policy(
                self.settings, sleep=self._async_sleep, clock=self._clock,
                started=call.started, before_sleep=call.log_retry,
            )
            async for attempt in retrying:
                with attempt:
                    if first is not None:
                        replay, first = first, None
                        raise replay
                    return await self._attempt_async(call)
        raise AssertionError("unreachable")  # pragma: no cover - tenacity re-raises

    async def _attempt_async(self, call: _Call) -> SendReceipt:
        call.attempts += 1
        wait = self._wait_for_rate(call, None)
        if wait:
            await self._async_sleep(wait)
        async with self._async_slot(call):
            answer = await self._async.send(call.request, **call.timeouts())
        return call.receipt(answer)

    # -- shared pieces ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _call(
        self, to: object, message: object, sender: object, message_type: object,
        task_id: object, validity_period: object,
    ) -> Iterator[_Call]:
        """Validate, then run the body as one logged call (SDK logs quiet, outcome logged)."""
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
                    elapsed_ms=round((self._clock() - started) * 1000),
                )
                raise
            call = _Call(outgoing, started, self.settings, self._clock)
            try:
                yield call
            except SmsError as error:
                error.attempts = call.attempts
                call.log_failure(error)
                raise

    def _wait_for_rate(self, call: _Call, sleep: Callable[[float], None] | None) -> float:
        """Reserve a slot from the rate governor; sleep for it (sync) or return the wait."""
        if self._governor is None:
            return 0.0
        wait = self._governor.reserve(call.deadline_at)
        if wait and sleep is not None:
            sleep(wait)
        return wait

    @contextlib.asynccontextmanager
    async def _async_slot(self, call: _Call) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        slots = self._async_slots.get(loop)
        if slots is None:
            slots = self._async_slots[loop] = asyncio.Semaphore(self.settings.max_in_flight)
        if slots.locked():  # only a full bound pays for a timed wait (a task and a loop hop)
            try:
                await asyncio.wait_for(slots.acquire(), timeout=call.slot_timeout())
            except asyncio.TimeoutError:
                raise _busy() from None
        else:
            await slots.acquire()
        try:
            yield
        finally:
            slots.release()


def _busy() -> TransientError:
    return TransientError(
        "max_in_flight sends were already running for connect_timeout; nothing was sent, retry "
        "later or raise max_in_flight",
        code="LocalBusy",
    )


class _Call:
    """One send: its validated request, clock readings, attempts, answer reading and logs."""

    def __init__(self, outgoing: Outgoing, started: float, settings: Settings,
                 clock: Clock) -> None:
        self.outgoing = outgoing
        self.started = started
        self.deadline_at = started + settings.deadline
        self.attempts = 0
        self._settings = settings
        self._clock = clock
        self.masked = outgoing.recipient.masked
        self.request = models.SendMessageToGlobeRequest(
            to=outgoing.recipient.digits,
            message=outgoing.message,
            from_=outgoing.sender,
            type=outgoing.message_type,
            task_id=outgoing.task_id,
            validity_period=outgoing.validity_period,
        )

    def may_retry(self, error: SmsError) -> bool:
        """Whether the retry policy could allow a second attempt after ``error``."""
        return self._settings.max_attempts > 1 and should_retry(
            error, self._settings.retry_uncertain
        )

    def remaining(self) -> float:
        return self.deadline_at - self._clock()

    def slot_timeout(self) -> float:
        """How long to wait for a free in-flight slot: like a connection, connect_timeout."""
        return max(0.0, min(self._settings.connect_timeout, self.remaining()))

    def timeouts(self) -> dict[str, float]:
        """This attempt's connect and read timeouts, cut to what is left of the deadline."""
        remaining = self.remaining()
        return {
            "connect_timeout": min(self._settings.connect_timeout, remaining),
            "read_timeout": min(self._settings.read_timeout, remaining),
        }

    def elapsed_ms(self) -> int:
        return round((self._clock() - self.started) * 1000)

    def receipt(self, answer: Answer) -> SendReceipt:
        """The receipt for an accepted answer, or the mapped error for any other."""
        body = answer.body
        code = getattr(body, "response_code", None)
        if code != "OK":
            if not code:
                raise DeliveryUncertain(
                    "the answer had no ResponseCode; the SMS may have gone out, check delivery "
                    "before resending",
                    code="UnparsableResponse",
                    http_status=answer.status,
                    request_id=getattr(body, "request_id", None),
                )
            raise error_for_code(
                code,
                http_status=answer.status,
                request_id=body.request_id,
                retry_after=retry_hint(answer.headers),
            )
        detail = body.number_detail
        receipt = SendReceipt(
            message_id=body.message_id or "",
            request_id=body.request_id or "",
            to=body.to or self.outgoing.recipient.digits,
            segments=int(body.segments) if str(body.segments or "").isdigit() else 0,
            sender=body.from_ or self.outgoing.sender,
            country=getattr(detail, "country", None),
            region=getattr(detail, "region", None),
            carrier=getattr(detail, "carrier", None),
            attempts=self.attempts,
        )
        if _log.logger.isEnabledFor(logging.INFO):
            self._log_sent(receipt)
        return receipt

    def _log_sent(self, receipt: SendReceipt) -> None:
        _log.emit(
            logging.INFO, _log.SENT, f"to {self.masked}", to=self.masked,
            request_id=receipt.request_id, message_id=receipt.message_id, attempt=self.attempts,
            outcome="sent", elapsed_ms=self.elapsed_ms(), segments=receipt.segments,
            country=receipt.country,
        )

    def log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        _log.emit(
            logging.WARNING, _log.RETRY, f"to {self.masked} after {type(error).__name__}",
            to=self.masked, request_id=getattr(error, "request_id", None),
            code=getattr(error, "code", None), attempt=state.attempt_number,
            retry_in_ms=round(state.upcoming_sleep * 1000), outcome="retry",
            error_class=type(error).__name__, elapsed_ms=self.elapsed_ms(),
        )

    def log_failure(self, error: SmsError) -> None:
        operator_action = (AccountError, AuthError, ConfigurationError, DeliveryUncertain)
        level = logging.ERROR if isinstance(error, operator_action) else logging.WARNING
        if type(error) is SmsError:
            level = logging.ERROR
        _log.emit(
            level, _log.FAILED, f"to {self.masked}: {type(error).__name__}",
            to=self.masked, request_id=error.request_id, code=error.code, attempt=error.attempts,
            outcome="uncertain" if isinstance(error, DeliveryUncertain) else "failed",
            error_class=type(error).__name__, elapsed_ms=self.elapsed_ms(),
        )
