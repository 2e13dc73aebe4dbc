"""The send-rate governor at the cap: request starts per 1-second window at the endpoint.

Starts the emulator in its own process (``globesms emulator``, a fresh one per run), then runs
1 or 4 sender processes, each with its own ``SmsService`` and many concurrent ``send_async``
workers (demand well above the rate), for a few seconds, and prints per run:

* the aggregate rate seen at the endpoint (sends accepted in the run's seconds / seconds);
* the highest count of request starts in any sliding 1-second window at the endpoint (the
  emulator's acceptance times, start-up included);
* CPU per send of the senders, and of the pacing (paced minus unpaced, same process count).

Governors compared: ``today`` (the exact per-process token bucket globesms had until now),
``local`` (the new in-process governor: lag margin and wake grid), ``shared`` (through Redis,
one budget for every process) and ``unpaced`` (no governor, the CPU baseline).

    python benchmarks/governor.py [--rates 500,2000] [--seconds 6] [--redis URL] [--outage]

``--outage`` runs the issue's acceptance scenario instead: four processes share max_rate=200
through a private redis-server for 10 s; the server is stopped at 4 s and restarted at 7 s.
With ``--service`` the senders only set ``rate_store`` and ``max_rate`` and let ``SmsService``
pace (once the service builds its governors with ``build_governor``).
Writes ``benchmarks/governor.png`` (starts per 100 ms against the cap). Needs matplotlib for the
plot (a benchmark-only dependency) and ``redis-server`` for ``--outage``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KEY, SECRET = "bench", "bench-secret-0123456789"
TO, TEXT = "+447700900123", "Your code is 483920"
HERE = Path(__file__).resolve().parent


# -- the emulator and Redis ---------------------------------------------------------------------

@contextmanager
def emulator(delay: float) -> Iterator[str]:
    """A fresh emulator in its own process; yields its endpoint."""
    # The cyclic garbage collector is off in the emulator: its pauses (tens of ms every few
    # thousand requests) would hold requests back and bunch their acceptance times, which a real
    # endpoint's arrival times do not show.
    command = [sys.executable, "-c", "import gc, sys; gc.disable(); from globesms._cli import "
               "main; sys.exit(main(sys.argv[1:]))", "emulator", "--key", f"{KEY}:{SECRET}",
               "--delay", str(delay), "--max-records", "1000000"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    fields: dict[str, str] = {}
    for line in proc.stdout:
        if line.strip() == "ready":
            break
        name, _, value = line.partition(":")
        fields[name.strip()] = value.strip()
    try:
        yield fields["endpoint"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def accepted_times(endpoint: str) -> list[tuple[float, str]]:
    """The emulator's acceptance time (epoch seconds) and number of every message, sorted."""
    with urllib.request.urlopen(f"http://{endpoint}/_emulator/messages", timeout=60) as answer:
        messages = json.load(answer)["messages"]
    return sorted((float(m["accepted_at"]), str(m["to"])) for m in messages)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OwnRedis:
    """A private redis-server (the outage scenario stops and restarts it)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("--outage needs the redis-server binary")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL)
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        for _ in range(500):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise SystemExit("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


# -- one sender process -------------------------------------------------------------------------

def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Send as fast as ``workers`` tasks can for ``seconds`` behind the chosen governor."""
    from globesms import Settings, SmsError, SmsService
    from globesms._governor import LocalGovernor, RateGovernor, build_governor, pace_async
    from globesms.testing import static_credential

    warnings: list[str] = []

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            warnings.append(getattr(record, "event", record.levelname))

    logging.getLogger("globesms.governor").addHandler(Count(logging.INFO))
    logging.getLogger("globesms.governor").setLevel(logging.INFO)
    kind, rate = spec["governor"], spec["rate"]
    settings = Settings(endpoint=spec["endpoint"], protocol="http", max_attempts=1,
                        max_in_flight=spec["workers"], rate_store=spec.get("store"),
                        rate_instances=spec.get("instances", 1), max_rate=rate)
    service = SmsService(Settings(endpoint=spec["endpoint"], protocol="http", max_attempts=1,
                                  max_in_flight=spec["workers"]),
                         credential=static_credential(KEY, SECRET))
    governor: Any = None
    today: RateGovernor | None = None
    if kind == "today":
        today = RateGovernor(rate, clock=time.monotonic)
    elif kind == "local":
        governor = LocalGovernor(rate)
    elif kind == "shared":
        governor = build_governor(settings, operation="SendMessageToGlobe", account=KEY,
                                  prefix=spec["prefix"])
    elif kind == "service":  # the service's own wiring: rate_store and max_rate in its settings
        service = SmsService(settings, credential=static_credential(KEY, SECRET))
    sent = failed = leaked = 0

    async def worker(stop_at: float) -> None:
        nonlocal sent, failed, leaked
        while time.monotonic() < stop_at:
            try:
                if today is not None:
                    wait = today.reserve(time.monotonic() + 15.0)
                elif governor is not None:  # as the service does: a late slot is retaken
                    await pace_async(governor, lambda: 15.0)
                    wait = 0.0
                else:
                    wait = 0.0
                if wait:
                    await asyncio.sleep(wait)
                if time.monotonic() >= stop_at:
                    return
                await service.send_async(spec["to"], TEXT)
                sent += 1
            except SmsError:
                failed += 1
            except Exception:  # anything else would reach the caller: count it
                leaked += 1

    print("ready", flush=True)
    start_at = float(sys.stdin.readline())

    async def main() -> float:
        delay = start_at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        cpu = time.process_time()
        stop_at = time.monotonic() + spec["seconds"]
        await asyncio.gather(*[worker(stop_at) for _ in range(spec["workers"])])
        used = time.process_time() - cpu
        await service.aclose()
        if governor is not None and hasattr(governor, "aclose"):
            await governor.aclose()
        return used

    cpu = asyncio.run(main())
    if governor is not None:
        governor.close()
    return {"sent": sent, "failed": failed, "leaked": leaked, "cpu": cpu, "events": warnings}


