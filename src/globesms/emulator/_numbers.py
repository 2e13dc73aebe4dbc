"""Recipient checks and the ``NumberDetail`` of an accepted message (via ``phonenumbers``)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import carrier, geocoder

_DIGITS = re.compile(r"[0-9]{8,15}")

MOBILE_NUMBER_ILLEGAL = "MOBILE_NUMBER_ILLEGAL"
NOT_SUPPORTED_COUNTRY = "NOT_SUPPORTED_COUNTRY"
_MAINLAND_CHINA_PREFIX = "86"


@dataclass(frozen=True)
class NumberDetail:
    """Where a number belongs, as reported back in ``NumberDetail``."""

    country: str
    region: str
    carrier: str


@functools.lru_cache(maxsize=4096)
def _parse(to: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse("+" + to, None)
    except phonenumbers.NumberParseException:
        return None


def check_number(to: str, *, allow_mainland: bool = False) -> str | None:
    """The business error code for recipient ``to`` (digits as sent), or None if acceptable.

    ``to`` must be 8 to 15 ASCII digits, country code first, no ``+``; the
    country code must be a known one. Chinese mainland numbers (``86``) are
    refused unless ``allow_mainland`` (only SendMessageWithTemplate serves them).
    """
    if not _DIGITS.fullmatch(to):
        return MOBILE_NUMBER_ILLEGAL
    if not allow_mainland and to.startswith(_MAINLAND_CHINA_PREFIX):
        return NOT_SUPPORTED_COUNTRY
    if _parse(to) is None:
        return MOBILE_NUMBER_ILLEGAL
    return None


def _country_name(number: phonenumbers.PhoneNumber) -> str:
    name: str = geocoder.country_name_for_number(number, "en")
    if name:
        return name
    region: str = phonenumbers.region_code_for_country_code(number.country_code or 0)
    example = phonenumbers.example_number(region)
    if example is not None:
        name = geocoder.country_name_for_number(example, "en")
    return name or region


@functools.lru_cache(maxsize=4096)
def describe_number(to: str) -> NumberDetail:
    """Country (English name), region and carrier of an acceptable number."""
    number = _parse(to)
    if number is None:
        raise ValueError("describe_number() needs a number that check_number() accepted")
    country = _country_name(number)
    region: str = geocoder.description_for_number(number, "en") or country
    operator: str = carrier.name_for_number(number, "en") or "Unknown"
    return NumberDetail(country=country, region=region, carrier=operator)
