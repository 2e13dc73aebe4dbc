"""How long a message takes to show up in the open SMS inbox page (goal: under 1 s).

Measured in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright): the time
from the official SDK's SendMessageToGlobe call returning to the message element (with its
``data-code``) being in the page, which receives it over server-sent events, no reload.

Usage: python benchmarks/inbox_latency.py [--messages 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

from alibabacloud_dysmsapi20180501 import models
from alibabacloud_dysmsapi20180501.client import Client
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_util.models import RuntimeOptions
from playwright.sync_api import sync_playwright

from globesms.emulator import Emulator

KEY, SECRET = "bench", "bench-secret"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=30)
    args = parser.parse_args()
    latencies: list[float] = []
    with Emulator(access_keys={KEY: SECRET}) as emu, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page()
        page.goto(emu.inbox_url)
        page.wait_for_selector("#status.live")
        client = Client(Config(access_key_id=KEY, access_key_secret=SECRET,
                               endpoint=emu.endpoint, protocol=emu.protocol))
        for n in range(args.messages):
            code = f"{100000 + n}"
            request = models.SendMessageToGlobeRequest(to="447700900123", message=f"Code {code}")
            body = client.send_message_to_globe_with_options(request, RuntimeOptions()).body
            sent = time.perf_counter()
            page.wait_for_selector(
                f'[data-message-id="{body.message_id}"] [data-code="{code}"]', timeout=10_000
            )
            latencies.append(time.perf_counter() - sent)
        browser.close()
    latencies.sort()
    print(f"messages: {len(latencies)} (inbox holding 1..{len(latencies)})")
    print(f"median: {statistics.median(latencies) * 1000:.0f} ms")
    print(f"p95: {latencies[int(len(latencies) * 0.95) - 1] * 1000:.0f} ms")
    print(f"max: {latencies[-1] * 1000:.0f} ms (goal: < 1000 ms)")


if __name__ == "__main__":
    main()
