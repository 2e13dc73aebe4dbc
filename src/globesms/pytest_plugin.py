"""pytest plugin (entry point ``globesms``): the ``sms_emulator`` fixture.

Installed with the package, it needs no ``conftest.py`` line. Inside a test
that takes ``sms_emulator``, a plain ``SmsService()`` sends to a fresh
loopback emulator::

    def test_sends_code(sms_emulator):
        from globesms import SmsService
        SmsService().send("+44 7700 900123", "Your code is 123456")
        assert sms_emulator.messages[0].message == "Your code is 123456"

While the plugin is active, no ``SmsService`` reaches a non-loopback
endpoint: such a call raises ``ConfigurationError [TestRunGuard]`` and sends
nothing, whenever and wherever the service was built (a module-level
``SmsService()`` included). ``--globesms-allow-network`` or the ini option
``globesms_allow_network = true`` turn this off.

Nothing from ``globesms`` or the Alibaba SDK is imported when the plugin
loads: the credential library reads its environment once, at import, and a
project's ``conftest.py`` must get to set that environment first.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from globesms.emulator import Emulator


def pytest_addoption(parser: pytest.Parser) -> None:
    """The opt-out for suites that really mean to reach a remote endpoint."""
    group = parser.getgroup("globesms")
    group.addoption(
        "--globesms-allow-network", action="store_true", default=False,
        help="let SmsService reach non-loopback endpoints during this run (real SMS possible)",
    )
    parser.addini(
        "globesms_allow_network", type="bool", default=False,
        help="let SmsService reach non-loopback endpoints during test runs (real SMS possible)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Refuse every non-loopback call for the run, unless the suite opted out."""
    import globesms._guard as guard

    allowed = config.getoption("globesms_allow_network") or config.getini("globesms_allow_network")
    guard.active = not allowed


def pytest_unconfigure(config: pytest.Config) -> None:
    import globesms._guard as guard

    guard.active = False


@pytest.fixture
def sms_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """A running emulator that a plain ``SmsService()`` created in the test sends to.

    It accepts one generated AccessKey pair (``sms_emulator.access_keys``);
    ``GLOBESMS_ENDPOINT`` and ``GLOBESMS_PROTOCOL`` point at it for the test,
    and the default credential is that pair (via
    ``globesms._credentials.override_default_credential``).
    """
    from globesms._credentials import override_default_credential
    from globesms.emulator import Emulator
    from globesms.testing import static_credential

    key_id = "pytest-" + secrets.token_hex(4)
    secret = secrets.token_urlsafe(24)
    with Emulator(access_keys={key_id: secret}) as emulator:
        monkeypatch.setenv("GLOBESMS_ENDPOINT", emulator.endpoint)
        monkeypatch.setenv("GLOBESMS_PROTOCOL", emulator.protocol)
        with override_default_credential(static_credential(key_id, secret)):
            yield emulator
