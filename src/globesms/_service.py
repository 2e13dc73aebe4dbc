"""The facade: :class:`SmsService`, a thin list of public calls over one driver.

Each call validates and builds its request in :mod:`._jobs` (or :mod:`._batch`), and the
:class:`~._driver.Driver` runs it: deadline, rate, in-flight bound, retries, errors, observers.
``x()`` and ``x_async()`` differ only in how they wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

from . import _batch, _jobs, _log
from ._client import build_client, guard_client
from ._credentials import CredentialGate, CredentialSource, default_credential
from ._driver import Driver
from ._errors import SmsError
from ._governor import Governor, build_governor
from ._hooks import Hook, default_hooks
from ._operations import (
    REPORT_CONVERSION,
    REPORT_CONVERSION_RATE,
    SEND,
    SEND_BATCH,
    SEND_TEMPLATE,
    STATUS,
    Operation,
)
from ._results import BatchResult, DeliveryStatus, Preview, Reported, SendReceipt
from ._retry import Clock
from ._segments import encoding_of, segments_of
from ._settings import Settings
from ._transport import AsyncTransport, SyncTransport


class SmsService:
    """Send SMS through Alibaba Cloud's international SMS API, with validation, safe retries
    and safe logs.

    Build it once and share it between threads and tasks. ``settings`` defaults to
    :meth:`Settings.load`; ``credential`` defaults to the Alibaba Cloud default chain; ``client``
    replaces the SDK client entirely (its own credential is then used as is). ``hooks`` replaces
    the observers (default: structured logs). ``sleep``, ``async_sleep`` and ``clock`` exist for
    tests.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        credential: CredentialSource | None = None,
        client: Any = None,
        hooks: Sequence[Hook] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self.settings = settings if settings is not None else Settings.load()
        if self.settings.quiet_sdk_logs:
            _log.install_sdk_filters()
        with _log.quiet_sdk(self.settings.quiet_sdk_logs):
            if client is None:
                source = credential if credential is not None else default_credential()
                client = build_client(self.settings, source)
                credential = source
        guard_client(client)
        account = _account_of(credential)
        governors: dict[Operation, Governor] = {}
        for operation in (SEND, SEND_BATCH):  # the others are not governed unless asked for
            governor = build_governor(self.settings, operation=operation.action,
                                      account=account, clock=clock)
            if governor is not None:
                governors[operation] = governor
        self._driver = Driver(
            self.settings,
            SyncTransport(client),
            AsyncTransport(client, ca_file=self.settings.ca_file,
                           pool_size=self.settings.max_in_flight,
                           timeouts=(self.settings.connect_timeout, self.settings.read_timeout)),
            gate=CredentialGate(credential, clock=clock) if credential is not None else None,
            hooks=list(hooks) if hooks is not None else default_hooks(self.settings),
            governors=governors,
            sleep=sleep, async_sleep=async_sleep, clock=clock,
        )

    def __repr__(self) -> str:
        settings = self.settings
        return f"SmsService(endpoint={settings.resolved_endpoint!r}, region={settings.region!r})"

    def __enter__(self) -> SmsService:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> SmsService:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def close(self) -> None:
        """Stop accepting calls. Sync connections belong to the SDK's shared pool and stay."""
        self._driver.close()

    async def aclose(self) -> None:
        """Stop accepting calls and close this event loop's connection pool."""
        await self._driver.aclose()

    # -- SendMessageToGlobe ----------------------------------------------------------------------

    def send(
        self, to: str, message: str, *, sender: str | None = None,
        message_type: str | None = None, task_id: str | None = None,
        validity_period: int | None = None,
    ) -> SendReceipt:
        """Send ``message`` to ``to``; return the receipt or raise a :class:`SmsError`.

        ``sender`` and ``message_type`` default to the settings. Invalid input raises
        :class:`InvalidRequest` and nothing is sent; :class:`DeliveryUncertain` means the SMS
        may have gone out. Never repeated after an uncertain outcome (unless retry_uncertain).
        """
        return self._driver.run(SEND, to, lambda: _jobs.send(
            self.settings, to, message, sender, message_type, task_id, validity_period))

    async def send_async(
        self, to: str, message: str, *, sender: str | None = None,
        message_type: str | None = None, task_id: str | None = None,
        validity_period: int | None = None,
    ) -> SendReceipt:
        """:meth:`send` for asyncio: same arguments, receipt, errors, retries and log events.

        Connections are pooled per service and event loop (close with :meth:`aclose` or
        ``async with``); waits never block the loop; cancelling stops the retries.
        """
        return await self._driver.run_async(SEND, to, lambda: _jobs.send(
            self.settings, to, message, sender, message_type, task_id, validity_period))

    def preview(
        self, to: str, message: str, *, sender: str | None = None,
        message_type: str | None = None,
    ) -> Preview:
        """What :meth:`send` would send, computed locally: no network, no rate slot.

        Raises exactly what ``send`` raises for invalid input.
        """
        out = _jobs.outgoing(self.settings, to, message, sender, message_type, None, None)
        encoding = encoding_of(out.message)
        return Preview(
            to=out.recipient.digits, country=str(out.recipient.country_code),
            encoding=encoding, characters=len(out.message),
            segments=segments_of(out.message, encoding),
        )

    async def preview_async(
        self, to: str, message: str, *, sender: str | None = None,
        message_type: str | None = None,
    ) -> Preview:
        """:meth:`preview` for symmetry with the other calls (it never waits)."""
        return self.preview(to, message, sender=sender, message_type=message_type)

    # -- BatchSendMessageToGlobe -----------------------------------------------------------------

    def send_batch(
        self, to: Sequence[str], message: str | Sequence[str], *, message_type: str = "NOTIFY",
        sender: str | None = None, task_id: str | None = None,
        validity_period: int | None = None,
    ) -> BatchResult:
        """Send one text (or one per number) to many numbers, in as few requests as possible.

        Invalid numbers and texts are rejected and never sent; a failed request does not
        raise (its numbers are rejected, or uncertain when they may have been sent), but an
        error that stops the batch before anything was sent does. Paced to one request per
        second, also across calls.
        """
        plan = self._plan(to, message, message_type, sender, task_id, validity_period)
        for chunk in plan.chunks:
            try:
                plan.accept(chunk, self._driver.run(SEND_BATCH, None, chunk.prepare,
                                                    len(chunk.numbers)))
            except SmsError as error:
                plan.fail(chunk, error)
        return plan.result

    async def send_batch_async(
        self, to: Sequence[str], message: str | Sequence[str], *, message_type: str = "NOTIFY",
        sender: str | None = None, task_id: str | None = None,
        validity_period: int | None = None,
    ) -> BatchResult:
        """:meth:`send_batch` for asyncio."""
        plan = self._plan(to, message, message_type, sender, task_id, validity_period)
        for chunk in plan.chunks:
            try:
                answer = await self._driver.run_async(SEND_BATCH, None, chunk.prepare,
                                                      len(chunk.numbers))
                plan.accept(chunk, answer)
            except SmsError as error:
                plan.fail(chunk, error)
        return plan.result

    def _plan(
        self, to: object, message: object, message_type: object, sender: object,
        task_id: object, validity_period: object,
    ) -> _batch.BatchPlan:
        return self._driver.validated(SEND_BATCH, lambda: _batch.plan(
            self.settings, to, message, message_type=message_type, sender=sender,
            task_id=task_id, validity_period=validity_period))

    # -- SendMessageWithTemplate -----------------------------------------------------------------

    def send_template(
        self, to: str, template_code: str, *, sign_name: str,
        params: Mapping[str, Any] | None = None, validity_period: int | None = None,
    ) -> SendReceipt:
        """Send an approved template to a Chinese mainland (+86) number, which ``send``
        refuses. ``params`` fills the template's variables (sent as JSON)."""
        return self._driver.run(SEND_TEMPLATE, to, lambda: _jobs.template(
            to, template_code, sign_name, params, validity_period))

    async def send_template_async(
        self, to: str, template_code: str, *, sign_name: str,
        params: Mapping[str, Any] | None = None, validity_period: int | None = None,
    ) -> SendReceipt:
        """:meth:`send_template` for asyncio."""
        return await self._driver.run_async(SEND_TEMPLATE, to, lambda: _jobs.template(
            to, template_code, sign_name, params, validity_period))

    # -- QueryMessage ----------------------------------------------------------------------------

    def status(self, message_id: str) -> DeliveryStatus:
        """Where a sent message stands; ``state="not_found"`` when the provider does not know
        the id (yet). Safe to repeat: uncertain outcomes are retried."""
        return self._driver.run(STATUS, None, lambda: _jobs.status(message_id))

    async def status_async(self, message_id: str) -> DeliveryStatus:
        """:meth:`status` for asyncio."""
        return await self._driver.run_async(STATUS, None, lambda: _jobs.status(message_id))

    # -- SmsConversion and ConversionData --------------------------------------------------------

    def report_conversion(
        self, message_id: str, *, to: str | None = None, delivered: bool = True,
        at: datetime | None = None,
    ) -> Reported:
        """Tell Alibaba whether the code in a message was used (``SmsConversion``)."""
        return self._driver.run(REPORT_CONVERSION, to,
                                lambda: _jobs.conversion(message_id, to, delivered, at))

    async def report_conversion_async(
        self, message_id: str, *, to: str | None = None, delivered: bool = True,
        at: datetime | None = None,
    ) -> Reported:
        """:meth:`report_conversion` for asyncio."""
        return await self._driver.run_async(
            REPORT_CONVERSION, to,
            lambda: _jobs.conversion(message_id, to, delivered, at))

    def report_conversion_rate(self, rate: float, *, at: datetime | None = None) -> Reported:
        """Report the share of codes that were used, from 0 to 1 (``ConversionData``)."""
        return self._driver.run(REPORT_CONVERSION_RATE, None,
                                lambda: _jobs.conversion_rate(rate, at))

    async def report_conversion_rate_async(
        self, rate: float, *, at: datetime | None = None,
    ) -> Reported:
        """:meth:`report_conversion_rate` for asyncio."""
        return await self._driver.run_async(REPORT_CONVERSION_RATE, None,
                                            lambda: _jobs.conversion_rate(rate, at))


def _account_of(credential: CredentialSource | None) -> Callable[[], str | None] | None:
    """The AccessKey id behind ``credential``, asked for on the first shared rate decision."""
    if credential is None:
        return None
    source = credential

    def account() -> str | None:
        return getattr(source.get_credential(), "access_key_id", None)

    return account
