"""Segment counting for :meth:`SmsService.preview` (GSM 03.38, 3GPP TS 23.038).

GSM-7 text: 160 septets in one SMS, 153 per part when split; extension-table characters take two
septets and are never split across parts. Anything else is UCS-2: 70 UTF-16 units in one SMS, 67
per part; a surrogate pair (two units) is never split. The emulator counts with its own code; a
property test keeps the two in agreement.
"""

from __future__ import annotations

# The default alphabet, row by row of the 03.38 table (the escape, 0x1B, left out).
_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLM"
    "NOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Reached through the escape: two septets each.
_EXTENDED = frozenset("€[]{}\\^~|\f")

#: (single-part capacity, per-part capacity) in septets or UTF-16 units.
_LIMITS = {"GSM-7": (160, 153), "UCS-2": (70, 67)}


def encoding_of(text: str) -> str:
    """``"GSM-7"`` when every character is in the default alphabet or its extension."""
    for ch in text:
        if ch not in _BASIC and ch not in _EXTENDED:
            return "UCS-2"
    return "GSM-7"


def segments_of(text: str, encoding: str | None = None) -> int:
    """How many SMS parts ``text`` is billed as (at least one)."""
    encoding = encoding or encoding_of(text)
    wide = _EXTENDED if encoding == "GSM-7" else None
    units = [
        (2 if ch in wide else 1) if wide is not None else (2 if ord(ch) > 0xFFFF else 1)
        for ch in text
    ]
    single, part = _LIMITS[encoding]
    if sum(units) <= single:
        return 1
    parts, room = 1, part
    for size in units:
        if size > room:  # a two-unit character does not fit: it opens the next part
            parts, room = parts + 1, part
        room -= size
    return parts
