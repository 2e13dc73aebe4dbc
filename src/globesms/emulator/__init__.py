"""A loopback emulator of Alibaba Cloud's SMS API (Dysmsapi 2018-05-01, all six operations).

For tests and the CLI sandbox: the official SDK talks to it over real HTTP(S)
on 127.0.0.1, signatures are verified as the gateway does, accepted messages
are recorded, and faults can be scripted per recipient::

    from globesms.emulator import Emulator, HttpError, Reply

    with Emulator(access_keys={"ID": "SECRET"}) as emu:
        emu.script("85212345678", Reply("SYSTEM_ERROR"), HttpError(503))
        ...  # point the SDK at emu.endpoint with protocol="http"
        emu.messages  # what was accepted

Every running emulator also serves an SMS inbox page and a JSON control API
under ``/_emulator/`` (``emu.inbox_url``; see docs/inbox.md).

``tls=True`` needs the ``emulator`` extra (trustme).
"""

from ._emulator import Emulator
from ._faults import MAGIC_NUMBERS, MagicNumber
from ._outcomes import Accept, Delay, Drop, HttpError, Outcome, Reply
from ._records import AcceptedMessage, Conversion, ConversionReport, RecordedRequest
from ._standalone import serve

__all__ = [
    "MAGIC_NUMBERS",
    "Accept",
    "AcceptedMessage",
    "Conversion",
    "ConversionReport",
    "Delay",
    "Drop",
    "Emulator",
    "HttpError",
    "MagicNumber",
    "Outcome",
    "RecordedRequest",
    "Reply",
    "serve",
]
