"""How many SMS segments a text takes (GSM 03.38 / 3GPP TS 23.038).

A text made only of GSM-7 characters is sent in 7-bit septets: 160 fit one
SMS, and a longer text is split into parts of 153 (the rest of each part
holds the concatenation header). Characters of the extension table take two
septets (an escape plus the character). Any other character forces UCS-2:
70 UTF-16 code units in one SMS, 67 per part otherwise; characters outside
the Basic Multilingual Plane (most emoji) take two units.

A character is never split across two parts: an escape pair or a surrogate
pair that does not fit in what is left of a part starts the next one, as
handsets and SMSCs do.
"""

from __future__ import annotations

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
"""The 127 characters of the GSM 03.38 default alphabet (the escape code excluded)."""

GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
"""Characters of the default alphabet extension table; each costs two septets."""

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


def is_gsm7(text: str) -> bool:
    """Whether ``text`` can be sent with the GSM-7 default alphabet."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _gsm7_cost(ch: str) -> int:
    return 2 if ch in GSM7_EXTENSION else 1


def _ucs2_cost(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def count_segments(text: str) -> int:
    """Number of SMS segments ``text`` is billed as (an empty text is one segment)."""
    if is_gsm7(text):
        costs = [_gsm7_cost(ch) for ch in text]
        single, part = GSM7_SINGLE, GSM7_PART
    else:
        costs = [_ucs2_cost(ch) for ch in text]
        single, part = UCS2_SINGLE, UCS2_PART
    if sum(costs) <= single:
        return 1
    segments, used = 1, 0
    for cost in costs:
        if used + cost > part:
            segments += 1
            used = 0
        used += cost
    return segments