# -- a run of several processes -----------------------------------------------------------------

@dataclass
class Run:
    governor: str
    processes: int
    rate: float
    seconds: float
    starts: list[float] = field(default_factory=list)
    senders: list[str] = field(default_factory=list)
    start_at: float = 0.0
    children: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(c["sent"] for c in self.children)

    @property
    def cpu_per_send(self) -> float:
        return sum(c["cpu"] for c in self.children) / max(1, self.sent)

    def in_run(self) -> list[float]:
        end = self.start_at + self.seconds
        return [s for s in self.starts if self.start_at <= s < end]

    def aggregate(self) -> float:
        return len(self.in_run()) / self.seconds

    def max_window(self) -> int:
        return self.busiest()[0]

    def busiest(self) -> tuple[int, float]:
        """The most starts in any sliding 1-second window, and when that window began."""
        starts, best, low, at = self.starts, 0, 0, 0.0
        for high, start in enumerate(starts):
            while starts[low] <= start - 1.0:
                low += 1
            if high - low + 1 > best:
                best, at = high - low + 1, starts[low] - self.start_at
        return best, at


def spawn(specs: list[dict[str, Any]], started: Any) -> list[dict[str, Any]]:
    """Start the senders, let them all begin at one moment, and collect their figures."""
    procs = [subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for spec in specs]
    for proc in procs:  # every child imported and built before the clock starts
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    start_at = time.time() + 0.3
    started(start_at)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(f"{start_at!r}\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def run(governor: str, processes: int, rate: float, seconds: float, *, workers: int,
        store: str | None, delay: float, events: list[tuple[float, Any]] | None = None) -> Run:
    """One run of ``processes`` senders behind ``governor`` against a fresh emulator."""
    result = Run(governor, processes, rate, seconds)
    prefix = f"globesms-bench-rate:{secrets.token_hex(6)}"
    with emulator(delay) as endpoint:
        spec = {"governor": governor, "rate": rate, "seconds": seconds, "workers": workers,
                "endpoint": endpoint, "store": store if governor in ("shared", "service") else None,
                "instances": processes, "prefix": prefix}

        def started(start_at: float) -> None:
            result.start_at = start_at
            if events:
                import threading

                def timeline() -> None:
                    for at, action in events:
                        time.sleep(max(0.0, start_at + at - time.time()))
                        action()

                threading.Thread(target=timeline, daemon=True).start()

        specs = [{**spec, "to": TO[:-2] + f"{index:02d}"}
                 for index in range(processes)]
        result.children = spawn(specs, started)
        accepted = accepted_times(endpoint)
        result.starts = [at for at, _ in accepted]
        result.senders = [to[-2:] for _, to in accepted]
    if store and governor == "shared":
        import redis

        client = redis.Redis.from_url(store)
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
        client.close()
    return result


