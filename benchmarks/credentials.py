"""How long a send takes to fail when no credential can be found, raw SDK vs globesms.

A credential provider that hangs is stood in for by ALIBABA_CLOUD_CREDENTIALS_URI pointing at a
loopback server that accepts connections and never answers (the real ECS metadata address is
never contacted: ALIBABA_CLOUD_ECS_METADATA_DISABLED=true). Each side runs in a fresh process,
because the credential library reads its environment at import.

    python benchmarks/credentials.py
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading

CALLS = 3

RAW = """
import json, time
from alibabacloud_credentials.client import Client as Credentials
from alibabacloud_dysmsapi20180501.client import Client
from alibabacloud_dysmsapi20180501 import models
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_util.models import RuntimeOptions
client = Client(Config(credential=Credentials(), endpoint="127.0.0.1:9", protocol="http"))
times = []
for _ in range(CALLS):
    start = time.perf_counter()
    try:
        client.send_message_to_globe_with_options(
            models.SendMessageToGlobeRequest(to="447700900123", message="x"), RuntimeOptions())
    except Exception:
        pass
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""

OURS = """
import json, time
from globesms import ConfigurationError, Settings, SmsService
service = SmsService(Settings(endpoint="127.0.0.1:9", protocol="http"))
times = []
for _ in range(CALLS):
    start = time.perf_counter()
    try:
        service.send("+44 7700 900123", "x")
    except ConfigurationError:
        pass
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def _hanging_server() -> tuple[str, threading.Event]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def run() -> None:
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue
        for conn in held:
            conn.close()
        sock.close()

    threading.Thread(target=run, daemon=True).start()
    return f"http://127.0.0.1:{sock.getsockname()[1]}/", stop


def _measure(code: str, uri: str) -> tuple[list[float], str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ALIBABA_CLOUD_", "GLOBESMS_")) and "proxy" not in k.lower()}
    env.update(ALIBABA_CLOUD_ECS_METADATA_DISABLED="true", ALIBABA_CLOUD_CREDENTIALS_URI=uri,
               HOME=tempfile.mkdtemp())
    result = subprocess.run([sys.executable, "-c", code.replace("CALLS", str(CALLS))],
                            capture_output=True, text=True, env=env, timeout=120, check=True)
    return json.loads(result.stdout.splitlines()[-1]), result.stderr


def main() -> None:
    uri, stop = _hanging_server()
    try:
        raw, raw_err = _measure(RAW, uri)
        ours, ours_err = _measure(OURS, uri)
    finally:
        stop.set()
    print(f"{'call':>4} {'raw SDK s':>10} {'globesms s':>11}")
    for i, (a, b) in enumerate(zip(raw, ours, strict=True), 1):
        print(f"{i:>4} {a:>10.3f} {b:>11.3f}")
    print(f"first failure: globesms {ours[0]:.2f} s (target <= 2.5 s); "
          f"later: {max(ours[1:]):.3f} s (target <= 0.1 s)")
    print(f"total for {CALLS} calls: raw {sum(raw):.2f} s, globesms {sum(ours):.2f} s, "
          f"ratio {sum(raw) / sum(ours):.1f}x")
    print(f"stderr lines: raw {len(raw_err.splitlines())}, globesms {len(ours_err.splitlines())}")


if __name__ == "__main__":
    main()
