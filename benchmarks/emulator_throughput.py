"""Requests per second the emulator serves to the official Python SDK (sync, many threads).

Measured two ways in one run: the emulator in the same process as the client (as in the test
suite, sharing one interpreter), and the emulator as a separate process started with
``globesms emulator`` (its own capacity, as services in other languages and the benchmarks of
issue 4 see it).

Usage: python benchmarks/emulator_throughput.py [--threads 16] [--seconds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

from alibabacloud_dysmsapi20180501 import models
from alibabacloud_dysmsapi20180501.client import Client
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_util.models import RuntimeOptions

from globesms.emulator import Emulator

KEY, SECRET = "bench", "bench-secret"


@contextlib.contextmanager
def in_process() -> Iterator[str]:
    with Emulator(access_keys={KEY: SECRET}) as emu:
        yield emu.endpoint


@contextlib.contextmanager
def separate_process() -> Iterator[str]:
    command = [sys.executable, "-m", "globesms._cli", "emulator", "--key", f"{KEY}:{SECRET}"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        endpoint = ""
        for line in proc.stdout:
            if line.startswith("endpoint:"):
                endpoint = line.split(":", 1)[1].strip()
            if line.strip() == "ready":
                break
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def measure(endpoint: str, threads: int, seconds: float) -> tuple[int, int, float]:
    client = Client(Config(access_key_id=KEY, access_key_secret=SECRET, endpoint=endpoint,
                           protocol="http", max_idle_conns=threads))
    request = models.SendMessageToGlobeRequest(to="85212345678", message="benchmark")
    runtime = RuntimeOptions()
    counts = [0] * threads
    errors = [0] * threads
    stop = threading.Event()

    def worker(index: int) -> None:
        while not stop.is_set():
            try:
                client.send_message_to_globe_with_options(request, runtime)
                counts[index] += 1
            except Exception:
                errors[index] += 1

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for thread in workers:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in workers:
        thread.join()
    return sum(counts), sum(errors), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "DEBUG"):
        os.environ.pop(name, None)
    print(f"cpus={os.cpu_count()} threads={args.threads} seconds={args.seconds}")
    for label, where in (("same process", in_process), ("separate process", separate_process)):
        with where() as endpoint:
            total, errors, elapsed = measure(endpoint, args.threads, args.seconds)
        print(f"{label:>16}: requests={total} errors={errors} rps={total / elapsed:.0f}")


if __name__ == "__main__":
    main()
