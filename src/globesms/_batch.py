"""Batch sends (``BatchSendMessageToGlobe``): planning, chunking and reading the answers.

Every number and text is validated first; invalid ones are rejected and never sent. The rest go
out in requests of at most 1,000 numbers. An answer is matched to numbers only where the match
can be proven; a number whose outcome cannot be told is reported as uncertain, never guessed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from alibabacloud_dysmsapi20180501 import models

from ._driver import Job
from ._errors import (
    AuthError,
    ConfigurationError,
    DeliveryUncertain,
    InvalidRequest,
    MessageRejected,
    SmsError,
)
from ._jobs import check_code, outgoing
from ._results import Accepted, BatchResult, Rejected
from ._settings import Settings
from ._transport import Answer
from ._validate import check_options

#: The API's limit of numbers per request.
MAX_NUMBERS = 1000
BATCH_TYPES = ("NOTIFY", "MKT")
#: Errors that stop a whole batch when nothing has been sent yet: every request would fail alike.
STOPPERS = (ConfigurationError, AuthError)


@dataclass
class Chunk:
    """One request's numbers (international digits) and texts, position-matched."""

    numbers: list[str]
    texts: list[str]
    job: Job[tuple[str, list[str], list[str]]]

    def prepare(self) -> Job[tuple[str, list[str], list[str]]]:
        """The chunk's job, already validated."""
        return self.job


@dataclass
class BatchPlan:
    """What a batch call sends, and the result as it is filled in."""

    chunks: list[Chunk]
    result: BatchResult = field(default_factory=BatchResult)
    sent: bool = False

    def accept(self, chunk: Chunk, answer: tuple[str, list[str], list[str]]) -> None:
        """Record a chunk's answer: ids matched to numbers where provable, the rest uncertain."""
        request_id, failed, ids = answer
        self.sent = True
        self.result.request_ids.append(request_id)
        failures = Counter(failed)
        appear = Counter(chunk.numbers)
        delivered: list[str] = []
        for number in chunk.numbers:
            if failures[number] and failures[number] == appear[number]:
                self.result.rejected.append(Rejected(number, MessageRejected(
                    "the provider refused this number in the batch (FailedList)",
                    code="FailedList", request_id=request_id)))
            elif failures[number]:  # listed fewer times than sent: which copy failed is unknown
                self.result.uncertain.append(number)
            else:
                delivered.append(number)
        if ids is not None and len(ids) == len(delivered):
            self.result.accepted.extend(map(Accepted, delivered, ids))
        else:
            self.result.uncertain.extend(delivered)

    def fail(self, chunk: Chunk, error: SmsError) -> None:
        """Record a chunk whose request failed; raise when it stops the whole batch."""
        if isinstance(error, STOPPERS) and not self.sent:
            raise error
        if isinstance(error, DeliveryUncertain):
            self.sent = True
            self.result.uncertain.extend(chunk.numbers)
            if error.request_id:
                self.result.request_ids.append(error.request_id)
        else:
            self.result.rejected.extend(Rejected(number, error) for number in chunk.numbers)


def plan(
    settings: Settings, to: object, message: object, *, message_type: object, sender: object,
    task_id: object, validity_period: object,
) -> BatchPlan:
    """Validate a batch; invalid numbers and texts become rejections, the rest chunks."""
    if isinstance(to, (str, bytes)) or not isinstance(to, Sequence) or not to:
        raise InvalidRequest("to must be a non-empty list of numbers", code="InvalidTo")
    if isinstance(message, str):
        texts: Sequence[object] = [message] * len(to)
    elif isinstance(message, Sequence) and not isinstance(message, bytes) and len(message) == len(
        to
    ):
        texts = message
    else:
        raise InvalidRequest("message must be one text, or a list of texts as long as to",
                             code="InvalidMessage")
    if isinstance(message_type, str) and message_type == "OTP":
        raise InvalidRequest("batches cannot carry OTP messages; send codes one by one with send",
                             code="InvalidType")
    if not isinstance(message_type, str) or message_type not in BATCH_TYPES:
        raise InvalidRequest("message_type must be NOTIFY or MKT for a batch", code="InvalidType")
    chosen = settings.sender if sender is None else sender
    check_options(chosen, message_type, task_id, validity_period)  # a bad option fails the call
    batch = BatchPlan([])
    numbers: list[str] = []
    valid_texts: list[str] = []
    for number, text in zip(to, texts, strict=True):
        try:
            out = outgoing(settings, number, text, sender, message_type, task_id,
                           validity_period)
        except InvalidRequest as error:
            batch.result.rejected.append(Rejected(number if isinstance(number, str) else "",
                                                  error))
            continue
        numbers.append(out.recipient.digits)
        valid_texts.append(out.message)
    for start in range(0, len(numbers), MAX_NUMBERS):
        end = start + MAX_NUMBERS
        part, part_texts = numbers[start:end], valid_texts[start:end]
        request = models.BatchSendMessageToGlobeRequest(
            to=json.dumps(part), message=json.dumps(part_texts, ensure_ascii=False),
            from_=chosen, type=message_type, task_id=task_id, validity_period=validity_period,
        )
        batch.chunks.append(Chunk(part, part_texts, Job(request, _read)))
    return batch


def _read(answer: Answer, attempts: int) -> tuple[str, list[str], list[str]]:
    body = check_code(answer)
    request_id = body.request_id or ""
    failed = _strings(body.failed_list)
    ids = _strings(body.message_id_list)
    if failed is None or ids is None:
        raise DeliveryUncertain(
            "the batch was accepted but its FailedList or MessageIdList could not be read; "
            "check delivery before resending", code="UnparsableResponse", request_id=request_id,
            http_status=answer.status,
        )
    return request_id, failed, ids


def _strings(text: object) -> list[str] | None:
    if text is None or text == "":
        return []
    try:
        value = json.loads(str(text))
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(item, (str, int)) for item in value):
        return None
    return [str(item) for item in value]
