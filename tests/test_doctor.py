"""``globesms doctor`` finds each way a deployment cannot send, against the emulator on loopback."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from globesms import Settings
from globesms._cli import main
from globesms._credentials import override_default_credential, static_credential
from globesms._doctor import (
    FAILURE,
    OK,
    SKIPPED,
    WARNING,
    Check,
    Inputs,
    _clock_check,
    _internals_check,
    as_json,
    as_text,
    clock_skew,
    exit_status,
    mask_key_id,
    redact_text,
    redact_url,
    run_checks,
)
from globesms.emulator import Emulator

KEY_ID = "LTAI5tDoctorKey123"
SECRET = "doctor-secret-Zq81xW"
FAST = 0.5  # seconds per network step in these tests


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def _run(
    endpoint: str, *, protocol: str = "http", secret: str = SECRET, ca_file: str | None = None,
    environ: dict[str, str] | None = None, timeout: float = FAST,
) -> dict[str, Check]:
    settings = Settings(endpoint=endpoint, protocol=protocol, ca_file=ca_file)
    inputs = Inputs(
        settings, {}, environ or {}, credential=lambda: static_credential(KEY_ID, secret),
        timeout=timeout,
    )
    checks = run_checks(inputs)
    _assert_no_secret(as_text(checks) + as_json(checks), secret)
    return _by_name(checks)


def _assert_no_secret(output: str, secret: str = SECRET) -> None:
    assert secret not in output
    assert KEY_ID not in output


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def doctor_emulator() -> Iterator[Emulator]:
    """An emulator that accepts the doctor test key."""
    with Emulator(access_keys={KEY_ID: SECRET}) as emu:
        yield emu


def test_all_ok_against_the_emulator(doctor_emulator: Emulator) -> None:
    """Every check passes against a healthy emulator with the right key, and nothing is sent."""
    checks = _run(doctor_emulator.endpoint)
    assert {name: c.status for name, c in checks.items()} == {
        "settings": OK, "sdk internals": OK, "credentials": OK, "dns": OK, "tcp": OK,
        "tls": SKIPPED, "protocol": OK, "clock": OK, "signed call": OK,
        "verification store": OK, "rate store": SKIPPED,
    }
    # unset, the verification store is the default SQLite file VerificationService would use
    assert checks["verification store"].detail["store"].endswith("verify.sqlite3")
    assert checks["signed call"].detail["response_code"] == "DATA_NOT_EXIST"
    assert checks["credentials"].detail["access_key_id"] == mask_key_id(KEY_ID)
    assert doctor_emulator.messages == []


def test_tls_is_checked_with_the_configured_ca() -> None:
    """Over https with the emulator's CA every check passes and the certificate is described."""
    with Emulator(access_keys={KEY_ID: SECRET}, tls=True) as emu:
        checks = _run(emu.endpoint, protocol="https", ca_file=emu.ca_file)
    assert checks["tls"].status == OK
    assert checks["tls"].detail["days_left"] > 0 and checks["tls"].detail["subject"]
    assert checks["signed call"].status == OK


def test_untrusted_certificate_names_ca_file() -> None:
    """Without the CA that signed the certificate, tls fails and the fix names ca_file."""
    with Emulator(access_keys={KEY_ID: SECRET}, tls=True) as emu:
        checks = _run(emu.endpoint, protocol="https")
    assert checks["tls"].status == FAILURE
    assert "GLOBESMS_CA_FILE" in (checks["tls"].fix or "")
    assert checks["clock"].status == OK  # Date still read, without trusting the answer
    assert checks["signed call"].status == SKIPPED


def test_wrong_secret(doctor_emulator: Emulator) -> None:
    """A secret that does not belong to the key is named as such by the signed call."""
    checks = _run(doctor_emulator.endpoint, secret="not-the-right-secret")
    call = checks["signed call"]
    assert call.status == FAILURE
    assert call.detail["code"] == "SignatureDoesNotMatch"
    assert "secret" in (call.fix or "")
    assert checks["credentials"].status == OK


def test_unknown_key_id(doctor_emulator: Emulator) -> None:
    """A key id the gateway does not know is named as such."""
    settings = Settings(endpoint=doctor_emulator.endpoint, protocol="http")
    inputs = Inputs(settings, {}, {}, credential=lambda: static_credential("LTAIunknown99", "x"),
                    timeout=FAST)
    call = _by_name(run_checks(inputs))["signed call"]
    assert call.status == FAILURE
    assert call.detail["code"].startswith("InvalidAccessKeyId")


def test_https_client_against_http_server(doctor_emulator: Emulator) -> None:
    """An https client against a plain-http endpoint is named a protocol mismatch."""
    checks = _run(doctor_emulator.endpoint, protocol="https")
    assert checks["protocol"].status == FAILURE
    assert checks["protocol"].detail["server_protocol"] == "http"
    assert "GLOBESMS_PROTOCOL=http" in (checks["protocol"].fix or "")
    assert checks["tls"].status == SKIPPED
    assert checks["signed call"].status == SKIPPED


