"""The ``sms_emulator`` fixture, loaded through the ``pytest11`` entry point."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

INNER = '''
from globesms import SmsService


def test_plain_service_sends_to_the_emulator(sms_emulator):
    """A plain SmsService() reaches the fixture's emulator with no other setup."""
    receipt = SmsService().send("+44 7700 900123", "Your code is 483920")
    [message] = sms_emulator.messages
    assert message.to == "447700900123"
    assert message.message == "Your code is 483920"
    assert receipt.message_id == message.message_id
'''


def test_fixture_points_a_plain_service_at_the_emulator(pytester: pytest.Pytester) -> None:
    """An inner test using sms_emulator sends with SmsService() and sees the message."""
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_fixture_failure_is_reported_by_the_inner_run(pytester: pytest.Pytester) -> None:
    """The inner assertion on sms_emulator.messages can fail (the fixture is not vacuous)."""
    wrong = INNER.replace('"Your code is 483920"\n    assert receipt', '"x"\n    assert receipt')
    assert wrong != INNER
    pytester.makepyfile(test_inner=wrong)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)


def test_plugin_module_has_no_top_level_globesms_or_sdk_import() -> None:
    """The plugin's own module-level code imports neither globesms nor any alibabacloud module."""
    import globesms.pytest_plugin as plugin

    tree = ast.parse(Path(plugin.__file__).read_text(encoding="utf-8"))
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    assert "pytest" in names
    assert not [n for n in names if n.startswith(("globesms", "alibabacloud"))]


def test_loading_the_plugin_imports_neither_globesms_nor_the_sdk() -> None:
    """Importing the plugin module leaves globesms and alibabacloud_credentials unimported."""
    code = (
        "import sys, globesms.pytest_plugin\n"
        "bad = [m for m in sys.modules if m.startswith(('alibabacloud', 'globesms.'))"
        " and m != 'globesms.pytest_plugin']\n"
        "print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


GUARDED = '''
import pytest
from globesms import ConfigurationError, Settings, SmsService

sms = SmsService(Settings(endpoint="203.0.113.10:443"))  # module level, like the quick start


def test_module_level_service_cannot_reach_a_remote_endpoint():
    """Built before any fixture, the service still cannot leave this machine."""
    with pytest.raises(ConfigurationError) as caught:
        sms.send("+44 7700 900123", "Your code is 483920")
    assert caught.value.code == "TestRunGuard"
    assert "sms_emulator" in str(caught.value)
    assert "--globesms-allow-network" in str(caught.value)
'''


def test_remote_endpoints_are_refused_during_a_test_run(pytester: pytest.Pytester) -> None:
    """A module-level SmsService aimed at a remote host fails with TestRunGuard, unsent."""
    pytester.makepyfile(test_inner=GUARDED)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("opt_out", [["--globesms-allow-network"],
                                     ["-o", "globesms_allow_network=true"]])
def test_the_guard_has_a_documented_opt_out(pytester: pytest.Pytester, opt_out: list[str]) -> None:
    """With the flag or the ini option the guard no longer refuses the call: the inner test's
    TestRunGuard expectation then fails (the call fails on credentials or the network instead)."""
    fast = GUARDED.replace('endpoint="203.0.113.10:443"',
                           'endpoint="203.0.113.10:443", connect_timeout=0.2, max_attempts=1')
    assert fast != GUARDED
    pytester.makepyfile(test_inner=fast)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *opt_out)
    result.assert_outcomes(failed=1)
    assert "TestRunGuard" in result.stdout.str()


def test_loopback_detection() -> None:
    """Loopback names and addresses pass the guard; anything else does not."""
    from globesms._guard import is_loopback

    for endpoint in ("127.0.0.1:8080", "127.9.9.9", "localhost:1", "[::1]:80", "::1"):
        assert is_loopback(endpoint), endpoint
    for endpoint in ("dysmsapi.ap-southeast-1.aliyuncs.com", "10.0.0.1:80", "[2001:db8::1]:443",
                     "localhost.example.com"):
        assert not is_loopback(endpoint), endpoint
