"""The command line: sandbox sends, one-line errors and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from globesms import (
    AccountError,
    AuthError,
    ConfigurationError,
    DeliveryUncertain,
    InvalidRecipient,
    InvalidRequest,
    MessageRejected,
    NetworkError,
    SmsError,
    Throttled,
)
from globesms._cli import exit_code, main


def test_sandbox_send_prints_receipt_json(capsys: pytest.CaptureFixture[str]) -> None:
    """--sandbox sends to an in-process emulator and prints one JSON receipt."""
    code = main(["send", "--sandbox", "--to", "+44 7700 900123", "--message", "hello",
                 "--sender", "Acme", "--type", "NOTIFY"])
    out, err = capsys.readouterr()
    assert code == 0
    receipt = json.loads(out)
    assert receipt["message_id"] and receipt["request_id"]
    assert receipt["to"] == "+44****0123"
    assert receipt["sender"] == "Acme"
    assert receipt["segments"] == 1
    assert receipt["sandbox"] is True
    assert err == ""


def test_invalid_number_prints_one_line_and_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid number prints 'error: <Class> [<code>]: <hint>' and exits 3."""
    code = main(["send", "--sandbox", "--to", "+86 138 0013 8000", "--message", "hi"])
    out, err = capsys.readouterr()
    assert code == 3
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: InvalidRecipient [MainlandNumber]: ")
    assert "Traceback" not in err


def test_missing_credentials_exit_7(capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --sandbox and without credentials the CLI says how to fix it and exits 7."""
    monkeypatch.setenv("GLOBESMS_ENDPOINT", "127.0.0.1:9")
    monkeypatch.setenv("GLOBESMS_PROTOCOL", "http")
    code = main(["send", "--to", "+44 7700 900123", "--message", "hi"])
    _, err = capsys.readouterr()
    assert code == 7
    assert err.startswith("error: ConfigurationError [NoCredentials]: ")
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in err


def test_json_log_mode_writes_events_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """--log json writes the sms.sent event as a JSON line on stderr."""
    assert main(["send", "--sandbox", "--log", "json", "--to", "+4477009001234",
                 "--message", "hi"]) == 0
    _, err = capsys.readouterr()
    events = [json.loads(line)["event"] for line in err.splitlines()]
    assert events == ["sms.sent"]


@pytest.mark.parametrize(
    ("error", "expected"),
    [(InvalidRequest(), 3), (InvalidRecipient(), 3), (MessageRejected(), 4), (AccountError(), 5),
     (AuthError(), 6), (ConfigurationError(), 7), (Throttled(), 8), (NetworkError(), 8),
     (DeliveryUncertain(), 9), (SmsError(), 1)],
)
def test_exit_code_per_category(error: SmsError, expected: int) -> None:
    """Each error category has its own documented exit code."""
    assert exit_code(error) == expected


def test_console_script_runs_in_a_fresh_process() -> None:
    """The installed `globesms` command works as a new user would run it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GLOBESMS_", "ALIBABA_"))}
    script = os.path.join(os.path.dirname(sys.executable), "globesms")
    result = subprocess.run(
        [script, "send", "--sandbox", "--to", "+6591234567", "--message", "hi"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["to"] == "+65****4567"
    assert result.stderr == ""
