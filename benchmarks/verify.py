"""Verification throughput per store, Redis round trips, and check_async against bare redis-py.

    python benchmarks/verify.py [--checks 3000] [--starts 300]

- ``check`` and ``start`` per second on MemoryStore, SqliteStore and RedisStore (one thread;
  ``start`` sends through the SDK to an in-process emulator; every limit is on, with budgets
  high enough not to refuse).
- Redis round trips per operation, counted by the server: ``INFO commandstats`` before and after
  (``evalsha`` + ``eval`` are the client's calls; the commands a script runs are counted under
  their own names and listed apart). The Redis is a private ``redis-server`` on a free port, so
  other clients of the machine's Redis cannot disturb the counts.
- ``check_async`` on Redis against a bare ``redis.asyncio`` client running the same CHECK script
  once per check with the same keys and arguments, interleaved, best of three, 32 in flight.
  Target: at least 0.7x.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from globesms import MemoryStore, RedisStore, SqliteStore, VerificationService
from globesms.emulator import Emulator
from globesms.testing import service_for

SECRET = "be9c" * 16
NUMBER = "+44 7700 900123"
SCRIPT_COMMANDS = {"time", "hgetall", "hget", "hset", "del", "pexpireat", "hincrby", "hdel",
                   "exists"}
OPTIONS: dict[str, Any] = {
    "resend_cooldown": None, "max_checks": 10**9, "max_sends": 10**9, "key_max_sends": 10**9,
    "prefix_max_sends": 10**9, "country_max_sends": 10**9, "global_max_sends": 10**9,
    "conversion_gate": "enforce", "conversion_min_starts": 10**9, "report_conversions": False,
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def private_redis() -> tuple[subprocess.Popen[bytes], str]:
    server = shutil.which("redis-server")
    if server is None:
        sys.exit("redis-server is needed (a private instance keeps the counts clean)")
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                sys.exit("the private redis-server did not start")
            time.sleep(0.05)
    client.close()
    return process, url


_STATS: dict[str, redis.Redis] = {}


def command_calls(url: str) -> dict[str, int]:
    """Calls per command so far (one persistent client, so no handshake is counted)."""
    client = _STATS.get(url)
    if client is None:
        client = _STATS[url] = redis.Redis.from_url(url)
        client.ping()
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def per_second(count: int, action: Callable[[int], object]) -> float:
    began = time.perf_counter()
    for i in range(count):
        action(i)
    return count / (time.perf_counter() - began)


def number(i: int) -> str:
    return f"+44 7700 9{i % 100000:05d}"


def bench_store(name: str, verify: VerificationService, emulator: Emulator, checks: int,
                starts: int, url: str | None) -> str:
    verify.start(NUMBER)
    verify.check(NUMBER, "000000")  # warm: scripts loaded, connections open
    before = command_calls(url) if url else {}
    start_rate = per_second(starts, lambda i: verify.start(number(i)))
    middle = command_calls(url) if url else {}
    check_rate = per_second(checks, lambda i: verify.check(NUMBER, "000000"))
    after = command_calls(url) if url else {}
    line = f"{name:7s} check {check_rate:8.0f}/s   start (with emulator) {start_rate:6.0f}/s"
    if url:
        line += "\n" + round_trips("start", before, middle, starts)
        line += "\n" + round_trips("check", middle, after, checks)
    return line


def round_trips(op: str, before: dict[str, int], after: dict[str, int], count: int) -> str:
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    delta["info"] = delta.get("info", 0) - 1  # our own INFO call
    client = sum(v for k, v in delta.items() if k not in SCRIPT_COMMANDS)
    inside = {k: round(v / count, 2) for k, v in sorted(delta.items())
              if k in SCRIPT_COMMANDS and v}
    calls = {k: round(v / count, 2) for k, v in sorted(delta.items())
             if k not in SCRIPT_COMMANDS and v}
    return (f"        redis {op}: {client / count:.2f} round trips per op {calls} "
            f"(target: check 1, start 2); inside the script: {inside}")


async def compare_async(verify: VerificationService, url: str, total: int,
                        in_flight: int = 32) -> str:
    store = verify.store
    assert isinstance(store, RedisStore)
    request, _, _ = verify._check_request(NUMBER, "000000", "default")
    from globesms._verify._redis import CHECK, _check_call

    keys, args = _check_call(request)
    bare = aioredis.Redis.from_url(url, decode_responses=True)
    script = bare.register_script(CHECK)
    physical = [store.key(k) for k in keys]

    async def bare_check() -> object:
        return await script(keys=physical, args=args)

    async def ours() -> object:
        return await verify.check_async(NUMBER, "000000")

    async def run(op: Callable[[], Awaitable[object]]) -> float:
        remaining = total

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await op()

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return total / (time.perf_counter() - began)

    await run(bare_check)
    await run(ours)
    bare_rates, our_rates = [], []
    for _ in range(3):
        bare_rates.append(await run(bare_check))
        our_rates.append(await run(ours))
    await bare.aclose()
    await store.aclose()
    ratio = max(our_rates) / max(bare_rates)
    return (f"check_async on Redis, {in_flight} in flight, best of 3: bare redis-py script "
            f"{max(bare_rates):.0f}/s, VerificationService.check_async {max(our_rates):.0f}/s, "
            f"ratio {ratio:.2f} (target >= 0.7)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checks", type=int, default=3000)
    parser.add_argument("--starts", type=int, default=300)
    options = parser.parse_args()
    cpus = len(__import__("os").sched_getaffinity(0))
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} {platform.machine()} cpus={cpus} "
          f"python={platform.python_version()} redis-py={redis.__version__}")
    process, url = private_redis()
    try:
        with Emulator(access_keys={"bench": "bench-secret"}) as emulator, \
                tempfile.TemporaryDirectory() as tmp:
            sms = service_for(emulator, max_attempts=1)
            stores = {
                "memory": MemoryStore(),
                "sqlite": SqliteStore(Path(tmp) / "bench.sqlite3"),
                "redis": RedisStore(url, prefix="bench:"),
            }
            for name, store in stores.items():
                verify = VerificationService(sms, store=store, secret=SECRET, environ={},
                                             **OPTIONS)
                print(bench_store(name, verify, emulator, options.checks, options.starts,
                                  url if name == "redis" else None), flush=True)
                if name != "redis":
                    verify.close()
            print(asyncio.run(compare_async(verify, url, options.checks)))
            sms.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
