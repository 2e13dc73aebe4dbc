"""``globesms verify start|check``: in-process, plus one check in a separate process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from globesms._cli import main

SECRET = "c0ffee" * 11
NUMBER = "+44 7700 900123"


@pytest.fixture(autouse=True)
def _verify_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A secret and a state directory of our own (the default SQLite store lives there)."""
    monkeypatch.setenv("GLOBESMS_VERIFY_SECRET", SECRET)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state" / "globesms" / "verify.sqlite3"


def start(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, object]:
    assert main(["verify", "start", "--to", NUMBER, "--sandbox", *extra]) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def test_sandbox_start_prints_the_text_and_check_approves_once(
    capsys: pytest.CaptureFixture[str], _verify_env: Path,
) -> None:
    """start --sandbox prints the received text; check exits 0 once, then 13 (not found)."""
    out = start(capsys, "--purpose", "login")
    assert out["sandbox"] is True and out["to"] == "+44****0123" and _verify_env.is_file()
    match = re.search(r"\b(\d{6})\b", str(out["sandbox_text"]))
    assert match is not None
    code = match.group(1)
    argv = ["verify", "check", "--to", NUMBER, "--code", code, "--purpose", "login"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "approved"
    assert main(argv) == 13


def test_wrong_code_exits_10_and_locked_exits_12(capsys: pytest.CaptureFixture[str]) -> None:
    """A wrong code exits 10 until max_checks; then the challenge is locked (12)."""
    out = start(capsys)
    match = re.search(r"\b(\d{6})\b", str(out["sandbox_text"]))
    assert match is not None
    wrong = f"{(int(match.group(1)) + 1) % 10**6:06d}"
    codes = [main(["verify", "check", "--to", NUMBER, "--code", wrong]) for _ in range(6)]
    assert codes == [10] * 5 + [12]


def test_refused_start_prints_one_line_and_exits_8(capsys: pytest.CaptureFixture[str]) -> None:
    """A resend inside the cooldown is one stderr line with the limit and wait; exit code 8."""
    start(capsys)
    assert main(["verify", "start", "--to", NUMBER, "--sandbox"]) == 8
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Throttled [ResendCooldown]" in err and "retry after" in err


def test_missing_secret_exits_7(capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a secret the command says how to set one and exits 7 (configuration)."""
    monkeypatch.delenv("GLOBESMS_VERIFY_SECRET")
    assert main(["verify", "check", "--to", NUMBER, "--code", "123456"]) == 7
    assert "GLOBESMS_VERIFY_SECRET" in capsys.readouterr().err


def test_check_in_another_process_finds_the_challenge(
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    """A separate `globesms verify check` process approves the code from a sandbox start."""
    out = start(capsys)
    match = re.search(r"\b(\d{6})\b", str(out["sandbox_text"]))
    assert match is not None
    env = {**os.environ, "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from globesms._cli import main; sys.exit(main())",
         "verify", "check", "--to", NUMBER, "--code", match.group(1)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["approved"] is True