def test_http_client_against_https_server() -> None:
    """An http client against an https endpoint is named a protocol mismatch."""
    with Emulator(access_keys={KEY_ID: SECRET}, tls=True) as emu:
        checks = _run(emu.endpoint, protocol="http")
    assert checks["protocol"].status == FAILURE
    assert checks["protocol"].detail["server_protocol"] == "https"
    assert "GLOBESMS_PROTOCOL=https" in (checks["protocol"].fix or "")


def test_unreachable_host_closed_port() -> None:
    """A closed loopback port fails tcp with the host and port, and the rest is not run."""
    port = _closed_port()
    checks = _run(f"127.0.0.1:{port}")
    assert checks["tcp"].status == FAILURE
    assert f"127.0.0.1:{port}" in checks["tcp"].summary
    for name in ("tls", "protocol", "clock", "signed call"):
        assert checks[name].status == SKIPPED


@contextlib.contextmanager
def _silent_listener() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("protocol", ["http", "https"])
def test_host_that_never_answers_is_bounded(protocol: str) -> None:
    """A host that accepts but never answers fails within the step timeout, not the OS's."""
    with _silent_listener() as port:
        checks = _run(f"127.0.0.1:{port}", protocol=protocol, timeout=0.3)
    failed = checks["tls"] if protocol == "https" else checks["protocol"]
    assert failed.status == FAILURE
    assert "0.3 s" in failed.summary
    assert checks["signed call"].status == SKIPPED


class _SkewedHandler(BaseHTTPRequestHandler):
    skew = 3600.0

    def date_time_string(self, timestamp: float | None = None) -> str:
        return formatdate(time.time() + self.skew, usegmt=True)

    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _skewed_server(skew: float) -> Iterator[str]:
    handler = type("Handler", (_SkewedHandler,), {"skew": skew})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_skewed_clock_from_date_header() -> None:
    """An endpoint whose Date is an hour ahead fails the clock check with the NTP fix."""
    with _skewed_server(3600) as endpoint:
        checks = _run(endpoint)
    clock = checks["clock"]
    assert clock.status == FAILURE
    assert 3590 < clock.detail["skew_s"] < 3610
    assert "NTP" in (clock.fix or "")


def test_skewed_clock_refused_by_gateway() -> None:
    """A gateway an hour ahead refuses the signed call, and the fix says to sync the clock."""
    with Emulator(access_keys={KEY_ID: SECRET}, clock=lambda: time.time() + 3600) as emu:
        checks = _run(emu.endpoint)
    call = checks["signed call"]
    assert call.status == FAILURE
    assert call.detail["code"] == "InvalidTimeStamp.Expired"
    assert "NTP" in (call.fix or "")


@pytest.mark.parametrize(
    ("skew", "status"), [(5.0, OK), (-5.0, OK), (300.0, WARNING), (-300.0, WARNING),
                         (16 * 60.0, FAILURE), (-16 * 60.0, FAILURE)],
)
def test_clock_bands(skew: float, status: str) -> None:
    """Skew under a minute is ok, up to the gateway's 15 minutes a warning, beyond a failure."""
    now = time.time()
    date = formatdate(now + skew, usegmt=True)
    assert abs(clock_skew(date, now) - skew) <= 1.0
    assert _clock_check(date, answered=True).status == status


