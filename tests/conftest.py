"""Shared fixtures. The environment is scrubbed (by ``support``) before anything imports the SDK.

The credential library reads its environment once, at import, so the scrub happens here, at
module import, before ``globesms`` (and through it ``alibabacloud_credentials``) is imported.
"""

from __future__ import annotations

import http.server
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

# isort: off
import support  # noqa: F401 - first: scrubs the environment before globesms imports the SDK
# isort: on

import pytest

from globesms import Settings, SmsService
from globesms._credentials import static_credential
from globesms.emulator import Emulator
from support import KEY_ID, KEY_SECRET, PROXY_VARS, FakeTime, ServiceFactory


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Strip variables a developer's shell could set, and run from an empty directory."""
    for name in list(os.environ):
        if name.startswith("GLOBESMS_") or name in PROXY_VARS:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A running emulator that accepts the test key pair."""
    with Emulator(access_keys={KEY_ID: KEY_SECRET}) as emu:
        yield emu


@pytest.fixture
def fake_time() -> FakeTime:
    """Injected sleep and clock: tests never sleep for real."""
    return FakeTime()


@pytest.fixture
def make_service(emulator: Emulator, fake_time: FakeTime) -> Iterator[ServiceFactory]:
    """Build SmsService instances pointed at the emulator, with fake time, closed afterwards."""
    built: list[SmsService] = []

    def factory(secret: str = KEY_SECRET, key_id: str = KEY_ID, **overrides: Any) -> SmsService:
        settings = Settings.load(
            environ={}, endpoint=emulator.endpoint, protocol="http", **overrides
        )
        service = SmsService(
            settings,
            credential=static_credential(key_id, secret),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
        )
        built.append(service)
        return service

    yield factory
    for service in built:
        service.close()


@pytest.fixture
def redirector(emulator: Emulator) -> Iterator[str]:
    """An endpoint that answers every request with a 307 to the emulator."""
    target = f"http://{emulator.endpoint}/"

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(307)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def _restore_globesms_logger() -> Iterator[None]:
    """Undo logging changes a test (such as the CLI) made to the globesms logger."""
    logger = logging.getLogger("globesms")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:] = saved[0]
    logger.level, logger.propagate = saved[1], saved[2]


#: Tests that need a real Redis or a real browser, by their node id: counted so the run's log
#: shows they ran (a skipped one in CI would be a silent hole; CI makes them fail instead).
_SERVICES = {"Redis": ("redis", "sqlite-and-redis"), "browser": ("test_inbox_browser.py",)}
_RAN: dict[str, dict[str, int]] = {name: {} for name in _SERVICES}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Tally outcomes of the Redis and browser tests."""
    if report.when != "call" and not (report.when == "setup" and report.outcome != "passed"):
        return
    node = report.nodeid.lower()
    for name, needles in _SERVICES.items():
        if any(needle in node for needle in needles):
            _RAN[name][report.outcome] = _RAN[name].get(report.outcome, 0) + 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line per service: how many of its tests passed, failed and skipped."""
    for name, outcomes in _RAN.items():
        counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items())) or "none"
        terminalreporter.write_line(f"globesms: tests needing a real {name}: {counts}")
