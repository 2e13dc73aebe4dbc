"""globesms.testing: the helpers a project uses to test its own SMS code against the emulator."""

from __future__ import annotations

import pytest

from globesms import SmsService
from globesms.emulator import Emulator, Reply
from globesms.testing import service_for


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_service_for_sends_to_the_emulator(tls: bool) -> None:
    """service_for signs with the emulator's key over its protocol (HTTPS with its CA too)."""
    with Emulator(access_keys={"ID": "SECRET"}, tls=tls) as emu:
        receipt = service_for(emu).send("+44 7700 900123", "hello")
        [message] = emu.messages
    assert receipt.message_id == message.message_id
    assert message.message == "hello"


def test_service_for_applies_setting_overrides() -> None:
    """Overrides reach the service: with max_attempts=1 a SYSTEM_ERROR is not retried."""
    from globesms import ServiceUnavailable

    with Emulator(access_keys={"ID": "SECRET"}) as emu:
        emu.script("447700900123", Reply("SYSTEM_ERROR"))
        service = service_for(emu, max_attempts=1)
        assert isinstance(service, SmsService)
        with pytest.raises(ServiceUnavailable):
            service.send("+44 7700 900123", "hello")
        assert len(emu.requests) == 1


def test_service_for_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's GLOBESMS_* variables cannot redirect the service away from the emulator."""
    monkeypatch.setenv("GLOBESMS_ENDPOINT", "127.0.0.1:9")
    monkeypatch.setenv("GLOBESMS_MAX_ATTEMPTS", "nope")
    with Emulator(access_keys={"ID": "SECRET"}) as emu:
        service_for(emu).send("+44 7700 900123", "hello")
        assert len(emu.messages) == 1
