"""OpenTelemetry: the spans and metrics of every call, sync and async, read back through the SDK's
in-memory span exporter and metric reader, with the requests, urllib3 and aiohttp
instrumentations installed; and nothing exported ever holds a number, a text or a code."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the OpenTelemetry SDK (test extra) is missing")

import requests
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from globesms import (
    DeliveryUncertain,
    InvalidRecipient,
    Settings,
    SmsService,
    Throttled,
    VerificationService,
)
from globesms._credentials import static_credential
from globesms._hooks import LogHook, default_hooks
from globesms._otel import _SUPPRESS_ALL_KEY, _SUPPRESS_HTTP_KEY, OtelHook
from globesms._verify._stores import MemoryStore
from globesms.emulator import Accept, Delay, Drop, Emulator, HttpError
from support import DIGITS, KEY_ID, KEY_SECRET, NUMBER, TEXT, FakeTime

CODE = "483920"
VERIFY_SECRET = "otel-test-verification-secret-0123456789"
MAINLAND = "+86 138 0013 8000"
MAINLAND_DIGITS = "8613800138000"
BATCH = ["+44 7700 900001", "+44 7700 900002", "+33 6 12 34 56 78"]
BATCH_TEXT = "Batch text 5566778"
SYNC_AND_ASYNC = pytest.mark.parametrize("mode", ["sync", "async"])


@pytest.fixture(scope="module")
def tracing() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """One tracer provider for the module, with requests, urllib3 and aiohttp instrumented
    into the same in-memory exporter as globesms's spans (so a leaked HTTP span would show)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentors: list[Any] = [
        RequestsInstrumentor(), URLLib3Instrumentor(), AioHttpClientInstrumentor()
    ]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)
    try:
        yield provider, exporter
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
        provider.shutdown()


@dataclass
class Otel:
    """What a test reads back: finished spans and collected metric points."""

    provider: TracerProvider
    exporter: InMemorySpanExporter
    meters: MeterProvider
    reader: InMemoryMetricReader
    time: FakeTime

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        found = [span for span in self.spans() if span.name == name]
        assert len(found) == 1, [span.name for span in self.spans()]
        return found[0]

    def metrics(self) -> dict[str, list[tuple[dict[str, Any], Any, str]]]:
        """Every point by metric name: (attributes, point, unit)."""
        out: dict[str, list[tuple[dict[str, Any], Any, str]]] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        out.setdefault(metric.name, []).append(
                            (dict(point.attributes or {}), point, metric.unit))
        return out

    def value(self, name: str, **attributes: Any) -> float:
        """Sum of a counter's points (or a histogram's count) whose attributes include these."""
        wanted = {key.replace("__", "."): value for key, value in attributes.items()}
        total = 0.0
        for labels, point, _unit in self.metrics().get(name, []):
            if all(labels.get(key) == value for key, value in wanted.items()):
                total += getattr(point, "value", None) or getattr(point, "count", 0)
        return total


@pytest.fixture
def otel(tracing: tuple[TracerProvider, InMemorySpanExporter]) -> Iterator[Otel]:
    """The module's exporter emptied, a fresh meter provider with an in-memory reader."""
    provider, exporter = tracing
    exporter.clear()
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    yield Otel(provider, exporter, meters, reader, FakeTime())
    meters.shutdown()


@pytest.fixture
def make(emulator: Emulator, otel: Otel) -> Callable[..., SmsService]:
    """Services for the emulator with fake time and the OTel hook on the test's providers."""

    def factory(**overrides: Any) -> SmsService:
        settings = Settings.load(environ={}, endpoint=emulator.endpoint, protocol="http",
                                 **overrides)
        hook = OtelHook(tracer_provider=otel.provider, meter_provider=otel.meters)
        return SmsService(settings, credential=static_credential(KEY_ID, KEY_SECRET),
                          hooks=[LogHook(), hook], sleep=otel.time.sleep,
                          async_sleep=otel.time.async_sleep, clock=otel.time.clock)

    return factory


