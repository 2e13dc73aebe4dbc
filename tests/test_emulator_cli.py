"""``globesms emulator``: the standalone emulator, run as a real subprocess."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from alibabacloud_dysmsapi20180501 import models
from alibabacloud_dysmsapi20180501.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_util.models import RuntimeOptions

from globesms.emulator._standalone import parse_keys

STARTUP_TIMEOUT_S = 30


def start(
    *args: str, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], dict[str, list[str]]]:
    """Start ``globesms emulator ARGS`` and read its startup lines up to ``ready``.

    Every line read is also kept, in order, under the name ``"lines"``.
    """
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(extra_env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "globesms._cli", "emulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    info: dict[str, list[str]] = {}
    assert process.stdout is not None
    # readline blocks until a line or EOF; the watchdog bounds the wait.
    watchdog = subprocess.Popen(
        [sys.executable, "-c",
         f"import os,time,signal;time.sleep({STARTUP_TIMEOUT_S});"
         f"os.kill({process.pid}, signal.SIGKILL)"],
    )
    try:
        for line in process.stdout:
            info.setdefault("lines", []).append(line.rstrip("\n"))
            if line.strip() in ("ready", "# ready"):
                break
            name, _, value = line.strip().partition(": ")
            info.setdefault(name, []).append(value)
        else:
            pytest.fail("the emulator exited before printing ready")
    finally:
        watchdog.kill()
        watchdog.wait()
    return process, info


@pytest.fixture
def running() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def send(info: dict[str, list[str]], key_id: str, secret: str, ca: str | None = None) -> str:
    client = Client(Config(access_key_id=key_id, access_key_secret=secret,
                           endpoint=info["endpoint"][0], protocol=info["protocol"][0], ca=ca))
    request = models.SendMessageToGlobeRequest(to="85212345678", message="hi from the cli test")
    return str(client.send_message_to_globe_with_options(request, RuntimeOptions()).body.to)


def test_generated_key_is_printed_and_accepted(running: list[subprocess.Popen[str]]) -> None:
    """Without --key it prints endpoint, protocol and a throwaway key pair that works."""
    process, info = start()
    running.append(process)
    assert info["protocol"] == ["http"]
    assert info["endpoint"][0].startswith("127.0.0.1:")
    [key_id], [secret] = info["access_key_id"], info["access_key_secret"]
    assert send(info, key_id, secret) == "85212345678"
    with pytest.raises(ClientException) as caught:
        send(info, key_id, "wrong-secret")
    assert caught.value.code == "SignatureDoesNotMatch"
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.read() == "" and process.stderr.read() == ""


def test_given_keys_tls_and_sigterm(running: list[subprocess.Popen[str]]) -> None:
    """--key pairs are accepted (ids printed, secrets not), --tls prints a CA; SIGTERM stops it."""
    process, info = start("--tls", "--key", "idA:secretA", "--key", "idB:sec:ret")
    running.append(process)
    assert info["protocol"] == ["https"]
    assert info["access_key_id"] == ["idA", "idB"]
    assert "access_key_secret" not in info
    [ca_file] = info["ca_file"]
    assert os.path.isfile(ca_file)
    assert send(info, "idB", "sec:ret", ca=ca_file) == "85212345678"
    process.terminate()
    assert process.wait(timeout=10) == 0
    assert not os.path.exists(ca_file)


def test_bad_key_exits_2() -> None:
    """--key without a colon is a command-line error (exit 2) and starts nothing."""
    result = subprocess.run(
        [sys.executable, "-m", "globesms._cli", "emulator", "--key", "nocolon"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "ID:SECRET" in result.stderr
    assert parse_keys(["a:b:c"]) == {"a": "b:c"}


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_prints_where_the_inbox_is(running: list[subprocess.Popen[str]]) -> None:
    """The startup lines name the inbox URL, and the page is served there."""
    process, info = start()
    running.append(process)
    [inbox] = info["inbox"]
    assert inbox == f"http://{info['endpoint'][0]}/_emulator/"
    status, page = _get(inbox)
    assert status == 200 and b'type="search"' in page
    assert "admin_token" not in info


def test_env_prints_exports_that_point_a_service_at_it(
    running: list[subprocess.Popen[str]], tmp_path: Any
) -> None:
    """--env prints a shell file; sourcing it makes `globesms send` reach the emulator."""
    process, info = start("--env")
    running.append(process)
    lines = info["lines"]
    assert lines[-1] == "# ready"
    assert all(line.startswith(("export ", "# ")) for line in lines)
    exports = dict(
        shlex.split(line[len("export "):])[0].split("=", 1)
        for line in lines if line.startswith("export ")
    )
    assert set(exports) == {
        "GLOBESMS_ENDPOINT", "GLOBESMS_PROTOCOL",
        "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    }
    env_file = tmp_path / "emulator.env"
    env_file.write_text("\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    sent = subprocess.run(
        ["bash", "-c", f'. "{env_file}" && "{sys.executable}" -m globesms._cli send'
         " --to '+44 7700 900123' --message 'Your code is 246810'"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert sent.returncode == 0, sent.stderr
    status, body = _get(f"http://{exports['GLOBESMS_ENDPOINT']}/_emulator/codes/latest?to=447700900123")
    assert status == 200
    assert json.loads(body)["code"] == "246810"


def test_non_loopback_host_generates_and_requires_a_token(
    running: list[subprocess.Popen[str]],
) -> None:
    """--host 0.0.0.0 without a token prints a generated admin_token; the API needs it."""
    process, info = start("--host", "0.0.0.0")
    running.append(process)
    [token] = info["admin_token"]
    [inbox] = info["inbox"]
    assert inbox.startswith("http://127.0.0.1:")
    assert _get(inbox + "messages")[0] == 401
    assert _get(inbox + "messages", {"X-Emulator-Token": token})[0] == 200


def test_token_from_the_environment_and_no_auth(running: list[subprocess.Popen[str]]) -> None:
    """GLOBESMS_EMULATOR_TOKEN is the token (not printed); --no-auth serves without one."""
    token_env = {"GLOBESMS_EMULATOR_TOKEN": "env-token-123"}
    process, info = start("--host", "0.0.0.0", extra_env=token_env)
    running.append(process)
    assert "admin_token" not in info
    assert all("env-token-123" not in line for line in info["lines"])
    [inbox] = info["inbox"]
    assert _get(inbox + "messages", {"X-Emulator-Token": "env-token-123"})[0] == 200
    assert _get(inbox + "messages")[0] == 401
    open_process, open_info = start("--host", "0.0.0.0", "--no-auth")
    running.append(open_process)
    assert _get(open_info["inbox"][0] + "messages")[0] == 200
