"""``globesms emulator``: the standalone emulator, run as a real subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from alibabacloud_dysmsapi20180501 import models
from alibabacloud_dysmsapi20180501.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_util.models import RuntimeOptions

from globesms.emulator._standalone import parse_keys

STARTUP_TIMEOUT_S = 30


def start(*args: str) -> tuple[subprocess.Popen[str], dict[str, list[str]]]:
    """Start ``globesms emulator ARGS`` and read its startup lines up to ``ready``."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
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
            if line.strip() == "ready":
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
