"""Find the verification code in a message text, as the inbox highlights it.

A WebOTP last line (``@example.com #123456``) names the code explicitly and wins;
otherwise the first run of 4-10 ASCII digits that is not part of a longer run of
digits (a phone number, an amount with a decimal point) is taken.
"""

from __future__ import annotations

import re

_WEBOTP = re.compile(r"(?:^|\n)@[^\s#@]+ #([0-9]{4,10})[ \t]*\Z")
_DIGITS = re.compile(r"(?<![0-9.,+])[0-9]{4,10}(?![0-9]|[.,][0-9])")


def find_code(text: str) -> tuple[str, int] | None:
    """``(code, index in text)`` of the verification code in ``text``, or None."""
    match = _WEBOTP.search(text.rstrip("\n"))
    if match is not None:
        return match.group(1), match.start(1)
    match = _DIGITS.search(text)
    if match is not None:
        return match.group(0), match.start(0)
    return None
