"""The one attempt driver behind every operation, sync and async.

A public call hands the driver an :class:`Operation` and a ``prepare`` function that validates the
arguments and returns a :class:`Job` (the SDK request model and how to read the answer). The
driver owns everything else, once: validation logging, the deadline and per-attempt timeouts, the
rate governor, the in-flight bound, the first attempt outside tenacity, the one retry policy and
the observers. ``run`` and ``run_async`` are thin I/O shells over :class:`_Call`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tenacity import DoSleep, RetryCallState, Retrying

from . import _guard, _log
from ._credentials import CredentialGate
from ._errors import ConfigurationError, SmsError, TransientError
from ._governor import Governor, default_max_in_flight, pace, pace_async
from ._hooks import CallInfo, Hook, Observer
from ._operations import Operation
from ._retry import Clock, policy, should_retry
from ._settings import Settings
from ._transport import SDK_WARNINGS, Answer, AsyncTransport, SyncTransport
from ._validate import mask_number

R = TypeVar("R")

#: The least time an attempt after a wait must have left before the deadline: less than this and
#: a provider that accepts the message could not answer in time (an uncertain outcome for a send
#: that had a clean, unsent failure). Capped by half the deadline and by read_timeout.
MIN_ATTEMPT_WINDOW = 1.0


@dataclass(frozen=True)
class Job(Generic[R]):
    """One validated request and how to read its answer into a result (or raise)."""

    request: Any
    read: Callable[[Answer, int], R]
    to: str | None = None  # the validated recipient, masked (for observers)


class Driver:
    """Runs jobs of every operation with the service's transports, limits and hooks."""

    def __init__(
        self,
        settings: Settings,
        sync: SyncTransport,
        async_: AsyncTransport,
        *,
        gate: CredentialGate | None,
        hooks: list[Hook],
        governors: dict[Operation, Governor],
        sleep: Callable[[float], None],
        async_sleep: Callable[[float], Awaitable[None]],
        clock: Clock,
    ) -> None:
        self.settings = settings
        self._sync = sync
        self._async = async_
        self._gate = gate
        self.hooks = hooks
        self._governors = governors
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._clock = clock
        self.closed = False
        self._warned_starved = False
        self._endpoint = sync.where.endpoint
        self._window = min(MIN_ATTEMPT_WINDOW, settings.deadline / 2, settings.read_timeout)
        self._slots = threading.BoundedSemaphore(settings.max_in_flight)
        self._async_slots: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Semaphore
        ] = weakref.WeakKeyDictionary()

    # -- the two shells --------------------------------------------------------------------------

    def run(
        self, operation: Operation, to: object, prepare: Callable[[], Job[R]],
        messages: int = 1,
    ) -> R:
        """Run one call (of ``messages`` messages, for the observers) in this thread."""
        with _Call(self, operation, messages) as call:
            job = call.prepare(prepare, to)
            self._ensure_credential()
            while True:
                try:
                    return call.succeeded(self._attempt(call, job))
                except SmsError as error:
                    self._sleep(call.next_wait(error))

    async def run_async(
        self, operation: Operation, to: object, prepare: Callable[[], Job[R]],
        messages: int = 1,
    ) -> R:
        """Run one call to completion on the running event loop."""
        with _Call(self, operation, messages) as call:
            job = call.prepare(prepare, to)
            if self._gate is not None and not self._gate.ready:
                await asyncio.to_thread(self._gate.ensure)
            while True:
                try:
                    return call.succeeded(await self._attempt_async(call, job))
                except SmsError as error:
                    await self._async_sleep(call.next_wait(error))

    def _ensure_credential(self) -> None:
        if self._gate is not None:
            self._gate.ensure()

    def validated(self, operation: Operation, prepare: Callable[[], R]) -> R:
        """Only the validation of a call (a batch's plan): invalid input is observed, raised."""
        try:
            if self.closed:
                raise _closed()
            return prepare()
        except SmsError as error:
            call = _Call(self, operation, 0)
            call.observe(None)
            call.failed(error)
            raise

    def close(self) -> None:
        """Stop accepting calls; let go of the rate stores."""
        self.closed = True
        for governor in self._governors.values():
            governor.close()

    async def aclose(self) -> None:
        """Stop accepting calls; close this event loop's connection pool and rate-store clients."""
        self.closed = True
        await self._async.aclose()
        for governor in self._governors.values():
            aclose = getattr(governor, "aclose", None)
            if aclose is not None:
                await aclose()

    def _starved(self) -> None:
        """Warn once that the in-flight bound, not the rate budget, limits this service."""
        if self._warned_starved:
            return
        self._warned_starved = True
        settings = self.settings
        _log.emit(
            logging.WARNING, "rate.starved",
            f"max_in_flight={settings.max_in_flight} requests are all waiting for answers, so "
            f"sends start slower than max_rate={settings.max_rate}: throughput is capped at "
            "max_in_flight / latency; raise max_in_flight to at least "
            f"{default_max_in_flight(settings.max_rate, settings.read_timeout)} "
            "(max_rate x the answer latency)",
            outcome="starved",
        )

    # -- one attempt -----------------------------------------------------------------------------

    def _attempt(self, call: _Call, job: Job[R]) -> R:
        call.attempts += 1
        governor = self._governors.get(call.operation)
        if governor is not None:
            call.rate_wait(pace(governor, call.rate_budget, sleep=self._sleep, clock=self._clock))
        if not self._slots.acquire(blocking=False):
            if governor is not None:
                self._starved()
            if not self._slots.acquire(timeout=call.slot_timeout()):
                raise _busy()
        try:
            connect, read = call.timeouts()
            answer = self._sync.call(call.operation, job.request, connect_timeout=connect,
                                     read_timeout=read)
        finally:
            self._slots.release()
        return job.read(answer, call.attempts)

    async def _attempt_async(self, call: _Call, job: Job[R]) -> R:
        call.attempts += 1
        governor = self._governors.get(call.operation)
        if governor is not None:
            call.rate_wait(await pace_async(governor, call.rate_budget, sleep=self._async_sleep,
                                            clock=self._clock))
        loop = asyncio.get_running_loop()
        slots = self._async_slots.get(loop)
        if slots is None:
            slots = self._async_slots[loop] = asyncio.Semaphore(self.settings.max_in_flight)
        if slots.locked():  # only a full bound pays for a timed wait (a task and a loop hop)
            if governor is not None:
                self._starved()
            try:
                await asyncio.wait_for(slots.acquire(), timeout=call.slot_timeout())
            except asyncio.TimeoutError:
                raise _busy() from None
        else:
            await slots.acquire()
        try:
            connect, read = call.timeouts()
            answer = await self._async.call(call.operation, job.request,
                                            connect_timeout=connect, read_timeout=read)
        finally:
            slots.release()
        return job.read(answer, call.attempts)


