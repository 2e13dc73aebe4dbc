"""Credentials: the default chain is used, and a missing credential fails fast and quietly.

The credential library reads its environment at import, so chain tests run in a fresh process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from globesms import ConfigurationError, Settings, SmsService
from globesms._credentials import CredentialGate
from globesms.emulator import Emulator
from support import DIGITS, KEY_ID, KEY_SECRET, NUMBER, TEXT


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("GLOBESMS_", "ALIBABA_CLOUD_"))}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**base, **env}, timeout=60, check=False)


SEND = f"""
import json
from globesms import SmsService, SmsError
try:
    receipt = SmsService().send({NUMBER!r}, {TEXT!r})
    print(json.dumps({{"ok": receipt.message_id}}))
except SmsError as error:
    print(json.dumps({{"error": type(error).__name__, "code": error.code, "text": str(error)}}))
"""


def test_default_chain_reads_environment_keys(emulator: Emulator, tmp_path: Any) -> None:
    """Only ALIBABA_CLOUD_ACCESS_KEY_* and GLOBESMS_ENDPOINT/PROTOCOL are needed to send."""
    result = _run(SEND, {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": KEY_SECRET,
        "GLOBESMS_ENDPOINT": emulator.endpoint,
        "GLOBESMS_PROTOCOL": "http",
        "HOME": str(tmp_path),
    })
    assert result.returncode == 0, result.stderr
    assert '"ok"' in result.stdout
    [message] = emulator.messages
    assert message.to == DIGITS
    [request] = emulator.requests
    assert request.headers["x-acs-credentials-provider"] == "default/env"


def test_no_credential_is_configuration_error_without_tracebacks(
    emulator: Emulator, tmp_path: Any
) -> None:
    """No credential anywhere: ConfigurationError, nothing sent, nothing printed."""
    result = _run(SEND, {
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
        "GLOBESMS_ENDPOINT": emulator.endpoint,
        "GLOBESMS_PROTOCOL": "http",
        "HOME": str(tmp_path),
    })
    assert result.returncode == 0, result.stderr
    assert '"error": "ConfigurationError"' in result.stdout
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in result.stdout
    assert result.stderr == ""
    assert emulator.requests == []


@pytest.fixture
def hanging_server() -> Iterator[str]:
    """A loopback server that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/credentials"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()


def test_hanging_credential_source_is_bounded(
    emulator: Emulator, hanging_server: str, tmp_path: Any
) -> None:
    """A chain provider that never answers ends in ConfigurationError; a second send is refused
    from the remembered failure and nothing reaches the endpoint."""
    code = SEND + "\n" + SEND.replace("import json\n", "")
    result = _run(code, {
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
        "ALIBABA_CLOUD_CREDENTIALS_URI": hanging_server,
        "GLOBESMS_ENDPOINT": emulator.endpoint,
        "GLOBESMS_PROTOCOL": "http",
        "HOME": str(tmp_path),
    })
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert all('"error": "ConfigurationError"' in line for line in lines)
    assert "within 2 s" in lines[0]
    assert result.stderr == ""
    assert emulator.requests == []


class _BlockingCredential:
    """A credential source that blocks until released, counting calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()

    def get_credential(self) -> Any:
        self.calls += 1
        self.release.wait(10)
        raise RuntimeError("still nothing")


def test_gate_remembers_failure_without_asking_again() -> None:
    """After a timed-out lookup, later checks fail from memory without a new lookup."""
    source = _BlockingCredential()
    gate = CredentialGate(source, timeout=0.05)
    try:
        with pytest.raises(ConfigurationError):
            gate.ensure()
        with pytest.raises(ConfigurationError):
            gate.ensure()
        assert source.calls == 1
    finally:
        source.release.set()


def test_gate_asks_again_after_the_failure_expires() -> None:
    """Once failure_ttl has passed on the clock, the chain is asked again."""
    now = [0.0]
    source = _BlockingCredential()
    source.release.set()
    gate = CredentialGate(source, clock=lambda: now[0], failure_ttl=30.0)
    with pytest.raises(ConfigurationError):
        gate.ensure()
    now[0] = 31.0
    with pytest.raises(ConfigurationError):
        gate.ensure()
    assert source.calls == 2


def test_injected_credential_is_used(emulator: Emulator) -> None:
    """A credential object passed to SmsService signs the requests."""
    from globesms._credentials import static_credential

    service = SmsService(Settings(endpoint=emulator.endpoint, protocol="http"),
                         credential=static_credential(KEY_ID, KEY_SECRET))
    service.send(NUMBER, TEXT)
    assert len(emulator.messages) == 1


SET_AFTER_IMPORT = """
import json, os
from globesms import SmsService, SmsError
os.environ.update(json.loads({variables!r}))  # what python-dotenv's load_dotenv() does
try:
    receipt = SmsService().send({number!r}, {text!r})
    print(json.dumps({{"ok": receipt.message_id}}))
except SmsError as error:
    print(json.dumps({{"error": type(error).__name__, "code": error.code, "text": str(error)}}))
"""


@pytest.mark.parametrize("source", ["environment", "credentials-file"])
def test_variables_set_after_import_are_used(
    emulator: Emulator, tmp_path: Any, source: str
) -> None:
    """ALIBABA_CLOUD_* variables set after import, before SmsService(), are used."""
    if source == "environment":
        variables = {"ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID,
                     "ALIBABA_CLOUD_ACCESS_KEY_SECRET": KEY_SECRET}
        provider = "default/env"
    else:
        ini = tmp_path / "credentials.ini"
        ini.write_text(f"[default]\ntype = access_key\naccess_key_id = {KEY_ID}\n"
                       f"access_key_secret = {KEY_SECRET}\n")
        variables = {"ALIBABA_CLOUD_CREDENTIALS_FILE": str(ini)}
        provider = "default/profile/static_ak"
    code = SET_AFTER_IMPORT.format(variables=json.dumps(variables), number=NUMBER, text=TEXT)
    result = _run(code, {
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",  # never probe the metadata address
        "ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true",
        "GLOBESMS_ENDPOINT": emulator.endpoint,
        "GLOBESMS_PROTOCOL": "http",
        "HOME": str(tmp_path),
    })
    assert result.returncode == 0, result.stderr
    assert '"ok"' in result.stdout, result.stdout
    [request] = emulator.requests
    assert request.headers["x-acs-credentials-provider"] == provider


def test_no_credentials_hint_names_the_probe_switch_and_the_sandbox(emulator: Emulator) -> None:
    """NoCredentials says how to skip the metadata probe and how to try without an account."""
    service = SmsService(Settings(endpoint=emulator.endpoint, protocol="http"))
    with pytest.raises(ConfigurationError) as caught:
        service.send(NUMBER, TEXT)
    assert caught.value.code == "NoCredentials"
    assert "ALIBABA_CLOUD_ECS_METADATA_DISABLED=true" in caught.value.hint
    assert "--sandbox" in caught.value.hint
    assert emulator.requests == []


def test_unchanged_environment_does_not_reload_the_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The credential library is re-read only when an ALIBABA_CLOUD_* variable changed."""
    from alibabacloud_credentials.utils import auth_util

    from globesms._credentials import refresh_credential_environment

    refresh_credential_environment()
    before = auth_util.get_home
    refresh_credential_environment()
    assert auth_util.get_home is before
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "changed")
    refresh_credential_environment()
    assert auth_util.get_home is not before
    assert auth_util.environment_access_key_id == "changed"
    monkeypatch.delenv("ALIBABA_CLOUD_ACCESS_KEY_ID")
    refresh_credential_environment()
    assert auth_util.environment_access_key_id is None
