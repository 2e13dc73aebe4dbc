"""Requests per second the emulator serves to the official Python SDK (sync, many threads).

Usage: python benchmarks/emulator_throughput.py [--threads 16] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import threading
import time

from alibabacloud_dysmsapi20180501 import models
from alibabacloud_dysmsapi20180501.client import Client
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_util.models import RuntimeOptions

from globesms.emulator import Emulator


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "DEBUG"):
        os.environ.pop(name, None)
    with Emulator(access_keys={"bench": "bench-secret"}) as emu:
        client = Client(Config(access_key_id="bench", access_key_secret="bench-secret",
                               endpoint=emu.endpoint, protocol="http"))
        request = models.SendMessageToGlobeRequest(to="85212345678", message="benchmark")
        runtime = RuntimeOptions()
        counts = [0] * args.threads
        errors = [0] * args.threads
        stop = threading.Event()

        def worker(index: int) -> None:
            while not stop.is_set():
                try:
                    client.send_message_to_globe_with_options(request, runtime)
                    counts[index] += 1
                except Exception:
                    errors[index] += 1

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        stop.wait(args.seconds)
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        total = sum(counts)
        print(f"cpus={os.cpu_count()} threads={args.threads} seconds={elapsed:.2f} "
              f"requests={total} errors={sum(errors)} rps={total / elapsed:.0f} "
              f"stored={len(emu.messages)}")


if __name__ == "__main__":
    main()
