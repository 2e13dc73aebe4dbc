"""CLI commands for the other operations: status, batch and preview (JSON out, one-line errors,
documented exit codes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from globesms._cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, object, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def test_preview_prints_segments_and_sends_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    """preview prints encoding and segments as JSON with the number masked."""
    code, data, _ = _run(capsys, "preview", "--to", "+44 7700 900123", "--message", "a" * 161)
    assert code == 0
    assert data == {"to": "+44****0123", "country": "44", "encoding": "GSM-7",
                    "characters": 161, "segments": 2}


def test_preview_refuses_what_send_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    """A trunk-prefix number is one error line and exit 3."""
    code, data, err = _run(capsys, "preview", "--to", "07700 900123", "--message", "hi")
    assert (code, data) == (3, None)
    assert err.startswith("error: InvalidRecipient") and err.count("\n") == 1


def test_status_in_the_sandbox_is_not_found(capsys: pytest.CaptureFixture[str]) -> None:
    """status of an id the (fresh) sandbox never saw reports not_found, exit 0."""
    code, data, _ = _run(capsys, "status", "123456", "--sandbox")
    assert code == 0
    assert isinstance(data, dict) and data["state"] == "not_found"


def test_status_refuses_a_malformed_id(capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed id is InvalidRequest: exit 3."""
    code, _, err = _run(capsys, "status", "a b", "--sandbox")
    assert code == 3 and "InvalidRequest" in err


def test_batch_from_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    """--to repeated with one --message: every valid number accepted, invalid ones rejected
    with their error line, exit code of the rejection."""
    code, data, _ = _run(capsys, "batch", "--sandbox", "--to", "+44 7700 900123",
                         "--to", "+44 7700 900124", "--to", "12", "--message", "Notice")
    assert isinstance(data, dict)
    assert [a["to"] for a in data["accepted"]] == ["+44****0123", "+44****0124"]
    assert len(data["rejected"]) == 1 and "InvalidRecipient" in data["rejected"][0]["error"]
    assert code == 3
    assert "900124" not in json.dumps(data)  # (900123 is the hints' own example)


def test_batch_from_a_csv_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """--file with number,text lines sends each its own text; all accepted is exit 0."""
    path = tmp_path / "batch.csv"
    path.write_text("+44 7700 900123,Hello Ann\n+44 7700 900124,Hello Bob, welcome\n\n",
                    encoding="utf-8")
    code, data, _ = _run(capsys, "batch", "--sandbox", "--file", str(path))
    assert code == 0
    assert isinstance(data, dict) and len(data["accepted"]) == 2


def test_batch_from_a_number_file_needs_a_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A file of bare numbers without --message is one error line, exit 3."""
    path = tmp_path / "numbers.txt"
    path.write_text("+44 7700 900123\n", encoding="utf-8")
    code, _, err = _run(capsys, "batch", "--sandbox", "--file", str(path))
    assert code == 3 and "--message" in err


def test_batch_refuses_otp_at_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    """--type OTP is not offered for batches (argparse usage error, exit 2)."""
    with pytest.raises(SystemExit) as caught:
        main(["batch", "--to", "+44 7700 900123", "--message", "x", "--type", "OTP"])
    assert caught.value.code == 2
