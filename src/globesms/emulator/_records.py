"""What the emulator remembers: accepted messages, conversions and every request it saw.

Phone numbers, message text, template values and credentials stay out of every
``repr``, so a log line or a failed assertion does not echo them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class AcceptedMessage:
    """A message the emulator accepted (``ResponseCode`` ``OK``), from any send operation.

    ``action`` is the operation that sent it (``SendMessageToGlobe``,
    ``BatchSendMessageToGlobe`` or ``SendMessageWithTemplate``). For template
    sends ``sender`` is the signature name, ``template_code`` and
    ``template_param`` are what was sent, and ``message`` is the rendered text
    when the template's text was given to the emulator (else empty).
    ``accepted_at`` is the emulator clock (epoch seconds) at acceptance.
    """

    to: str = field(repr=False)
    message: str = field(repr=False)
    sender: str | None
    message_type: str | None
    task_id: str | None
    validity_period: int | None
    channel_id: str | None
    message_id: str
    request_id: str
    segments: int
    country: str
    region: str
    carrier: str
    action: str = "SendMessageToGlobe"
    template_code: str | None = None
    template_param: str | None = field(default=None, repr=False)
    accepted_at: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request that reached the emulator, whatever became of it.

    ``query`` holds the decoded query parameters (plus, for a form-encoded body
    such as ConversionData's, the body parameters) and ``headers`` the request
    headers under lower-case names, ``authorization`` and any
    ``x-acs-security-token`` included; they stay out of ``repr``, as does ``to``.
    ``http_status`` and ``code`` are None when the connection was dropped
    without an answer (or while a delayed answer is still pending); ``code``
    is the ``ResponseCode`` of an HTTP 200 answer or the gateway ``Code``.
    Requests to the ``/_emulator/`` admin paths are not recorded.
    """

    action: str | None
    query: dict[str, str] = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    http_status: int | None
    code: str | None
    to: str | None = field(repr=False)
    target: str = field(default="", repr=False)
    """The request target exactly as received: path and raw (still encoded) query string."""


@dataclass(frozen=True)
class Conversion:
    """An accepted ``SmsConversion`` report (was this OTP used?)."""

    delivered: bool
    message_id: str | None
    to: str | None = field(repr=False)
    conversion_time: int | None
    request_id: str


@dataclass(frozen=True)
class ConversionReport:
    """An accepted ``ConversionData`` report (an aggregate OTP conversion rate)."""

    rate: float
    report_time: int | None
    request_id: str


class Changes:
    """A version number that moves whenever the messages change, and a way to wait for it.

    The inbox page's event stream waits here; ``close()`` wakes every waiter for good.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._version = 0
        self._closed = False

    @property
    def version(self) -> int:
        with self._condition:
            return self._version

    def bump(self) -> None:
        with self._condition:
            self._version += 1
            self._condition.notify_all()

    def wait(self, seen: int, timeout: float) -> int | None:
        """The version once it is not ``seen`` (``seen`` after ``timeout``); None: closed."""
        with self._condition:
            self._condition.wait_for(lambda: self._closed or self._version != seen, timeout)
            return None if self._closed else self._version

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()
