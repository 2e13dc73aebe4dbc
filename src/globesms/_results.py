"""What calls return: receipts, delivery status, batch results and previews.

Every result's ``repr`` masks phone numbers; none holds message text, codes or parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from ._validate import mask_number

if TYPE_CHECKING:
    from ._errors import SmsError


@dataclass(frozen=True, kw_only=True, repr=False)
class SendReceipt:
    """What Alibaba Cloud accepted. ``repr`` masks the number."""

    message_id: str
    request_id: str
    to: str
    segments: int
    sender: str | None
    country: str | None
    region: str | None
    carrier: str | None
    attempts: int

    def __repr__(self) -> str:
        return (
            f"SendReceipt(message_id={self.message_id!r}, request_id={self.request_id!r}, "
            f"to={mask_number(self.to)!r}, segments={self.segments!r}, sender={self.sender!r}, "
            f"country={self.country!r}, region={self.region!r}, carrier={self.carrier!r}, "
            f"attempts={self.attempts!r})"
        )


#: ``QueryMessage``'s ``Status`` values.
STATES = {"1": "delivered", "2": "failed", "3": "sending"}


@dataclass(frozen=True, kw_only=True, repr=False)
class DeliveryStatus:
    """Where one message stands (``QueryMessage``). ``state`` is ``"sending"``, ``"delivered"``,
    ``"failed"`` or ``"not_found"`` (the provider does not know the id, or not yet)."""

    message_id: str
    state: str
    error_code: str | None = None
    error_description: str | None = None
    sent_at: datetime | None = None
    received_at: datetime | None = None
    to: str | None = None
    country: str | None = None
    carrier: str | None = None
    request_id: str = ""

    def __repr__(self) -> str:
        return (
            f"DeliveryStatus(message_id={self.message_id!r}, state={self.state!r}, "
            f"error_code={self.error_code!r}, sent_at={self.sent_at!r}, "
            f"received_at={self.received_at!r}, to={mask_number(self.to)!r}, "
            f"country={self.country!r}, carrier={self.carrier!r})"
        )


@dataclass(frozen=True, repr=False)
class Accepted:
    """One number of a batch that the provider accepted, with its message id."""

    to: str
    message_id: str

    def __repr__(self) -> str:
        return f"Accepted(to={mask_number(self.to)!r}, message_id={self.message_id!r})"


@dataclass(frozen=True, repr=False)
class Rejected:
    """One number of a batch that was not sent, and the error that says why."""

    to: str
    error: SmsError

    def __repr__(self) -> str:
        return f"Rejected(to={mask_number(self.to)!r}, error={self.error!r})"


@dataclass(frozen=True, repr=False)
class BatchResult:
    """Every input number is in exactly one of ``accepted``, ``rejected`` and ``uncertain``.

    ``uncertain`` numbers may have been sent: their request's outcome is unknown, or the answer
    could not be matched to them.
    """

    accepted: list[Accepted] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        uncertain = [mask_number(number) for number in self.uncertain]
        return (
            f"BatchResult(accepted={self.accepted!r}, rejected={self.rejected!r}, "
            f"uncertain={uncertain!r}, request_ids={self.request_ids!r})"
        )


@dataclass(frozen=True, kw_only=True, repr=False)
class Preview:
    """What a send would cost, computed locally: nothing is sent."""

    to: str
    country: str
    encoding: str
    characters: int
    segments: int

    def __repr__(self) -> str:
        return (
            f"Preview(to={mask_number(self.to)!r}, country={self.country!r}, "
            f"encoding={self.encoding!r}, characters={self.characters!r}, "
            f"segments={self.segments!r})"
        )


@dataclass(frozen=True, kw_only=True)
class Reported:
    """The provider took a conversion report."""

    request_id: str
    attempts: int
