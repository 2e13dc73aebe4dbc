"""Conversion reports in the background: an approval tells Alibaba (``SmsConversion``) that the
code in that message was used, without delaying ``check``.

One daemon thread per service drains a bounded queue through :meth:`SmsService.report_conversion`
(the facade's one pipeline: validation, retries, logs). A full queue drops the report with a
WARNING; a failed report is logged and never raised. ``close()`` drains what is queued.
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .. import _log

if TYPE_CHECKING:
    from .._service import SmsService

REPORT_FAILED = "verify.conversion_failed"
_STOP = None


class ConversionReporter:
    """A bounded queue of message ids and the thread that reports them."""

    def __init__(self, sms: SmsService, size: int) -> None:
        self._sms = sms
        self._queue: queue.Queue[tuple[str, datetime] | None] = queue.Queue(maxsize=size)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, message_id: str) -> None:
        """Queue one report; never blocks and never raises."""
        if not message_id or self._closed:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._drain, name="globesms-conversions",
                                                daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait((message_id, datetime.now(timezone.utc)))
        except queue.Full:
            _log.emit(logging.WARNING, REPORT_FAILED, "queue full; conversion report dropped",
                      message_id=message_id, outcome="dropped")

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            message_id, at = item
            try:
                self._sms.report_conversion(message_id, delivered=True, at=at)
            except Exception as error:  # a background report must never take the thread down
                _log.emit(logging.WARNING, REPORT_FAILED, f"after {type(error).__name__}",
                          message_id=message_id, outcome="failed",
                          error_class=type(error).__name__, code=getattr(error, "code", None))

    def close(self, timeout: float = 30.0) -> None:
        """Report what is queued (up to ``timeout`` seconds), then stop the thread."""
        self._closed = True
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP, timeout=timeout)
            thread.join(timeout)
