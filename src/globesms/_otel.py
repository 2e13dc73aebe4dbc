"""OpenTelemetry plumbing (extra ``globesms[otel]``, ``opentelemetry-api`` only).

The SDK puts ``To`` and ``Message`` in the query string of every request, so an application that
auto-instruments ``requests``, ``urllib3`` or ``aiohttp`` would record the number and the text
(a verification code) in its HTTP client spans' ``url.full``. :func:`suppress_http_spans` marks
the current context with OpenTelemetry's "suppress HTTP instrumentation" key, which those
instrumentations check before they start a span, and with the general "suppress
instrumentation" key, the only one the aiohttp client instrumentation checked before its 0.60b0
release; globesms's own spans are not affected (the SDK's tracer does not read either key).

Without ``opentelemetry-api`` installed the context manager does nothing (one ``None`` check):
an application that has no OpenTelemetry has no HTTP spans to suppress either.

:class:`OtelHook` is the tracing and metrics hook (see ``docs/observability.md``). The service
adds it by default when ``opentelemetry-api`` is importable and the ``otel`` setting is on. It
looks the global providers up on every call, so an SDK configured after globesms was imported
(or after the service was built) is used from the next call on; while they are the API's
defaults (no SDK) it only marks the call's context to suppress HTTP client spans, as
:func:`suppress_http_spans` does, for a call's duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

from ._errors import DeliveryUncertain, InvalidRequest, SmsError, Throttled
from ._hooks import SILENT, VERIFY_CHECK, VERIFY_START, CallInfo, SilentObserver
from ._version import version

_context: Any
_trace: Any
_metrics: Any
_meter_globals: Any
try:
    from opentelemetry import context as _context
    from opentelemetry import metrics as _metrics
    from opentelemetry import trace as _trace
except ImportError:  # the otel extra is not installed: nothing to suppress
    _context = _trace = _metrics = _meter_globals = None
else:
    try:  # where get_meter_provider() keeps the global (read directly: see _GlobalProviders)
        from opentelemetry.metrics import _internal as _meter_globals
    except ImportError:  # pragma: no cover - a future API: the public getters are used
        _meter_globals = None

#: The context key HTTP client instrumentations check (``is_http_instrumentation_enabled``).
#: opentelemetry-api defines it; the plain name is what instrumentations before it looked up.
_SUPPRESS_HTTP_KEY: Any = (
    getattr(_context, "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", "suppress_http_instrumentation")
    if _context is not None
    else None
)
#: The key every instrumentation checks (``is_instrumentation_enabled``): the aiohttp client
#: instrumentation before 0.60b0 ignores the HTTP key, so both are set.
_SUPPRESS_ALL_KEY: Any = (
    getattr(_context, "_SUPPRESS_INSTRUMENTATION_KEY", "suppress_instrumentation")
    if _context is not None
    else None
)


def _suppressed() -> Any:
    """The current context with HTTP client (and all library) instrumentation suppressed."""
    return _context.set_value(_SUPPRESS_HTTP_KEY, True,
                              _context.set_value(_SUPPRESS_ALL_KEY, True))


def available() -> bool:
    """Whether ``opentelemetry-api`` is importable (the ``otel`` extra)."""
    return _context is not None


@contextlib.contextmanager
def suppress_http_spans() -> Iterator[None]:
    """While the block runs, HTTP client instrumentations (requests, urllib3, aiohttp) record no
    spans in this context, so no span carries the number or the text from the SDK's query string.
    """
    if _context is None:
        yield
        return
    token = _context.attach(_suppressed())
    try:
        yield
    finally:
        _context.detach(token)


# -- the hook --------------------------------------------------------------------------------------

#: The semantic-conventions version of the attributes used (``server.*``, ``error.type``).
SCHEMA_URL = "https://opentelemetry.io/schemas/1.27.0"
#: Operations that send messages: counted in ``globesms.messages``.
SENDING = frozenset({"send", "send_template", "send_batch"})
#: Verification calls (observed by the verification layer, around its own SMS send).
VERIFYING = frozenset({VERIFY_START, VERIFY_CHECK})
#: Bucket boundaries (s) for the call duration: calls take milliseconds to the 15 s deadline.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                    10.0, 15.0, 30.0)
#: Bucket boundaries (s) for a wait for a rate slot: none, a grid tick, up to a second or more.
WAIT_BUCKETS = (0.0, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Provider classes of the API that record nothing: the defaults before an SDK is configured.
_DEFAULT_PROVIDERS = frozenset({
    "ProxyTracerProvider", "NoOpTracerProvider", "_ProxyMeterProvider", "NoOpMeterProvider",
})


def _recording(provider: object) -> bool:
    return provider is not None and type(provider).__name__ not in _DEFAULT_PROVIDERS


class Instruments:
    """The metric instruments of one meter (see ``docs/observability.md`` for each)."""

    __slots__ = ("duration", "messages", "rate_wait", "retries", "segments", "verify_checks",
                 "verify_starts")

    def __init__(self, meter: Any) -> None:
        self.messages = meter.create_counter(
            "globesms.messages", unit="{message}",
            description="Messages of send calls, by operation, outcome and country.")
        self.segments = meter.create_counter(
            "globesms.segments", unit="{segment}",
            description="Billed segments of accepted messages, by operation and country.")
        self.duration = _histogram(
            meter, "globesms.call.duration", "s",
            "Duration of a public call, retries and waits included.", DURATION_BUCKETS)
        self.retries = meter.create_counter(
            "globesms.retries", unit="{retry}",
            description="Scheduled retries, by operation, error class and code.")
        self.rate_wait = _histogram(
            meter, "globesms.governor.wait", "s",
            "Time an attempt waited for a slot of the rate governor.", WAIT_BUCKETS)
        self.verify_starts = meter.create_counter(
            "globesms.verify.starts", unit="{start}",
            description="Verification starts, by outcome, refusal reason and country.")
        self.verify_checks = meter.create_counter(
            "globesms.verify.checks", unit="{check}",
            description="Verification checks, by outcome (the check's status) and country.")


def _histogram(meter: Any, name: str, unit: str, description: str,
               buckets: tuple[float, ...]) -> Any:
    try:
        return meter.create_histogram(name, unit=unit, description=description,
                                      explicit_bucket_boundaries_advisory=buckets)
    except TypeError:  # opentelemetry-api before 1.30 takes no advice: the SDK's buckets
        return meter.create_histogram(name, unit=unit, description=description)


#: The variables that make the API load a global provider lazily, on the first get_*_provider().
_PROVIDER_VARIABLES = ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER")


class _GlobalProviders:
    """The global tracer and meter providers, read the cheapest correct way.

    ``trace.get_tracer_provider()`` and ``metrics.get_meter_provider()`` look a variable up in
    ``os.environ`` on every call until a provider is set (about 1.3 us for both, half the hook's
    cost without an SDK). The API keeps the set providers in two module globals, ``None`` until
    set; reading them is what the getters do, minus the lookup, which only matters when
    ``OTEL_PYTHON_*_PROVIDER`` names a provider to load lazily: then, or when the globals are
    gone from a future API, the public getters are called.
    """

    def __init__(self) -> None:
        direct = (hasattr(_trace, "_TRACER_PROVIDER")
                  and hasattr(_meter_globals, "_METER_PROVIDER"))
        self.direct = direct and not any(name in os.environ for name in _PROVIDER_VARIABLES)

    def tracer_provider(self) -> Any:
        if self.direct:
            return _trace._TRACER_PROVIDER
        return _trace.get_tracer_provider()

    def meter_provider(self) -> Any:
        if self.direct:
            return _meter_globals._METER_PROVIDER
        return _metrics.get_meter_provider()


class OtelHook:
    """Spans and metrics of every call, through the OpenTelemetry API.

    ``tracer_provider`` and ``meter_provider`` default to the global ones, looked up on every
    call (a module attribute read each); pass providers to use them instead (tests do).
    """

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        if _context is None:
            raise ImportError(
                "OpenTelemetry support needs opentelemetry-api: pip install 'globesms[otel]'")
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._globals = _GlobalProviders()
        # (provider, what it gives) swapped as one tuple, so threads never see a mixed pair.
        self._tracing: tuple[object, Any] = (object(), None)
        self._metering: tuple[object, Instruments | None] = (object(), None)

    def start(self, call: CallInfo) -> _OtelObserver | SilentObserver:
        tracer, instruments = self.tracer(), self.instruments()
        if tracer is None and instruments is None:
            # Nothing of ours records. An instrumentation holding its own provider still could:
            # suppress, unless no instrumentation package was ever imported (then none can).
            if _INSTRUMENTATION not in sys.modules:
                return _IDLE
            return _Suppressing()
        return _OtelObserver(call, tracer, instruments)

    def tracer(self) -> Any:
        """The tracer of the current provider, or None while it records nothing."""
        provider = self._tracer_provider or self._globals.tracer_provider()
        seen, tracer = self._tracing
        if provider is not seen:
            tracer = (provider.get_tracer("globesms", version(), schema_url=SCHEMA_URL)
                      if _recording(provider) else None)
            self._tracing = (provider, tracer)
        return tracer

    def instruments(self) -> Instruments | None:
        """The instruments of the current meter provider, or None while it records nothing."""
        provider = self._meter_provider or self._globals.meter_provider()
        seen, instruments = self._metering
        if provider is not seen:
            instruments = (Instruments(provider.get_meter("globesms", version(),
                                                          schema_url=SCHEMA_URL))
                           if _recording(provider) else None)
            self._metering = (provider, instruments)
        return instruments


@functools.lru_cache(maxsize=32)
def _server(endpoint: str) -> dict[str, str | int]:
    """``server.address`` and ``server.port`` of a ``host[:port]`` endpoint."""
    host, colon, port = endpoint.rpartition(":")
    if colon and port.isdigit() and not host.endswith(":"):
        return {"server.address": host.strip("[]"), "server.port": int(port)}
    return {"server.address": endpoint.strip("[]")}


def _error_attributes(error: BaseException) -> dict[str, str]:
    kind = type(error).__name__
    attributes = {"error.type": kind, "globesms.error.class": kind}
    code = getattr(error, "code", None)
    if isinstance(code, str) and code:
        attributes["globesms.error.code"] = code
    return attributes


def _request_id(result: Any) -> str | None:
    if isinstance(result, tuple):  # a batch request's (request_id, failed, ids)
        result = result[0] if result and isinstance(result[0], str) else None
        return result or None
    request_id = getattr(result, "request_id", None)
    return request_id if isinstance(request_id, str) and request_id else None


_IDLE = SILENT
#: The package every OpenTelemetry instrumentation imports (requests, urllib3, aiohttp, redis...).
_INSTRUMENTATION = "opentelemetry.instrumentation"


class _Suppressing(SilentObserver):
    """A call while nothing records (no SDK): only its HTTP client spans are suppressed."""

    __slots__ = ("token",)

    def __init__(self) -> None:
        self.token = _context.attach(_suppressed())

    def succeeded(self, result: Any, attempts: int) -> None:
        _context.detach(self.token)

    def failed(self, error: SmsError, attempts: int) -> None:
        _context.detach(self.token)

    def interrupted(self, error: BaseException, attempts: int) -> None:
        _context.detach(self.token)


class _OtelObserver:
    """One call: its span (current for the call, HTTP spans suppressed under it) and metrics.

    Created in the caller's thread or task and ended there, so the context it attaches is
    detached where it was attached.
    """

    __slots__ = ("call", "instruments", "span", "started", "token")

    def __init__(self, call: CallInfo, tracer: Any, instruments: Instruments | None) -> None:
        self.call = call
        self.instruments = instruments
        self.started = time.perf_counter() if instruments is not None else 0.0
        context = _suppressed()
        if tracer is None:
            self.span = None
        else:
            attributes: dict[str, Any] = {"globesms.operation": call.operation}
            if call.server_address:
                attributes.update(_server(call.server_address))
            country = call.country
            if country is not None:
                attributes["globesms.country"] = country
            if call.operation == "send_batch":
                attributes["globesms.batch.size"] = call.messages
            self.span = tracer.start_span(f"globesms.{call.operation}",
                                          kind=_trace.SpanKind.CLIENT, attributes=attributes)
            context = _trace.set_span_in_context(self.span, context)
        self.token = _context.attach(context)

    def rate_wait(self, seconds: float) -> None:
        if self.instruments is not None:
            self.instruments.rate_wait.record(seconds, {"globesms.operation": self.call.operation})
        if self.span is not None and seconds > 0:
            self.span.add_event("globesms.rate_wait", {"globesms.wait": seconds})

    def retry(self, error: SmsError, attempt: int, wait: float) -> None:
        attributes: dict[str, Any] = _error_attributes(error)
        if self.instruments is not None:
            self.instruments.retries.add(
                1, {"globesms.operation": self.call.operation, **attributes})
        if self.span is not None:
            attributes.update({"globesms.attempt": attempt, "globesms.retry.wait": wait})
            if error.request_id:
                attributes["globesms.request_id"] = error.request_id
            self.span.add_event("globesms.retry", attributes)

    def succeeded(self, result: Any, attempts: int) -> None:
        operation = self.call.operation
        if operation in VERIFYING:  # a start sent its code; a check has its status
            status = getattr(result, "status", None)
            self._end(status if isinstance(status, str) else "sent", None, None)
            return
        segments = getattr(result, "segments", None)
        message_id = getattr(result, "message_id", None)
        self._end("sent" if operation in SENDING else "ok", attempts, None,
                  request_id=_request_id(result),
                  segments=segments if isinstance(segments, int) else None,
                  message_id=message_id if isinstance(message_id, str) else None)

    def failed(self, error: SmsError, attempts: int) -> None:
        reason = None
        if attempts == 0 and isinstance(error, InvalidRequest):
            outcome = "invalid"
        elif isinstance(error, DeliveryUncertain):
            outcome = "uncertain"
        else:
            outcome = "failed"
        if self.call.operation in VERIFYING:
            if attempts == 0 and (isinstance(error, Throttled)
                                  or error.code == "CountryNotAllowed"):
                outcome, reason = "refused", error.code  # a limit or a country: nothing sent
            self._end(outcome, None, error, reason=reason)
            return
        self._end(outcome, attempts, error, request_id=error.request_id)

    def interrupted(self, error: BaseException, attempts: int) -> None:
        cancelled = isinstance(error, (asyncio.CancelledError, KeyboardInterrupt))
        verifying = self.call.operation in VERIFYING
        self._end("cancelled" if cancelled else "failed", None if verifying else attempts, error)

    def _end(
        self, outcome: str, attempts: int | None, error: BaseException | None, *,
        request_id: str | None = None, segments: int | None = None,
        message_id: str | None = None, reason: str | None = None,
    ) -> None:
        _context.detach(self.token)
        call = self.call
        failure = _error_attributes(error) if error is not None else None
        span = self.span
        if span is not None:
            attributes: dict[str, Any] = {"globesms.outcome": outcome}
            if attempts is not None:
                attributes["globesms.attempts"] = attempts
            if request_id:
                attributes["globesms.request_id"] = request_id
            if segments:
                attributes["globesms.segments"] = segments
            if message_id:
                attributes["globesms.message_id"] = message_id
            if reason:
                attributes["globesms.verify.reason"] = reason
            if failure is not None:
                attributes.update(failure)
                span.set_status(_trace.Status(_trace.StatusCode.ERROR, failure["error.type"]))
            span.set_attributes(attributes)
            span.end()
        instruments = self.instruments
        if instruments is None:
            return
        # Every measurement gets its own dict: an SDK may keep the one it is given.
        operation = call.operation
        labels: dict[str, str] = {"globesms.operation": operation, "globesms.outcome": outcome}
        if failure is not None:
            labels["error.type"] = failure["error.type"]
        instruments.duration.record(time.perf_counter() - self.started, labels)
        country = call.country
        if operation in SENDING:
            if country is not None:
                labels = {**labels, "globesms.country": country}
            if call.messages:
                instruments.messages.add(call.messages, labels)
            if segments:
                instruments.segments.add(segments, _without(labels, "globesms.outcome"))
        elif operation in VERIFYING:
            counted = _without(labels, "globesms.operation")
            if country is not None:
                counted["globesms.country"] = country
            if reason:
                counted["globesms.verify.reason"] = reason
            counter = (instruments.verify_starts if operation == VERIFY_START
                       else instruments.verify_checks)
            counter.add(1, counted)


def _without(labels: Mapping[str, str], key: str) -> dict[str, str]:
    return {name: value for name, value in labels.items() if name != key}
