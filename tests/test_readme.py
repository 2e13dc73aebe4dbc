"""The README's examples run as written: the FastAPI app is executed against the emulator."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from globesms.emulator import Drop, Emulator, HttpError

README = Path(__file__).resolve().parent.parent / "README.md"


def _example(name: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- readme-test: {name} -->\n```python\n(.*?)```", text, re.S)
    assert match, f"README example {name!r} not found"
    return match.group(1)


@pytest.fixture
def app(sms_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The README's FastAPI app, executed as a module, its SmsService aimed at the emulator
    (one attempt per send, so a scripted throttle is answered without real waiting)."""
    monkeypatch.setenv("GLOBESMS_MAX_ATTEMPTS", "1")
    namespace: dict[str, Any] = {"__name__": "readme_fastapi"}
    exec(compile(_example("fastapi"), "README.md:fastapi", "exec"), namespace)
    return namespace["app"]


def _post(app: Any, body: dict[str, Any]) -> Any:
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        return client.post("/invite", json=body)


def test_fastapi_example_sends(app: Any, sms_emulator: Emulator) -> None:
    """A number in the JSON body is sent a 6-digit code and the message id comes back."""
    response = _post(app, {"phone": "+44 7700 900123"})
    assert response.status_code == 200, response.text
    [message] = sms_emulator.messages
    assert response.json() == {"status": "sent", "message_id": message.message_id}
    assert re.fullmatch(r"Your invite code is \d{6}", message.message)


@pytest.mark.parametrize(
    ("outcome", "status"),
    [(None, 422), (HttpError(429, "Throttling.User", retry_after_ms=3000), 503),
     (Drop(after_read=True), 200), (HttpError(403, "Forbidden.RAM"), 502)],
    ids=["invalid-number", "throttled", "uncertain", "operator"],
)
def test_fastapi_example_handles_every_error_class(
    app: Any, sms_emulator: Emulator, outcome: Any, status: int
) -> None:
    """Invalid input is 422, nothing sent is 503 with Retry-After, uncertain is 'pending', an
    operator problem is 502."""
    phone = "07700 900123" if outcome is None else "+44 7700 900123"
    if outcome is not None:
        sms_emulator.script(None, outcome)
    response = _post(app, {"phone": phone})
    assert response.status_code == status, response.text
    if status == 503:
        assert response.headers["retry-after"] == "3"
    if status == 200:
        assert response.json() == {"status": "pending"}
    assert "900123" not in response.text or status == 422


@pytest.fixture
def verify_app(sms_emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The README's verification app, with an SQLite store and a secret from the environment."""
    monkeypatch.setenv("GLOBESMS_VERIFY_STORE", f"sqlite:///{tmp_path / 'verify.sqlite3'}")
    monkeypatch.setenv("GLOBESMS_VERIFY_SECRET", "ab" * 32)
    namespace: dict[str, Any] = {"__name__": "readme_verify"}
    exec(compile(_example("verify-fastapi"), "README.md:verify-fastapi", "exec"), namespace)
    return namespace["app"]


def test_verify_example_end_to_end(verify_app: Any, sms_emulator: Emulator) -> None:
    """start sends a code (number in the body); a wrong code is refused, the right one approved
    once; a second start inside the cooldown is 429 ResendCooldown with Retry-After."""
    from fastapi.testclient import TestClient

    phone = {"phone": "+44 7700 900123"}
    with TestClient(verify_app) as client:
        started = client.post("/phone/start", json=phone)
        assert started.status_code == 200, started.text
        assert started.json()["status"] == "sent"
        code = re.search(r"\b(\d{6})\b", sms_emulator.messages[-1].message)
        assert code is not None
        again = client.post("/phone/start", json=phone)
        assert again.status_code == 429 and again.json()["detail"] == "ResendCooldown"
        assert int(again.headers["retry-after"]) >= 1
        wrong = "000000" if code.group(1) != "000000" else "111111"
        assert client.post("/phone/check", json={**phone, "code": wrong}).json() == {
            "verified": False, "status": "wrong_code"}
        assert client.post("/phone/check", json={**phone, "code": code.group(1)}).json() == {
            "verified": True, "status": "approved"}
        assert client.post("/phone/check", json={**phone, "code": code.group(1)}).json() == {
            "verified": False, "status": "not_found"}
        assert client.post("/phone/start", json={"phone": "07700 900123"}).status_code == 422
