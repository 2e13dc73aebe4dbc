"""OpenTelemetry plumbing (extra ``globesms[otel]``, ``opentelemetry-api`` only).

The SDK puts ``To`` and ``Message`` in the query string of every request, so an application that
auto-instruments ``requests``, ``urllib3`` or ``aiohttp`` would record the number and the text
(a verification code) in its HTTP client spans' ``url.full``. :func:`suppress_http_spans` marks
the current context with OpenTelemetry's "suppress HTTP instrumentation" key, which those
instrumentations check before they start a span; globesms's own spans are not affected.

Without ``opentelemetry-api`` installed the context manager does nothing (one ``None`` check):
an application that has no OpenTelemetry has no HTTP spans to suppress either.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_context: Any
try:
    from opentelemetry import context as _context
except ImportError:  # the otel extra is not installed: nothing to suppress
    _context = None

#: The context key HTTP client instrumentations check (``is_http_instrumentation_enabled``).
#: opentelemetry-api defines it; the plain name is what instrumentations before it looked up.
_SUPPRESS_HTTP_KEY: Any = (
    getattr(_context, "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", "suppress_http_instrumentation")
    if _context is not None
    else None
)


def available() -> bool:
    """Whether ``opentelemetry-api`` is importable (the ``otel`` extra)."""
    return _context is not None


@contextlib.contextmanager
def suppress_http_spans() -> Iterator[None]:
    """While the block runs, HTTP client instrumentations (requests, urllib3, aiohttp) record no
    spans in this context, so no span carries the number or the text from the SDK's query string.
    """
    if _context is None:
        yield
        return
    token = _context.attach(_context.set_value(_SUPPRESS_HTTP_KEY, True))
    try:
        yield
    finally:
        _context.detach(token)
