"""HTTP client spans from auto-instrumented requests, urllib3 and aiohttp never carry the number or
the text of a globesms send made inside ``suppress_http_spans()``.

The services here are built with ``otel=False``: the OpenTelemetry hook (tests/test_otel.py)
suppresses the HTTP spans of every call by itself, and these tests show the bare mechanism.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the OpenTelemetry SDK (test extra) is missing")

from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from globesms._otel import available, suppress_http_spans
from globesms.emulator import Emulator
from globesms.testing import service_for

NUMBER = "+44 7700 900123"
DIGITS = "447700900123"
TEXT = "Your code is 483920. Do not share it."
CODE = "483920"


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    """requests, urllib3 and aiohttp instrumented into an in-memory exporter for this module."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    instrumentors: list[Any] = [
        RequestsInstrumentor(), URLLib3Instrumentor(), AioHttpClientInstrumentor()
    ]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)
    try:
        yield memory
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
        provider.shutdown()


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    """The exporter, emptied before the test."""
    exporter.clear()
    return exporter


def _leaks(finished: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> list[str]:
    """Every span name, attribute or event value that holds the number, the text or the code."""
    needles = (DIGITS, CODE, quote(TEXT), TEXT.replace(" ", "+"), "Your code")
    found: list[str] = []
    for span in finished:
        values = [span.name, *map(str, (span.attributes or {}).values())]
        for event in span.events:
            values.extend(map(str, (event.attributes or {}).values()))
        found.extend(f"{span.name}: {value}" for value in values
                     if any(needle in value for needle in needles))
    return found


def test_otel_api_is_available() -> None:
    """With the test extra installed, the otel plumbing sees opentelemetry-api."""
    assert available()


def test_without_suppression_the_http_spans_leak(
    spans: InMemorySpanExporter, emulator: Emulator
) -> None:
    """Control: the instrumentations record the number and text of a sync send (the leak)."""
    with service_for(emulator, otel=False) as service:
        service.send(NUMBER, TEXT)
    finished = spans.get_finished_spans()
    assert finished, "the requests/urllib3 instrumentation recorded nothing"
    assert _leaks(finished)


def test_sync_send_inside_suppression_records_no_http_span(
    spans: InMemorySpanExporter, emulator: Emulator
) -> None:
    """A sync send inside suppress_http_spans() leaves no HTTP span, so nothing leaks."""
    with service_for(emulator, otel=False) as service, suppress_http_spans():
        service.send(NUMBER, TEXT)
    assert len(emulator.messages) == 1
    assert spans.get_finished_spans() == ()


def test_async_send_without_suppression_leaks(
    spans: InMemorySpanExporter, emulator: Emulator
) -> None:
    """Control: the aiohttp instrumentation records the number and text of an async send."""

    async def send() -> None:
        async with service_for(emulator, otel=False) as service:
            await service.send_async(NUMBER, TEXT)

    asyncio.run(send())
    assert _leaks(spans.get_finished_spans())


def test_async_send_inside_suppression_records_no_http_span(
    spans: InMemorySpanExporter, emulator: Emulator
) -> None:
    """An async send inside suppress_http_spans() leaves no aiohttp span, so nothing leaks."""

    async def send() -> None:
        async with service_for(emulator, otel=False) as service:
            with suppress_http_spans():
                await service.send_async(NUMBER, TEXT)

    asyncio.run(send())
    assert len(emulator.messages) == 1
    assert spans.get_finished_spans() == ()


def test_suppression_ends_with_the_block(
    spans: InMemorySpanExporter, emulator: Emulator
) -> None:
    """After the block, HTTP instrumentation records again (the context is restored)."""
    with service_for(emulator, otel=False) as service:
        with suppress_http_spans():
            service.send(NUMBER, TEXT)
        assert spans.get_finished_spans() == ()
        service.send(NUMBER, TEXT)
    assert spans.get_finished_spans()


def test_without_opentelemetry_it_is_a_no_op() -> None:
    """With opentelemetry not importable, suppress_http_spans() still works and does nothing."""
    script = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from globesms._otel import available, suppress_http_spans\n"
        "with suppress_http_spans():\n"
        "    pass\n"
        "print(available())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error"}, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