def call(service: SmsService, mode: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """``service.name(...)`` or ``await service.name_async(...)`` on a fresh event loop."""
    if mode == "sync":
        return getattr(service, name)(*args, **kwargs)

    async def go() -> Any:
        try:
            return await getattr(service, f"{name}_async")(*args, **kwargs)
        finally:
            await service.aclose()

    return asyncio.run(go())


def api_requests(emulator: Emulator) -> list[Any]:
    return [request for request in emulator.requests if request.action]


# -- spans and metrics per outcome --------------------------------------------------------------


@SYNC_AND_ASYNC
def test_a_send_has_one_client_span_and_its_metrics(
    emulator: Emulator, make: Callable[..., SmsService], otel: Otel, mode: str
) -> None:
    """A send: one CLIENT span globesms.send with the documented attributes and no status, no
    HTTP span, and one message, its segments and its duration in the metrics."""
    receipt = call(make(), mode, "send", NUMBER, TEXT)
    assert [span.name for span in otel.spans()] == ["globesms.send"]
    span = otel.span("globesms.send")
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    host, port = emulator.endpoint.rsplit(":", 1)
    assert dict(span.attributes or {}) == {
        "globesms.operation": "send", "globesms.outcome": "sent", "globesms.attempts": 1,
        "globesms.country": "44", "globesms.segments": 1,
        "globesms.request_id": receipt.request_id, "globesms.message_id": receipt.message_id,
        "server.address": host, "server.port": int(port),
    }
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "globesms"
    metrics = otel.metrics()
    assert [labels for labels, _, _ in metrics["globesms.messages"]] == [
        {"globesms.operation": "send", "globesms.outcome": "sent", "globesms.country": "44"}]
    assert otel.value("globesms.messages") == 1
    assert otel.value("globesms.segments", globesms__country="44") == 1
    [(labels, point, unit)] = metrics["globesms.call.duration"]
    assert (labels, unit, point.count) == (
        {"globesms.operation": "send", "globesms.outcome": "sent"}, "s", 1)
    assert 0 < point.sum < 10
    assert {name: unit for name, points in metrics.items() for _, _, unit in points} == {
        "globesms.messages": "{message}", "globesms.segments": "{segment}",
        "globesms.call.duration": "s"}


@SYNC_AND_ASYNC
def test_a_long_text_counts_its_segments(
    make: Callable[..., SmsService], otel: Otel, mode: str
) -> None:
    """A 200-character GSM text is two segments on the span and in globesms.segments."""
    call(make(), mode, "send", NUMBER, "x" * 200)
    assert (otel.span("globesms.send").attributes or {})["globesms.segments"] == 2
    assert otel.value("globesms.segments") == 2


@SYNC_AND_ASYNC
def test_retries_are_span_events_and_counted_by_code(
    emulator: Emulator, make: Callable[..., SmsService], otel: Otel, mode: str
) -> None:
    """A 503 then a throttling answer then success: two globesms.retry events with class, code
    and wait, attempts 3, and globesms.retries by code."""
    emulator.script(DIGITS, HttpError(503, "ServiceUnavailable"),
                    HttpError(400, "Throttling.User", retry_after_ms=700), Accept())
    receipt = call(make(), mode, "send", NUMBER, TEXT)
    assert receipt.attempts == 3
    span = otel.span("globesms.send")
    assert (span.attributes or {})["globesms.attempts"] == 3
    assert span.status.status_code is StatusCode.UNSET
    events = [(event.name, dict(event.attributes or {})) for event in span.events]
    assert [name for name, _ in events] == ["globesms.retry", "globesms.retry"]
    first, second = (attributes for _, attributes in events)
    assert (first["error.type"], first["globesms.error.code"], first["globesms.attempt"]) == (
        "ServiceUnavailable", "ServiceUnavailable", 1)
    assert (second["error.type"], second["globesms.error.code"], second["globesms.attempt"]) == (
        "Throttled", "Throttling.User", 2)
    assert second["globesms.retry.wait"] == pytest.approx(0.7)
    assert otel.value("globesms.retries", globesms__error__code="Throttling.User",
                      globesms__operation="send") == 1
    assert otel.value("globesms.retries", globesms__error__code="ServiceUnavailable") == 1
    assert otel.value("globesms.messages", globesms__outcome="sent") == 1


@SYNC_AND_ASYNC
def test_throttling_that_outlasts_the_attempts_is_an_error_span(
    emulator: Emulator, make: Callable[..., SmsService], otel: Otel, mode: str
) -> None:
    """Throttled on every attempt: status ERROR, error class and code, outcome failed, and the
    message counted as failed with error.type Throttled."""
    emulator.script(DIGITS, *[HttpError(429, "Throttling.User", retry_after_s=1)] * 3)
    with pytest.raises(Throttled) as caught:
        call(make(), mode, "send", NUMBER, TEXT)
    span = otel.span("globesms.send")
    attributes = dict(span.attributes or {})
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "Throttled"
    assert (attributes["globesms.outcome"], attributes["error.type"],
            attributes["globesms.error.class"], attributes["globesms.error.code"],
            attributes["globesms.attempts"]) == ("failed", "Throttled", "Throttled",
                                                 "Throttling.User", 3)
    assert attributes["globesms.request_id"] == caught.value.request_id
    assert len(span.events) == 2
    assert otel.value("globesms.messages", globesms__outcome="failed",
                      error__type="Throttled", globesms__country="44") == 1
    assert otel.value("globesms.retries", globesms__error__code="Throttling.User") == 2
    assert otel.value("globesms.call.duration", globesms__outcome="failed",
                      error__type="Throttled") == 1


@SYNC_AND_ASYNC
def test_an_uncertain_send_is_reported_uncertain(
    emulator: Emulator, make: Callable[..., SmsService], otel: Otel, mode: str
) -> None:
    """A dropped answer: DeliveryUncertain, one attempt, outcome uncertain, status ERROR."""
    emulator.script(DIGITS, Drop(after_read=True), Accept())
    with pytest.raises(DeliveryUncertain):
        call(make(), mode, "send", NUMBER, TEXT)
    span = otel.span("globesms.send")
    attributes = dict(span.attributes or {})
    assert span.status.status_code is StatusCode.ERROR
    assert (attributes["globesms.outcome"], attributes["error.type"],
            attributes["globesms.attempts"]) == ("uncertain", "DeliveryUncertain", 1)
    assert span.events == ()
    assert otel.value("globesms.messages", globesms__outcome="uncertain") == 1
    assert "globesms.retries" not in otel.metrics()


@SYNC_AND_ASYNC
def test_a_call_refused_by_validation_has_its_span(
    emulator: Emulator, make: Callable[..., SmsService], otel: Otel, mode: str
) -> None:
    """A +86 number for send: no request, but a span with outcome invalid, attempts 0, the
    error code and the country, and the message counted invalid."""
    with pytest.raises(InvalidRecipient) as caught:
        call(make(), mode, "send", MAINLAND, TEXT)
    assert api_requests(emulator) == []
    span = otel.span("globesms.send")
    attributes = dict(span.attributes or {})
    assert span.status.status_code is StatusCode.ERROR
    assert (attributes["globesms.outcome"], attributes["globesms.attempts"],
            attributes["globesms.error.code"], attributes["globesms.country"]) == (
        "invalid", 0, caught.value.code, "86")
    assert otel.value("globesms.messages", globesms__outcome="invalid",
                      error__type="InvalidRecipient", globesms__country="86") == 1


@SYNC_AND_ASYNC
def test_a_batch_refused_as_a_whole_has_its_span(
    make: Callable[..., SmsService], otel: Otel, mode: str
) -> None:
    """An OTP batch is refused before any request: a globesms.send_batch span, outcome invalid;
    no message is counted (the batch's size is unknown to the metrics)."""
    with pytest.raises(Exception, match="OTP"):
        call(make(), mode, "send_batch", BATCH, BATCH_TEXT, message_type="OTP")
    attributes = dict(otel.span("globesms.send_batch").attributes or {})
    assert (attributes["globesms.outcome"], attributes["globesms.error.code"]) == (
        "invalid", "InvalidType")
    assert otel.value("globesms.messages") == 0
    assert otel.value("globesms.call.duration", globesms__outcome="invalid") == 1


@SYNC_AND_ASYNC
def test_the_rate_governor_wait_is_measured(
    make: Callable[..., SmsService], otel: Otel, mode: str
) -> None:
    """With max_rate=1 the second send waits about a second for its slot: globesms.governor.wait
    records both attempts (0 s and ~1 s) and the second span has a globesms.rate_wait event."""
    service = make(max_rate=1.0)

    async def twice() -> None:
        async with service:
            await service.send_async(NUMBER, TEXT)
            await service.send_async(NUMBER, TEXT)

    if mode == "sync":
        service.send(NUMBER, TEXT)
        service.send(NUMBER, TEXT)
    else:
        asyncio.run(twice())
    [(labels, point, unit)] = otel.metrics()["globesms.governor.wait"]
    assert (labels, unit, point.count) == ({"globesms.operation": "send"}, "s", 2)
    assert 0.5 < point.sum <= 1.05  # one slot at 1/s, 3 % margin and 5 ms grid included
    waits = [event for span in otel.spans() for event in span.events
             if event.name == "globesms.rate_wait"]
    assert len(waits) == 1
    assert 0.5 < (waits[0].attributes or {})["globesms.wait"] <= 1.05


@SYNC_AND_ASYNC
def test_every_operation_has_its_span(
    emulator: Emulator, make: Callable[..., SmsService], otel: Otel, mode: str
) -> None:
    """status, send_batch, send_template and both conversion reports: one span each, named
    after the operation; a batch counts its numbers and carries its size."""
    service = make()
    receipt = service.send(NUMBER, TEXT)
    call(make(), mode, "status", receipt.message_id)
    call(make(), mode, "send_batch", BATCH, BATCH_TEXT)
    call(make(), mode, "send_template", MAINLAND, "SMS_1", sign_name="Acme",
         params={"code": CODE})
    call(make(), mode, "report_conversion", receipt.message_id, to=NUMBER)
    call(make(), mode, "report_conversion_rate", 0.3)
    assert sorted(span.name for span in otel.spans()) == sorted([
        "globesms.send", "globesms.status", "globesms.send_batch", "globesms.send_template",
        "globesms.report_conversion", "globesms.report_conversion_rate"])
    outcomes = {span.name: (span.attributes or {})["globesms.outcome"] for span in otel.spans()}
    assert outcomes["globesms.status"] == "ok"
    assert outcomes["globesms.send_template"] == "sent"
    batch = dict(otel.span("globesms.send_batch").attributes or {})
    assert batch["globesms.batch.size"] == 3
    assert batch["globesms.request_id"]
    assert "globesms.country" not in batch
    assert (otel.span("globesms.send_template").attributes or {})["globesms.country"] == "86"
    assert otel.value("globesms.messages", globesms__operation="send_batch",
                      globesms__outcome="sent") == 3
    assert otel.value("globesms.messages", globesms__operation="status") == 0
    assert otel.value("globesms.call.duration", globesms__operation="report_conversion_rate",
                      globesms__outcome="ok") == 1


# -- verification ---------------------------------------------------------------------------------


def verifier(sms: SmsService, **options: Any) -> VerificationService:
    """A verification service on a memory store; conversion reports off unless asked for."""
    return VerificationService(sms, store=MemoryStore(), secret=VERIFY_SECRET, environ={},
                               **{"report_conversions": False, **options})


def vcall(service: VerificationService, mode: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """``service.name(...)`` or its ``_async`` twin on a fresh event loop."""
    if mode == "sync":
        return getattr(service, name)(*args, **kwargs)
    return asyncio.run(getattr(service, f"{name}_async")(*args, **kwargs))


@SYNC_AND_ASYNC
def test_a_verification_has_start_and_check_spans_and_conversion_metrics(
    emulator: Emulator, make: Callable[..., SmsService], otel: Otel, mode: str
) -> None:
    """start, a wrong code, the right code: globesms.verify.start (the send its child),
    globesms.verify.check twice with the check's status as outcome; starts and checks counted
    per country, so approved checks over sent starts gives the conversion."""
    verification = verifier(make())
    vcall(verification, mode, "start", NUMBER)
    code = emulator.latest_code(DIGITS)
    assert code
    wrong = "000000" if code != "000000" else "111111"
    assert not vcall(verification, mode, "check", NUMBER, wrong)
    assert vcall(verification, mode, "check", NUMBER, code)
    start, send = otel.span("globesms.verify.start"), otel.span("globesms.send")
    assert send.parent is not None and start.context is not None
    assert send.parent.span_id == start.context.span_id
    assert dict(start.attributes or {}) == {
        "globesms.operation": "verify.start", "globesms.outcome": "sent",
        "globesms.country": "44"}
    checks = [span for span in otel.spans() if span.name == "globesms.verify.check"]
    assert [(span.attributes or {})["globesms.outcome"] for span in checks] == [
        "wrong_code", "approved"]
    assert all(span.status.status_code is StatusCode.UNSET for span in otel.spans())
    metrics = otel.metrics()
    assert [(labels, unit) for labels, _, unit in metrics["globesms.verify.starts"]] == [
        ({"globesms.outcome": "sent", "globesms.country": "44"}, "{start}")]
    approved = otel.value("globesms.verify.checks", globesms__outcome="approved",
                          globesms__country="44")
    started = otel.value("globesms.verify.starts", globesms__outcome="sent",
                         globesms__country="44")
    assert (approved, started) == (1, 1)
    assert otel.value("globesms.verify.checks", globesms__outcome="wrong_code") == 1
    assert {unit for _, _, unit in metrics["globesms.verify.checks"]} == {"{check}"}
    assert otel.value("globesms.call.duration", globesms__operation="verify.check") == 2


@SYNC_AND_ASYNC
def test_verification_refusals_carry_their_reason(
    emulator: Emulator, make: Callable[..., SmsService], otel: Otel, mode: str
) -> None:
    """A second start within the cooldown and a start to a country not allowed: spans with
    outcome refused, the reason, status ERROR, no send; starts counted by reason."""
    verification = verifier(make(), allowed_countries=["GB"])
    vcall(verification, mode, "start", NUMBER)
    with pytest.raises(Throttled):
        vcall(verification, mode, "start", NUMBER)
    with pytest.raises(InvalidRecipient):
        vcall(verification, mode, "start", "+33 6 12 34 56 78")
    assert len(emulator.messages) == 1
    starts = [span for span in otel.spans() if span.name == "globesms.verify.start"]
    refused = [dict(span.attributes or {}) for span in starts
               if (span.attributes or {})["globesms.outcome"] == "refused"]
    assert [(a["globesms.verify.reason"], a["globesms.country"], a["error.type"])
            for a in refused] == [("ResendCooldown", "44", "Throttled"),
                                  ("CountryNotAllowed", "33", "InvalidRecipient")]
    assert [span.status.status_code for span in starts] == [
        StatusCode.UNSET, StatusCode.ERROR, StatusCode.ERROR]
    assert otel.value("globesms.verify.starts", globesms__outcome="refused",
                      globesms__verify__reason="ResendCooldown") == 1
    assert otel.value("globesms.verify.starts", globesms__outcome="refused",
                      globesms__verify__reason="CountryNotAllowed", globesms__country="33") == 1


@SYNC_AND_ASYNC
def test_a_verification_whose_send_fails_is_failed_not_refused(
    emulator: Emulator, make: Callable[..., SmsService], otel: Otel, mode: str
) -> None:
    """Throttling by the provider on every attempt: the start is failed (the send's error), not
    a refusal by a local limit, and the send's span has the retries."""
    emulator.script(DIGITS, *[HttpError(429, "Throttling.User", retry_after_s=1)] * 3)
    with pytest.raises(Throttled):
        vcall(verifier(make()), mode, "start", NUMBER)
    attributes = dict(otel.span("globesms.verify.start").attributes or {})
    assert (attributes["globesms.outcome"], attributes["globesms.error.code"]) == (
        "failed", "Throttling.User")
    assert "globesms.verify.reason" not in attributes
    assert len(otel.span("globesms.send").events) == 2
    assert otel.value("globesms.verify.starts", globesms__outcome="failed") == 1


# -- context: parenting, suppression, restoration -----------------------------------------------


@SYNC_AND_ASYNC
def test_the_span_is_a_child_of_the_callers_and_the_context_is_restored(
    make: Callable[..., SmsService], otel: Otel, mode: str
) -> None:
    """The globesms span's parent is the caller's current span; after the call the caller's
    context is back: its span current, HTTP instrumentation not suppressed."""
    tracer = otel.provider.get_tracer("app")
    service = make()

    async def send_async() -> tuple[Any, Any]:
        async with service:
            await service.send_async(NUMBER, TEXT)
        return trace.get_current_span(), suppression()

    with tracer.start_as_current_span("request") as parent:
        if mode == "sync":
            service.send(NUMBER, TEXT)
            after = trace.get_current_span(), suppression()
        else:
            after = asyncio.run(send_async())
    assert after == (parent, (None, None))
    span = otel.span("globesms.send")
    assert span.parent is not None
    assert span.parent.span_id == parent.get_span_context().span_id
    assert span.context is not None
    assert span.context.trace_id == parent.get_span_context().trace_id


def suppression() -> tuple[object, object]:
    """The HTTP and the general instrumentation-suppression values of the current context."""
    return otel_context.get_value(_SUPPRESS_HTTP_KEY), otel_context.get_value(_SUPPRESS_ALL_KEY)


class ContextProbe:
    """A hook after the OTel hook: what the context holds while a call runs."""

    def __init__(self) -> None:
        self.seen: list[tuple[object, object, object]] = []

    def start(self, call: Any) -> Any:
        self.seen.append((*suppression(), trace.get_current_span().is_recording()))
        return LogHook().start(call)


@SYNC_AND_ASYNC
def test_during_a_call_http_and_all_instrumentation_are_suppressed(
    emulator: Emulator, otel: Otel, mode: str
) -> None:
    """While a call runs its context suppresses HTTP instrumentation and, for aiohttp
    instrumentations before 0.60b0 (which only read that key), all instrumentation; the call's
    span is current. Without an SDK the same two keys are set."""
    for providers in ({"tracer_provider": otel.provider, "meter_provider": otel.meters}, {}):
        probe = ContextProbe()
        settings = Settings(endpoint=emulator.endpoint, protocol="http")
        service = SmsService(settings, credential=static_credential(KEY_ID, KEY_SECRET),
                             hooks=[OtelHook(**providers), probe])
        call(service, mode, "send", NUMBER, TEXT)
        assert probe.seen == [(True, True, bool(providers))]


def test_a_cancelled_send_ends_its_span_and_restores_the_context(
    emulator: Emulator, make: Callable[..., SmsService], otel: Otel
) -> None:
    """A send_async cancelled while the provider has not answered: the span ends with outcome
    cancelled and status ERROR, and the cancelled task's context is its own again."""
    emulator.script(DIGITS, Delay(5.0))
    service = make()

    async def sender() -> tuple[object, object]:
        # swallowed: the task goes on, with its own context
        with contextlib.suppress(asyncio.CancelledError):
            await service.send_async(NUMBER, TEXT)
        return trace.get_current_span(), suppression()

    async def main() -> tuple[object, object]:
        task = asyncio.create_task(sender())
        for _ in range(500):  # bounded: at most ~5 s
            if api_requests(emulator):
                task.cancel()
                break
            await asyncio.sleep(0.01)
        result = await task
        await service.aclose()
        return result

    assert asyncio.run(main()) == (trace.INVALID_SPAN, (None, None))
    span = otel.span("globesms.send")
    attributes = dict(span.attributes or {})
    assert span.status.status_code is StatusCode.ERROR
    assert (attributes["globesms.outcome"], attributes["error.type"],
            attributes["globesms.attempts"]) == ("cancelled", "CancelledError", 1)
    assert otel.value("globesms.messages", globesms__outcome="cancelled") == 1


def test_an_exception_that_is_not_an_sms_error_ends_the_span_too(
    emulator: Emulator, otel: Otel
) -> None:
    """A bug surfacing inside a sync call (here the injected sleep raising during a retry wait)
    ends the span (outcome failed, error.type of the exception, ERROR) and restores the context."""
    emulator.script(DIGITS, HttpError(503, "ServiceUnavailable"), Accept())

    def broken_sleep(seconds: float) -> None:
        raise RuntimeError("sleep failed")

    settings = Settings(endpoint=emulator.endpoint, protocol="http")
    service = SmsService(settings, credential=static_credential(KEY_ID, KEY_SECRET),
                         hooks=[OtelHook(tracer_provider=otel.provider,
                                         meter_provider=otel.meters)], sleep=broken_sleep)
    with pytest.raises(RuntimeError):
        service.send(NUMBER, TEXT)
    assert suppression() == (None, None)
    span = otel.span("globesms.send")
    attributes = dict(span.attributes or {})
    assert span.status.status_code is StatusCode.ERROR
    assert (attributes["globesms.outcome"], attributes["error.type"],
            attributes["globesms.attempts"]) == ("failed", "RuntimeError", 1)
    assert [event.name for event in span.events] == ["globesms.retry"]
    assert otel.value("globesms.messages", globesms__outcome="failed",
                      error__type="RuntimeError") == 1


def test_the_instrumentations_are_live(
    emulator: Emulator, tracing: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    """Control: a plain requests call outside globesms is recorded by the instrumentation, so
    the absence of HTTP spans in the other tests is globesms's doing."""
    _provider, exporter = tracing
    exporter.clear()
    requests.get(f"http://{emulator.endpoint}/?To={DIGITS}", timeout=5)
    assert any("GET" in span.name for span in exporter.get_finished_spans())


def test_without_an_sdk_only_the_http_spans_are_suppressed(
    emulator: Emulator, tracing: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    """With the API's default providers (no SDK configured globally) the hook records nothing,
    yet HTTP instrumentations holding their own provider still record no span of a send."""
    _provider, exporter = tracing
    exporter.clear()
    hook = OtelHook()
    assert (hook.tracer(), hook.instruments()) == (None, None)
    settings = Settings(endpoint=emulator.endpoint, protocol="http")
    with SmsService(settings, credential=static_credential(KEY_ID, KEY_SECRET),
                    hooks=[hook]) as service:
        service.send(NUMBER, TEXT)
    assert len(emulator.messages) == 1
    assert exporter.get_finished_spans() == ()


# -- nothing personal anywhere ------------------------------------------------------------------


NEEDLES = (
    DIGITS, "7700900123", "900123", "+44****0123", MAINLAND_DIGITS, "0013 8000", CODE, TEXT,
    quote(TEXT), "Your code", "Batch text", "5566778", "7700900001", "612345678", KEY_SECRET,
    KEY_ID, "ACS3-HMAC", "Signature", "Authorization",
)


def _exported_strings(otel: Otel) -> list[str]:
    values: list[str] = []
    for span in otel.spans():
        values.append(span.name)
        values.extend(f"{key}={value}" for key, value in (span.attributes or {}).items())
        values.append(str(span.status.description))
        for event in span.events:
            values.append(event.name)
            values.extend(f"{key}={value}" for key, value in (event.attributes or {}).items())
    for name, points in otel.metrics().items():
        values.append(name)
        for labels, _point, _unit in points:
            values.extend(f"{key}={value}" for key, value in labels.items())
    return values


@SYNC_AND_ASYNC
def test_no_export_holds_a_number_a_text_a_code_or_a_credential(
    emulator: Emulator, make: Callable[..., SmsService], otel: Otel, mode: str
) -> None:
    """Every outcome and operation and a verification (with its conversion report), HTTP
    instrumentations on: no span name, attribute, status, event or metric attribute holds a
    number (full or masked), text, verification code or key."""
    emulator.script(DIGITS, HttpError(503, "ServiceUnavailable"), Accept(),
                    HttpError(429, "Throttling.User", retry_after_s=1), Accept(),
                    Drop(after_read=True))
    service = make()
    receipt = call(make(), mode, "send", NUMBER, TEXT)
    call(make(), mode, "send", NUMBER, TEXT)
    with pytest.raises(DeliveryUncertain):
        call(make(), mode, "send", NUMBER, TEXT)
    with pytest.raises(InvalidRecipient):
        call(make(), mode, "send", MAINLAND, TEXT)
    call(make(), mode, "send_batch", BATCH, BATCH_TEXT)
    call(make(), mode, "send_template", MAINLAND, "SMS_1", sign_name="Acme",
         params={"code": CODE})
    call(make(), mode, "report_conversion", receipt.message_id, to=NUMBER)
    call(make(), mode, "status", receipt.message_id)
    call(service, mode, "report_conversion_rate", 0.3)
    verification = verifier(make(), report_conversions=True)
    other = "+44 7700 900777"
    vcall(verification, mode, "start", other)
    code = emulator.latest_code("447700900777")
    assert code
    vcall(verification, mode, "check", other, "000000" if code != "000000" else "111111")
    vcall(verification, mode, "check", other, code)
    verification.close()  # sends the queued conversion report (one more span)
    exported = _exported_strings(otel)
    needles = (*NEEDLES, code, "7700900777", "900777")
    assert len(otel.spans()) == 14
    assert sum(len(span.events) for span in otel.spans()) == 2
    assert any(value.startswith("globesms.country=") for value in exported)
    assert len(exported) > 100
    leaks = [value for value in exported if any(needle in value for needle in needles)]
    assert leaks == []
    assert all(span.name.startswith("globesms.") for span in otel.spans())


# -- switched on by default, off by a setting ---------------------------------------------------


def test_default_hooks_follow_the_otel_setting() -> None:
    """The default hooks are logs plus OpenTelemetry; otel=False (GLOBESMS_OTEL=0) leaves logs."""
    assert [type(hook) for hook in default_hooks(Settings())] == [LogHook, OtelHook]
    off = Settings.load(environ={"GLOBESMS_OTEL": "0"})
    assert off.otel is False
    assert [type(hook) for hook in default_hooks(off)] == [LogHook]


_APP = textwrap.dedent("""
    import json, sys
    from globesms import Settings, SmsService
    from globesms.testing import static_credential

    # globesms imported and the service built before the application configures OpenTelemetry.
    service = SmsService(Settings.load(endpoint=sys.argv[1], protocol="http"),
                         credential=static_credential(sys.argv[2], sys.argv[3]))
    from opentelemetry import metrics, trace
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    RequestsInstrumentor().instrument()
    service.send("+44 7700 900123", "Your code is 483920")
    data = reader.get_metrics_data()
    names = sorted({m.name for r in (data.resource_metrics if data else [])
                    for s in r.scope_metrics for m in s.metrics})
    print(json.dumps({"spans": [s.name for s in exporter.get_finished_spans()],
                      "metrics": names}))
""")


@pytest.mark.parametrize(("otel_env", "spans", "metrics"), [
    ("", ["globesms.send"], ["globesms.call.duration", "globesms.messages",
                             "globesms.segments"]),
    ("0", ["POST"], ["http.client.duration"]),
])
def test_an_sdk_configured_after_import_is_used_with_no_opt_in(
    emulator: Emulator, otel_env: str, spans: list[str], metrics: list[str]
) -> None:
    """In an application that sets its global providers after importing globesms and building
    the service, the next send is traced and measured with no globesms call; GLOBESMS_OTEL=0
    turns that off (and the application's own requests span of the send then shows)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("GLOBESMS_", "OTEL_"))}
    if otel_env:
        env["GLOBESMS_OTEL"] = otel_env
    result = subprocess.run(
        [sys.executable, "-c", _APP, emulator.endpoint, KEY_ID, KEY_SECRET],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert [name.split()[0] for name in out["spans"]] == spans
    assert out["metrics"] == metrics


def test_a_provider_named_by_the_environment_is_loaded() -> None:
    """With OTEL_PYTHON_TRACER_PROVIDER naming the SDK's provider (loaded lazily by the API on
    the first lookup), the hook finds it although no code set a global provider."""
    script = ("from globesms._otel import OtelHook\n"
              "print(type(OtelHook().tracer()).__module__.startswith('opentelemetry.sdk'))\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env["OTEL_PYTHON_TRACER_PROVIDER"] = "sdk_tracer_provider"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_an_api_without_bucket_advice_still_gets_histograms() -> None:
    """opentelemetry-api before 1.30 has no explicit_bucket_boundaries_advisory: the histograms
    are created without it (the SDK's default buckets) instead of failing."""
    from globesms._otel import Instruments

    created: list[tuple[str, str, str]] = []

    class OldMeter:
        def create_counter(self, name: str, unit: str = "", description: str = "") -> str:
            created.append(("counter", name, unit))
            return name

        def create_histogram(self, name: str, unit: str = "", description: str = "") -> str:
            created.append(("histogram", name, unit))
            return name

    instruments = Instruments(OldMeter())
    assert (instruments.duration, instruments.rate_wait) == (
        "globesms.call.duration", "globesms.governor.wait")
    assert ("histogram", "globesms.call.duration", "s") in created
    assert len(created) == 7


_NEW_USER = textwrap.dedent("""
    import asyncio, json, sys
    from opentelemetry import metrics, trace
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    # The application's OpenTelemetry set-up, as its docs say: global providers, and the three
    # HTTP client instrumentations on.
    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    for instrumentor in (RequestsInstrumentor(), URLLib3Instrumentor(),
                         AioHttpClientInstrumentor()):
        instrumentor.instrument()

    from globesms import DeliveryUncertain, SmsService, Throttled, VerificationService
    from globesms.emulator import Accept, Drop, Emulator, HttpError
    from globesms.testing import service_for

    TEXT = sys.argv[1]
    with Emulator(access_keys={"id": "secret-0123456789abcdef"}) as emulator:
        emulator.script("447700900102", HttpError(429, "Throttling.User", retry_after_ms=10),
                        Accept())
        emulator.script("447700900103",
                        *[HttpError(429, "Throttling.User", retry_after_ms=10)] * 3)
        emulator.script("447700900104", Drop(after_read=True))
        sms = service_for(emulator)
        sms.send("+44 7700 900101", TEXT)
        try:
            sms.send("+44 7700 900103", TEXT)
        except Throttled:
            pass

        async def async_sends():
            async with service_for(emulator) as other:
                await other.send_async("+44 7700 900102", TEXT)
                try:
                    await other.send_async("+44 7700 900104", TEXT)
                except DeliveryUncertain:
                    pass

        asyncio.run(async_sends())
        with VerificationService(sms, store=None, environ={
                "GLOBESMS_VERIFY_SECRET": "new-user-verification-secret-0123456789",
                "GLOBESMS_VERIFY_STORE": "memory://"}) as verification:
            verification.start("+44 7700 900105")
            code = emulator.latest_code("447700900105")
            verification.check("+44 7700 900105", "000000" if code != "000000" else "111111")
            verification.check("+44 7700 900105", code)
    spans = [json.loads(span.to_json()) for span in exporter.get_finished_spans()]
    print(json.dumps({"code": code, "spans": spans,
                      "metrics": json.loads(reader.get_metrics_data().to_json())}))
""")


def test_as_a_new_user_nothing_exported_holds_a_number_text_or_code() -> None:
    """An application with the SDK and the requests, urllib3 and aiohttp instrumentations set
    up globally: a send, a throttled send (retried, then given up), an uncertain send and a
    verification give the documented spans and metrics, no HTTP span, and the whole export,
    serialised (resource, names, attributes, events, statuses, metric points), holds no number,
    text, code or secret."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("GLOBESMS_", "OTEL_"))}
    result = subprocess.run([sys.executable, "-c", _NEW_USER, TEXT], capture_output=True,
                            text=True, timeout=180, env=env, check=False)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    code = out["code"]
    assert code and code.isdigit()
    names = sorted(span["name"] for span in out["spans"])
    assert names == sorted(["globesms.send"] * 5 + ["globesms.verify.start"]
                           + ["globesms.verify.check"] * 2 + ["globesms.report_conversion"])
    dump = json.dumps(out["spans"]) + json.dumps(out["metrics"])
    for expected in ("Throttling.User", "globesms.retry", '"uncertain"', '"approved"',
                     "globesms.verify.starts", "globesms.verify.checks", "globesms.retries",
                     "globesms.call.duration", '"globesms.country": "44"'):
        assert expected in dump, expected
    assert "http.client" not in dump
    for needle in ("4477009001", "7700 9001", "900101", "900105", TEXT, quote(TEXT),
                   "Your code", code, "secret-0123456789abcdef", "new-user-verification"):
        assert needle not in dump, needle
