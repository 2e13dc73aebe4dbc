"""The command line: sandbox sends, one-line errors and exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

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
from globesms._cli import error_line, exit_code, main


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


def test_bare_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """`globesms` with no command prints the help (not a traceback) and exits 2."""
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("usage: globesms")
    assert "send" in err and "emulator" in err


def test_error_line_carries_request_id_and_retry_delay(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A throttled send prints class, code, request id and retry delay on one line; exit 8."""
    monkeypatch.setenv("GLOBESMS_MAX_ATTEMPTS", "1")
    code = main(["send", "--sandbox", "--to", "+44 7700 900904", "--message", "hi"])
    out, err = capsys.readouterr()
    assert code == 8
    assert out == ""
    assert re.fullmatch(
        r"error: Throttled \[Throttling\.User\] \(request [0-9A-Za-z-]+, retry after 1\.0 s\): "
        r".+\n", err), err


def test_error_line_without_request_id_or_delay() -> None:
    """Only what is known is shown: no empty brackets for a local error."""
    line = error_line(InvalidRecipient("fix the number", code="InvalidTo"))
    assert line == "error: InvalidRecipient [InvalidTo]: fix the number"
    line = error_line(Throttled("slow down", code="Throttling.User", retry_after=86400))
    assert line == "error: Throttled [Throttling.User] (retry after 86400.0 s): slow down"


def _bad_config(tmp_path: Path, case: str) -> Path:
    if case == "directory":
        return tmp_path
    if case == "missing":
        return tmp_path / "missing.toml"
    path = tmp_path / f"{case}.toml"
    contents = {"binary": b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(range(256)),
                "not-utf8": 'sender = "Caf\u00e9"\n'.encode("latin-1"),
                "bad-toml": b"sender = \n"}
    path.write_bytes(contents[case])
    return path


@pytest.mark.parametrize("case", ["directory", "missing", "binary", "not-utf8", "bad-toml"])
@pytest.mark.parametrize("sandbox", [True, False], ids=["sandbox", "real"])
def test_unreadable_config_prints_one_line_and_exits_7(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str, sandbox: bool
) -> None:
    """--config naming an unusable file prints one line and exits 7."""
    path = _bad_config(tmp_path, case)
    argv = ["send", "--config", str(path), "--to", "+44 7700 900123", "--message", "hi"]
    code = main(argv + (["--sandbox"] if sandbox else []))
    out, err = capsys.readouterr()
    assert code == 7
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: ConfigurationError [InvalidSetting]: config file ")
    assert str(path) in err


def test_config_help_names_every_source(capsys: pytest.CaptureFixture[str]) -> None:
    """--config's help names every place settings come from."""
    with pytest.raises(SystemExit) as caught:
        main(["send", "--help"])
    assert caught.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for source in ("$GLOBESMS_CONFIG", "config/globesms.toml", "GLOBESMS_* variables",
                   "the defaults"):
        assert source in out, source


def test_sandbox_honours_settings_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--sandbox applies GLOBESMS_SENDER (and the other settings) but keeps its own endpoint."""
    monkeypatch.setenv("GLOBESMS_SENDER", "EnvSender")
    monkeypatch.setenv("GLOBESMS_ENDPOINT", "127.0.0.1:9")
    monkeypatch.setenv("GLOBESMS_PROTOCOL", "https")
    assert main(["send", "--sandbox", "--to", "+44 7700 900123", "--message", "hi"]) == 0
    assert json.loads(capsys.readouterr().out)["sender"] == "EnvSender"
    monkeypatch.setenv("GLOBESMS_DEADLINE", "-1")
    assert main(["send", "--sandbox", "--to", "+44 7700 900123", "--message", "hi"]) == 7
    assert "GLOBESMS_DEADLINE=-1" in capsys.readouterr().err


def test_misspelt_variable_exits_7(capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelt GLOBESMS_* variable stops the command with the closest known name."""
    monkeypatch.setenv("GLOBESMS_ENDPONT", "127.0.0.1:9")
    assert main(["send", "--to", "+44 7700 900123", "--message", "hi"]) == 7
    err = capsys.readouterr().err
    assert err.startswith("error: ConfigurationError [UnknownSetting]: GLOBESMS_ENDPONT")
    assert "GLOBESMS_ENDPOINT" in err