def _closed() -> ConfigurationError:
    return ConfigurationError("this SmsService is closed; build a new one", code="ServiceClosed")


def _busy() -> TransientError:
    return TransientError(
        "max_in_flight requests were already running for connect_timeout; nothing was sent, "
        "retry later or raise max_in_flight",
        code="LocalBusy",
    )


class _Call:
    """One public call: clock readings, attempts, the retry decision and its observers."""

    __slots__ = ("_driver", "_messages", "_observers", "_quiet", "_retrying", "_state",
                 "attempts", "deadline_at", "operation", "started")

    def __init__(self, driver: Driver, operation: Operation, messages: int = 1) -> None:
        self._driver = driver
        self.operation = operation
        self.started = driver._clock()
        self.deadline_at = self.started + driver.settings.deadline
        self.attempts = 0
        self._retrying: Retrying | None = None
        self._state: RetryCallState | None = None
        self._messages = messages
        self._observers: list[Observer] = []
        self._quiet = _log.quiet_sdk(driver.settings.quiet_sdk_logs)

    def __enter__(self) -> _Call:
        SDK_WARNINGS.__enter__()
        self._quiet.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any,
    ) -> None:
        try:
            if isinstance(exc, SmsError):
                self.failed(exc)
            elif exc is not None:  # cancelled, interrupted, or a bug: observers end too
                self.interrupted(exc)
        finally:
            self._quiet.__exit__(None, None, None)
            SDK_WARNINGS.__exit__(None, None, None)

    def observe(self, to: str | None) -> None:
        """Start the observers, once the masked recipient is known."""
        driver = self._driver
        info = CallInfo(self.operation.name, self.operation.action, to, driver._endpoint,
                        self._messages)
        self._observers = [hook.start(info) for hook in driver.hooks]

    def prepare(self, prepare: Callable[[], Job[R]], number: object) -> Job[R]:
        """Validate; start the observers with the recipient masked (validated, or as given)."""
        try:
            if self._driver.closed:
                raise _closed()
            job = prepare()
            if _guard.active:
                refusal = _guard.refusal(self._driver._endpoint)
                if refusal is not None:
                    raise ConfigurationError(refusal, code="TestRunGuard")
        except SmsError:
            self.observe(None if number is None else mask_number(number))
            raise
        self.observe(job.to)
        return job

    def remaining(self) -> float:
        return self.deadline_at - self._driver._clock()

    def rate_budget(self) -> float:
        """How long this attempt may wait for a rate slot and still have a useful window."""
        return max(0.0, self.remaining() - self._driver._window)

    def slot_timeout(self) -> float:
        """How long to wait for a free in-flight slot: like a connection, connect_timeout."""
        return max(0.0, min(self._driver.settings.connect_timeout, self.remaining()))

    def timeouts(self) -> tuple[float, float]:
        """This attempt's connect and read timeouts, cut to what is left of the deadline."""
        remaining = self.remaining()
        settings = self._driver.settings
        return min(settings.connect_timeout, remaining), min(settings.read_timeout, remaining)

    def next_wait(self, error: SmsError) -> float:
        """Seconds to wait before the next attempt, or raise ``error`` when there is none.

        The first failure builds the one tenacity policy; a success never allocates it.
        """
        settings = self._driver.settings
        retry_uncertain = settings.retry_uncertain or self.operation.repeatable
        if settings.max_attempts <= 1 or not should_retry(error, retry_uncertain):
            raise error
        if self._retrying is None:
            self._retrying = policy(
                settings, clock=self._driver._clock, started=self.started,
                window=self._driver._window, retry_uncertain=retry_uncertain,
                before_sleep=self._before_sleep,
            )
            self._retrying.begin()
            self._state = RetryCallState(self._retrying, fn=None, args=(), kwargs={})
        state = self._state
        assert state is not None
        state.attempt_number = self.attempts
        state.set_exception((type(error), error, error.__traceback__))
        action = self._retrying.iter(state)  # raises the error when the policy stops
        if not isinstance(action, DoSleep):  # pragma: no cover - a failed outcome never succeeds
            raise error
        state.prepare_for_next_attempt()
        return float(action)

    def _before_sleep(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, SmsError):
            for observer in self._observers:
                observer.retry(error, state.attempt_number, state.upcoming_sleep)

    def rate_wait(self, seconds: float) -> None:
        for observer in self._observers:
            observer.rate_wait(seconds)

    def succeeded(self, result: R) -> R:
        for observer in self._observers:
            observer.succeeded(result, self.attempts)
        return result

    def failed(self, error: SmsError) -> None:
        error.attempts = self.attempts
        for observer in self._observers:
            observer.failed(error, self.attempts)

    def interrupted(self, error: BaseException) -> None:
        for observer in self._observers:
            observer.interrupted(error, self.attempts)
