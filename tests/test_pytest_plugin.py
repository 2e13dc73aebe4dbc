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
