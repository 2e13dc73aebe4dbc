"""What the OpenTelemetry hook costs, measured side by side in one run.

Four services send to the emulator (in its own process, over HTTP) in interleaved rounds, in a
different order each round:

* ``off``: logs only, what a service has without ``opentelemetry-api`` or with ``otel=false``;
* ``off again``: the same, a second time: its ratio to ``off`` is the noise of the measurement;
* ``no SDK``: the default hooks with ``opentelemetry-api`` installed and no SDK configured (the
  global providers are the API's defaults), so the hook only suppresses HTTP spans;
* ``SDK``: the hook on an SDK tracer provider (batch span processor, discarding exporter) and
  meter provider (in-memory reader): a span and its metrics per send.

It prints CPU per send, sync and async (50 in flight), and each variant's ratio to ``off``; and
the hook's own cost per call (start and end, no I/O) in microseconds.

    python benchmarks/otel.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
import timeit
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from performance import KEY, SECRET, TEXT, TO, Endpoint, _bounded, emulator

from globesms import Settings, SmsService
from globesms._hooks import CallInfo, Hook, LogHook, default_hooks
from globesms._otel import OtelHook
from globesms.testing import static_credential


class Discard(SpanExporter):
    """An exporter that drops what it is given (the export itself is not globesms's cost)."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def sdk_hook() -> tuple[OtelHook, Callable[[], None]]:
    """A hook on SDK providers of its own (the globals stay unset for the ``no SDK`` side)."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Discard(), max_queue_size=1 << 17))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])

    def shutdown() -> None:
        tracer_provider.shutdown()
        meter_provider.shutdown()

    return OtelHook(tracer_provider=tracer_provider, meter_provider=meter_provider), shutdown


def services(endpoint: Endpoint, sdk: OtelHook) -> dict[str, SmsService]:
    settings = Settings(endpoint=endpoint.address, protocol=endpoint.protocol)
    hooks: dict[str, list[Hook]] = {
        "off": [LogHook()], "off again": [LogHook()], "no SDK": default_hooks(settings),
        "SDK": [LogHook(), sdk]}
    assert [type(hook) for hook in hooks["no SDK"]] == [LogHook, OtelHook]
    return {name: SmsService(settings, credential=static_credential(KEY, SECRET), hooks=chosen)
            for name, chosen in hooks.items()}


def rotated(sides: dict[str, SmsService], turn: int) -> list[tuple[str, SmsService]]:
    """The sides in a different order each round, so no side always runs after the same one."""
    items = list(sides.items())
    shift = turn % len(items)
    return items[shift:] + items[:shift]


def sync_cpu(sides: dict[str, SmsService], rounds: int, per_round: int) -> dict[str, float]:
    """CPU seconds per send of each service: the median of interleaved rounds (one round hit
    by another process's burst does not move it)."""
    for sms in sides.values():  # warm every pool
        for _ in range(50):
            sms.send("+" + TO, TEXT)
    times: dict[str, list[float]] = {name: [] for name in sides}
    for turn in range(rounds):
        for name, sms in rotated(sides, turn):
            start = time.process_time()
            for _ in range(per_round):
                sms.send("+" + TO, TEXT)
            times[name].append((time.process_time() - start) / per_round)
    return {name: statistics.median(values) for name, values in times.items()}


def async_cpu(sides: dict[str, SmsService], rounds: int, per_round: int,
              concurrency: int) -> dict[str, float]:
    """CPU seconds per send_async of each service: the median of interleaved rounds on one
    loop."""

    async def main() -> dict[str, float]:
        for sms in sides.values():
            await _bounded(concurrency * 2, concurrency, lambda sms=sms: sms.send_async(
                "+" + TO, TEXT))
        times: dict[str, list[float]] = {name: [] for name in sides}
        for turn in range(rounds):
            for name, sms in rotated(sides, turn):
                start = time.process_time()
                failures = await _bounded(per_round, concurrency,
                                          lambda sms=sms: sms.send_async("+" + TO, TEXT))
                times[name].append((time.process_time() - start) / per_round)
                assert failures == 0, (name, failures)
        for sms in sides.values():
            await sms.aclose()
        return {name: statistics.median(values) for name, values in times.items()}

    return asyncio.run(main())


def hook_cost(hooks: dict[str, Hook], number: int) -> dict[str, float]:
    """Seconds per call of ``start`` then ``succeeded`` (what the driver does per call)."""
    info = CallInfo("send", "SendMessageToGlobe", "+44****0123", "127.0.0.1:8080")

    class Receipt:
        request_id, message_id, segments = "REQ-1", "MSG-1", 1

    receipt: Any = Receipt()

    def once(hook: Hook) -> None:
        hook.start(info).succeeded(receipt, 1)

    return {name: min(timeit.repeat(lambda hook=hook: once(hook), number=number, repeat=5))
            / number for name, hook in hooks.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer sends (a smoke run)")
    args = parser.parse_args()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "DEBUG"):
        os.environ.pop(name, None)
    assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
    assert type(metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider"
    scale = 0.2 if args.quick else 1.0
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {platform.machine()} cpus={os.cpu_count()} "
          f"python={platform.python_version()}")
    sdk, shutdown = sdk_hook()
    with emulator(tls=False, delay=0.0) as plain:
        sync = sync_cpu(services(plain, sdk), rounds=12, per_round=max(50, int(300 * scale)))
        async_ = async_cpu(services(plain, sdk), rounds=12,
                           per_round=max(200, int(1500 * scale)), concurrency=50)
    costs = hook_cost({"no SDK": OtelHook(), "SDK": sdk}, number=int(20000 * scale))
    shutdown()
    for label, cpu in (("sync", sync), ("async, 50 in flight", async_)):
        print(f"{label} CPU per send (HTTP): " + ", ".join(
            f"{name} {value * 1e6:.0f} us" for name, value in cpu.items())
            + f"; off again / off {cpu['off again'] / cpu['off']:.3f} (the noise), "
              f"no SDK / off {cpu['no SDK'] / cpu['off']:.3f}, "
              f"SDK / off {cpu['SDK'] / cpu['off']:.3f}")
    print("OTel hook per call (start + succeeded, no I/O): " + ", ".join(
        f"{name} {value * 1e6:.2f} us" for name, value in costs.items()))


if __name__ == "__main__":
    main()
