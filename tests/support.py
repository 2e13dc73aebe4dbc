"""What tests share besides fixtures: the scrubbed environment, constants and fake time.

Imported first by ``conftest.py`` (and so before ``globesms`` and the SDK: the credential library
reads its environment once, at import). Test modules import from here, never from
``conftest``, so collection also works under ``--import-mode=importlib`` (``pythonpath`` in the
pytest settings puts this folder on ``sys.path``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

SCRUB_PREFIXES = ("GLOBESMS_", "ALIBABA_CLOUD_")
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy",
              "https_proxy", "all_proxy", "no_proxy", "DEBUG")
#: Test-kit variables (GLOBESMS_TEST_REDIS_URL, GLOBESMS_REQUIRE_REDIS...), kept before the scrub.
TEST_ENV = {name: value for name, value in os.environ.items()
            if name.startswith(("GLOBESMS_TEST_", "GLOBESMS_REQUIRE_"))}
for _name in list(os.environ):
    if _name.startswith(SCRUB_PREFIXES) or _name in PROXY_VARS:
        del os.environ[_name]
# Never let a test probe the real ECS metadata address, and never read a developer's profiles.
os.environ["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"
os.environ["ALIBABA_CLOUD_CLI_PROFILE_DISABLED"] = "true"
os.environ["HOME"] = tempfile.mkdtemp(prefix="globesms-test-home-")

if TYPE_CHECKING:
    from globesms import SmsService

KEY_ID = "testKeyId"
KEY_SECRET = "testKeySecret-9f8e7d6c5b4a"
NUMBER = "+44 7700 900123"
DIGITS = "447700900123"
TEXT = "Your code is 483920. Do not share it."


@dataclass
class FakeTime:
    """A clock that moves only when something sleeps on it, and records the sleeps: what a test
    asserts about waits and deadlines never depends on how fast the machine is."""

    sleeps: list[float] = field(default_factory=list)
    offset: float = 1000.0

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += seconds

    async def async_sleep(self, seconds: float) -> None:
        """The same, awaitable: records the wait and returns at once."""
        self.sleep(seconds)

    def clock(self) -> float:
        return self.offset


ServiceFactory = Callable[..., "SmsService"]


def unavailable(variable: str, reason: str) -> NoReturn:
    """Skip a test whose service is missing here, or fail it where CI requires the service
    (``.ci/run`` sets ``GLOBESMS_REQUIRE_REDIS=1`` and ``GLOBESMS_REQUIRE_BROWSER=1``)."""
    import pytest

    if TEST_ENV.get(variable) == "1":
        pytest.fail(f"{variable}=1 but {reason}")
    pytest.skip(reason)


def test_redis_url() -> str:
    """``GLOBESMS_TEST_REDIS_URL`` when that Redis answers a PING; else :func:`unavailable`."""
    url = TEST_ENV.get("GLOBESMS_TEST_REDIS_URL", "")
    if not url:
        unavailable("GLOBESMS_REQUIRE_REDIS", "GLOBESMS_TEST_REDIS_URL is not set")
    try:
        import redis
    except ImportError:
        unavailable("GLOBESMS_REQUIRE_REDIS",
                    "redis-py is not installed (pip install -e '.[test]')")
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        client.close()
    except redis.RedisError as error:
        unavailable("GLOBESMS_REQUIRE_REDIS",
                    f"Redis at GLOBESMS_TEST_REDIS_URL does not answer ({type(error).__name__})")
    return url


test_redis_url.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test