def line(run: Run, baseline: Run | None) -> str:
    pacing = ""
    if baseline is not None and run.governor != "unpaced":
        extra = (run.cpu_per_send - baseline.cpu_per_send) * 1e6
        pacing = f", pacing {extra:+.0f} µs/send"
    failed = sum(c["failed"] for c in run.children)
    leaked = sum(c["leaked"] for c in run.children)
    cap = f"max_rate {run.rate:.0f}" if run.governor != "unpaced" else "no max_rate"
    return (f"  {run.governor:8} x{run.processes} {cap:>14}: aggregate {run.aggregate():7.1f}/s "
            f"({run.aggregate() / run.rate * 100:5.1f} % of {run.rate:.0f}), max starts in a "
            f"1-s window {run.max_window():5d} (at {run.busiest()[1]:+.1f} s), "
            f"CPU {run.cpu_per_send * 1e6:4.0f} µs/send"
            f"{pacing}, failed {failed}, leaked {leaked}")


# -- the plot -------------------------------------------------------------------------------------

def plot(runs: list[tuple[str, Run]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 1, figsize=(10, 2.6 * len(runs)), sharex=True)
    axes = list(axes) if len(runs) > 1 else [axes]
    for ax, (title, run) in zip(axes, runs, strict=True):
        bins = int(run.seconds * 10) + 10
        counts = [0] * bins
        for start in run.starts:
            index = int((start - run.start_at) * 10)
            if 0 <= index < bins:
                counts[index] += 1
        xs = [i / 10 for i in range(bins)]
        ax.step(xs, counts, where="post", label="request starts per 100 ms (at the endpoint)")
        ax.axhline(run.rate / 10, color="red", linestyle="--", label=f"cap ({run.rate:.0f}/s)")
        ax.set_title(f"{title}: max {run.max_window()} starts in any 1-s window, "
                     f"aggregate {run.aggregate():.0f}/s", fontsize=10)
        ax.set_ylabel("starts / 100 ms")
        ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("seconds since the run started")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


# -- main -----------------------------------------------------------------------------------------

def outage(args: argparse.Namespace) -> None:
    """The issue's acceptance run: four processes share 200/s through Redis for 10 s; then the
    same with Redis stopped at 4 s and restarted at 7 s."""
    kind = "service" if args.service else "shared"
    print("acceptance run: 4 processes x 32 send_async tasks, 10 s, max_rate 200, private Redis")
    server = OwnRedis()
    server.start()
    try:
        steady = run(kind, 4, 200.0, 10.0, workers=32, store=server.url, delay=args.delay)
        print(line(steady, None))
        steady_ok = steady.max_window() <= 200 and steady.aggregate() >= 190
        print(f"  targets (no 1-s window > 200, aggregate >= 190/s): "
              f"{'met' if steady_ok else 'NOT met'}")
        result = run(kind, 4, 200.0, 10.0, workers=32, store=server.url, delay=args.delay,
                     events=[(4.0, server.stop), (7.0, server.start)])
    finally:
        server.stop()
    print("  Redis stopped at 4 s, restarted at 7 s:")
    print(line(result, None))
    per_second = [sum(1 for s in result.starts if result.start_at + i <= s < result.start_at + i
                      + 1) for i in range(10)]
    print(f"  starts per second: {per_second}")
    during = {sender for start, sender in zip(result.starts, result.senders, strict=True)
              if result.start_at + 4.5 <= start < result.start_at + 7.0}
    if os.environ.get("GOVERNOR_DUMP"):
        Path(os.environ["GOVERNOR_DUMP"]).write_text(json.dumps(
            {"start_at": result.start_at, "starts": result.starts, "senders": result.senders}))
    events = [e for c in result.children for e in c["events"]]
    leaked = sum(c["leaked"] for c in result.children)
    print(f"  events in the senders: {events.count('rate.fallback')} x rate.fallback "
          f"(WARNING), {events.count('rate.restored')} x rate.restored (INFO); processes "
          f"sending while Redis was down: {len(during)} of 4; exceptions leaked to callers: "
          f"{leaked}")
    outage_ok = (len(during) == 4 and leaked == 0 and events.count("rate.fallback") == 4
                 and events.count("rate.restored") == 4)
    print(f"  targets (every process keeps sending, one WARNING and one INFO each, nothing "
          f"leaked): {'met' if outage_ok else 'NOT met'}")
    plot([("4 processes sharing 200/s", steady),
          ("the same, Redis stopped at 4 s and restarted at 7 s", result)],
         HERE / "governor-outage.png")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="500,2000")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--workers", type=int, default=128, help="send_async tasks per process")
    parser.add_argument("--delay", type=float, default=0.0, help="emulator answer delay (s)")
    parser.add_argument("--redis", default=os.environ.get("GLOBESMS_TEST_REDIS_URL",
                                                          "redis://127.0.0.1:6379/0"))
    parser.add_argument("--rounds", type=int, default=3, help="one-process rounds per rate")
    parser.add_argument("--outage", action="store_true")
    parser.add_argument("--service", action="store_true",
                        help="with --outage: pace through SmsService's own wiring of rate_store")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        os.environ.pop(name, None)
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {platform.machine()} cpus={os.cpu_count()} "
          f"python={platform.python_version()} load={os.getloadavg()[0]:.2f} "
          f"seconds={args.seconds} workers/process={args.workers} delay={args.delay}")
    if args.outage:
        outage(args)
        return
    shown: list[tuple[str, Run]] = []
    verdicts = []
    common: dict[str, Any] = {"workers": args.workers, "store": args.redis, "delay": args.delay}
    for rate in [float(r) for r in args.rates.split(",")]:
        print(f"max_rate {rate:.0f}/s:")
        # One process: rounds of unpaced / today / local / shared, interleaved; the pacing CPU
        # is the median over rounds of (paced - unpaced of the same round).
        costs: dict[str, list[float]] = {"today": [], "local": [], "shared": []}
        for _ in range(args.rounds):
            base = run("unpaced", 1, rate, args.seconds, **common)
            print(line(base, None))
            for kind in ("today", "local", "shared"):
                result = run(kind, 1, rate, args.seconds, **common)
                print(line(result, base))
                costs[kind].append(result.cpu_per_send - base.cpu_per_send)
                if kind != "today":
                    verdicts.append((f"{rate:.0f}/s x1 {kind}", result.max_window() <= rate,
                                     result.aggregate() >= 0.95 * rate))
        today_cost = statistics.median(costs["today"])
        local_cost = statistics.median(costs["local"])
        print(f"  pacing CPU per send (median of {args.rounds}): today {today_cost * 1e6:.0f} µs, "
              f"new local {local_cost * 1e6:.0f} µs ({local_cost / today_cost:.2f}x, target "
              f"<= 0.5x), shared {statistics.median(costs['shared']) * 1e6:.0f} µs")
        base = run("unpaced", 4, rate, args.seconds, **common)
        print(line(base, None))
        shared = run("shared", 4, rate, args.seconds, **common)
        print(line(shared, base))
        today = run("today", 4, rate, args.seconds, **common)
        print(line(today, base))
        verdicts.append((f"{rate:.0f}/s x4 shared", shared.max_window() <= rate,
                         shared.aggregate() >= 0.95 * rate))
        if not shown:
            shown = [(f"shared governor, 4 processes, max_rate {rate:.0f}", shared),
                     (f"per-process buckets (today), 4 processes, max_rate {rate:.0f} each",
                      today)]
    print("targets (no 1-s window over max_rate, aggregate >= 95 %):")
    for name, window_ok, rate_ok in verdicts:
        print(f"  {name}: window {'met' if window_ok else 'NOT met'}, "
              f"aggregate {'met' if rate_ok else 'NOT met'}")
    if shown:
        plot(shown, HERE / "governor.png")
        print(f"plot: {HERE / 'governor.png'}")


if __name__ == "__main__":
    main()
