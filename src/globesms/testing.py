"""Helpers for testing code that sends SMS with globesms, against the emulator.

>>> from globesms.emulator import Emulator
>>> from globesms.testing import service_for
>>> with Emulator(access_keys={"ID": "SECRET"}) as emu:
...     receipt = service_for(emu).send("+44 7700 900123", "hello")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._credentials import CredentialSource, static_credential
from ._service import SmsService
from ._settings import Settings

if TYPE_CHECKING:
    from .emulator import Emulator

__all__ = ["service_for", "static_credential"]


def service_for(emulator: Emulator, **settings: Any) -> SmsService:
    """An :class:`SmsService` that sends to ``emulator`` with the first key pair it accepts.

    ``settings`` override :class:`Settings` fields (e.g. ``max_attempts=1``); the environment and
    config files are not read, so a developer's shell cannot change the result.
    """
    key_id, secret = next(iter(emulator.access_keys.items()))
    protocol = "https" if emulator.ca_file else "http"
    options: dict[str, Any] = {"endpoint": emulator.endpoint, "protocol": protocol,
                               "ca_file": emulator.ca_file, **settings}
    credential: CredentialSource = static_credential(key_id, secret)
    return SmsService(Settings.load(environ={}, **options), credential=credential)
