"""What the emulator remembers: accepted messages and every request it saw."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AcceptedMessage:
    """A message the emulator accepted (``ResponseCode`` ``OK``).

    The text is kept out of ``repr`` so a log line or a failed assertion does
    not echo message content (verification codes, say).
    """

    to: str
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


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request that reached the emulator, whatever became of it.

    ``query`` holds the decoded query parameters and ``headers`` the request
    headers under lower-case names, ``authorization`` and any
    ``x-acs-security-token`` included; both stay out of ``repr``.
    ``http_status`` and ``code`` are None when the connection was dropped
    without an answer (or while a delayed answer is still pending); ``code``
    is the ``ResponseCode`` of an HTTP 200 answer or the gateway ``Code``.
    """

    action: str | None
    query: dict[str, str] = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    http_status: int | None
    code: str | None
    to: str | None