def test_stopped_redis_fails_and_hides_password(
    doctor_emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Redis store URL whose port is closed fails with the fix; its password never shows."""
    url = f"redis://:hunter2-pw@127.0.0.1:{_closed_port()}/0"
    checks = _run(doctor_emulator.endpoint, environ={"GLOBESMS_VERIFY_STORE": url,
                                                     "GLOBESMS_RATE_STORE": url})
    for name in ("verification store", "rate store"):
        assert checks[name].status == FAILURE
        assert "start Redis" in (checks[name].fix or "")
    rendered = as_text(list(checks.values())) + as_json(list(checks.values()))
    assert "hunter2-pw" not in rendered
    assert "redis://****@127.0.0.1" in rendered


def _test_redis_url() -> str:
    """The test Redis; skip when it is missing, fail instead under GLOBESMS_REQUIRE_REDIS=1."""
    from support import test_redis_url

    return test_redis_url()


def test_running_redis_answers(doctor_emulator: Emulator) -> None:
    """A reachable Redis store answers PING and the check passes."""
    url = _test_redis_url()
    checks = _run(doctor_emulator.endpoint, environ={"GLOBESMS_VERIFY_STORE": url})
    assert checks["verification store"].status == OK
    assert checks["rate store"].status == SKIPPED


def test_sqlite_and_memory_stores(doctor_emulator: Emulator, tmp_path: Path) -> None:
    """A writable SQLite path passes (missing folders are made by the store), a path under a
    file fails, memory warns it is not shared."""
    good = f"sqlite:///{tmp_path / 'new' / 'verify.db'}"
    (tmp_path / "a-file").write_text("x")
    bad = str(tmp_path / "a-file" / "rate.db")
    checks = _run(doctor_emulator.endpoint,
                  environ={"GLOBESMS_VERIFY_STORE": good, "GLOBESMS_RATE_STORE": bad})
    assert checks["verification store"].status == OK
    assert checks["rate store"].status == FAILURE
    checks = _run(doctor_emulator.endpoint, environ={"GLOBESMS_VERIFY_STORE": "memory"})
    assert checks["verification store"].status == WARNING


def test_missing_internal_is_a_failure_naming_it() -> None:
    """A missing SDK internal fails the check and the fix names it."""
    check = _internals_check(lambda: ["SDK internal Client._endpoint is missing or changed"])
    assert check.status == FAILURE
    assert "Client._endpoint" in (check.fix or "")
    assert exit_status([check]) == 1


def test_settings_sources_are_reported(doctor_emulator: Emulator) -> None:
    """Each setting is reported with where it came from: variable, derived or default."""
    environ = {"GLOBESMS_ENDPOINT": doctor_emulator.endpoint, "GLOBESMS_PROTOCOL": "http"}
    with override_default_credential(static_credential(KEY_ID, SECRET)):
        code, report = _command(environ)
    assert code == 0
    values = _checks(report)["settings"]["detail"]["values"]
    assert values["endpoint"] == {"value": doctor_emulator.endpoint,
                                  "source": f"GLOBESMS_ENDPOINT={doctor_emulator.endpoint}"}
    assert values["read_timeout"]["source"] == "default"


def _command(environ: dict[str, str]) -> tuple[int, str]:
    """Run the doctor command with an explicit environment; its exit code and JSON report."""
    import io

    from globesms._doctor import command

    out = io.StringIO()
    code = command(json_output=True, environ=environ, timeout=FAST, out=out)
    return code, out.getvalue()


def _checks(report: str) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in json.loads(report)["checks"]}


def test_bad_settings_fail_without_network() -> None:
    """Settings that do not load fail the settings check with the fix, and exit 1."""
    code, report = _command({"GLOBESMS_PROTOCOL": "ftp"})
    checks = _checks(report)
    assert code == 1
    assert checks["settings"]["status"] == FAILURE
    assert "GLOBESMS_PROTOCOL" in checks["settings"]["fix"]
    assert "dns" not in checks
    assert checks["signed call"]["status"] == SKIPPED


def test_cli_sandbox_json_all_ok(capsys: pytest.CaptureFixture[str]) -> None:
    """`globesms doctor --sandbox --json` exits 0 with every check ok or skipped."""
    code = main(["doctor", "--sandbox", "--json", "--timeout", "1"])
    out = capsys.readouterr().out
    report = json.loads(out)
    assert code == 0 and report["ok"] is True
    assert {c["status"] for c in report["checks"]} <= {OK, SKIPPED}
    assert _checks(out)["settings"]["detail"]["values"]["endpoint"]["source"] == "--sandbox"


def test_cli_text_failure_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`globesms doctor` against a closed port prints the failure with its fix and exits 1."""
    monkeypatch.setenv("GLOBESMS_ENDPOINT", f"127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("GLOBESMS_PROTOCOL", "http")
    with override_default_credential(static_credential(KEY_ID, SECRET)):
        code = main(["doctor", "--timeout", "0.5"])
    out = capsys.readouterr().out
    assert code == 1
    assert any(line.startswith("failure  tcp") for line in out.splitlines())
    assert "fix: check endpoint" in out
    _assert_no_secret(out)


def test_no_credential_names_the_fix(doctor_emulator: Emulator) -> None:
    """A credential chain that finds nothing fails with the variables to export."""
    def nothing() -> Any:
        raise RuntimeError("chain found nothing at http://100.100.100.200/secret-path")

    settings = Settings(endpoint=doctor_emulator.endpoint, protocol="http")
    checks = _by_name(run_checks(Inputs(settings, {}, {}, credential=nothing, timeout=FAST)))
    assert checks["credentials"].status == FAILURE
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in (checks["credentials"].fix or "")
    assert "secret-path" not in as_text(list(checks.values()))
    assert checks["signed call"].status == SKIPPED


def test_hung_credential_chain_is_bounded(doctor_emulator: Emulator) -> None:
    """A credential chain that never returns fails after the timeout, naming the metadata fix."""
    release = threading.Event()

    def hang() -> Any:
        release.wait(10)
        raise RuntimeError("released")

    settings = Settings(endpoint=doctor_emulator.endpoint, protocol="http")
    try:
        checks = _by_name(run_checks(Inputs(settings, {}, {}, credential=hang, timeout=0.2)))
    finally:
        release.set()
    assert checks["credentials"].status == FAILURE
    assert "ALIBABA_CLOUD_ECS_METADATA_DISABLED" in (checks["credentials"].fix or "")


def test_masking_helpers() -> None:
    """Key ids keep four leading and three trailing characters; URL passwords are hidden."""
    assert mask_key_id("LTAI5tAbCdEfGhIj") == "LTAI****hIj"
    assert mask_key_id("short") == "sh****"
    assert redact_url("redis://user:pw@host:6379/0") == "redis://****@host:6379/0"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"
    assert redact_text("GLOBESMS_RATE_STORE=rediss://:p@ss@h:1/0") == (
        "GLOBESMS_RATE_STORE=rediss://****@h:1/0"
    )

