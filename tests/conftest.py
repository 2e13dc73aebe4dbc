"""Shared fixtures. The environment is scrubbed before anything imports the SDK.

The credential library reads its environment once, at import, so the scrub happens here, at
module import, before ``globesms`` (and through it ``alibabacloud_credentials``) is imported.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

_SCRUB_PREFIXES = ("GLOBESMS_", "ALIBABA_CLOUD_")
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy",
               "https_proxy", "all_proxy", "no_proxy", "DEBUG")
#: Test-kit variables (GLOBESMS_TEST_REDIS_URL, GLOBESMS_REQUIRE_REDIS), kept before the scrub.
TEST_ENV = {name: value for name, value in os.environ.items()
            if name.startswith(("GLOBESMS_TEST_", "GLOBESMS_REQUIRE_"))}
for _name in list(os.environ):
    if _name.startswith(_SCRUB_PREFIXES) or _name in _PROXY_VARS:
        del os.environ[_name]
# Never let a test probe the real ECS metadata address, and never read a developer's profiles.
os.environ["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"
os.environ["ALIBABA_CLOUD_CLI_PROFILE_DISABLED"] = "true"
os.environ["HOME"] = tempfile.mkdtemp(prefix="globesms-test-home-")

import pytest  # noqa: E402

from globesms import Settings, SmsService  # noqa: E402
from globesms._credentials import static_credential  # noqa: E402
from globesms.emulator import Emulator  # noqa: E402

KEY_ID = "testKeyId"
KEY_SECRET = "testKeySecret-9f8e7d6c5b4a"
NUMBER = "+44 7700 900123"
DIGITS = "447700900123"
TEXT = "Your code is 483920. Do not share it."


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Strip variables a developer's shell could set, and run from an empty directory."""
    for name in list(os.environ):
        if name.startswith("GLOBESMS_") or name in _PROXY_VARS:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A running emulator that accepts the test key pair."""
    with Emulator(access_keys={KEY_ID: KEY_SECRET}) as emu:
        yield emu


@dataclass
class FakeTime:
    """A clock that advances with real time plus every sleep, and records the sleeps."""

    sleeps: list[float] = field(default_factory=list)
    offset: float = 0.0

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += seconds

    def clock(self) -> float:
        return time.monotonic() + self.offset


@pytest.fixture
def fake_time() -> FakeTime:
    """Injected sleep and clock: tests never sleep for real."""
    return FakeTime()


ServiceFactory = Callable[..., SmsService]


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


@pytest.fixture(autouse=True)
def _restore_globesms_logger() -> Iterator[None]:
    """Undo logging changes a test (such as the CLI) made to the globesms logger."""
    logger = logging.getLogger("globesms")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:] = saved[0]
    logger.level, logger.propagate = saved[1], saved[2]
