"""Fuzz of every argument of send and send_async: a receipt or an SmsError, nothing else.

Each example runs the same arguments through ``send`` and ``send_async`` against a real emulator
and checks three things: no exception other than an ``SmsError`` escapes; input refused as
``InvalidRequest`` never reaches the endpoint; and whatever reached the endpoint was a valid
international number (checked here independently of globesms' validation), with the number and
the text absent from logs and error messages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import phonenumbers
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from globesms import (
    ConfigurationError,
    InvalidRequest,
    SendReceipt,
    Settings,
    SmsError,
    SmsService,
)
from globesms.emulator import Emulator
from globesms.testing import service_for

CALLING_CODES = sorted(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
# Digit-like characters: ASCII, fullwidth, Arabic-Indic, superscripts, circled, and noise.
NUMBER_CHARACTERS = "0123456789" "\uff10\uff14\uff19" "\u0660\u0664\u0669" "\u00b2\u00b3\u00b9" \
    "\u2460\u2463" "+ -()[]\t.\u00a0x/#*"


class _Unequal:
    """An object whose comparisons raise (like a numpy array's truth value)."""

    def __eq__(self, other: object) -> bool:
        raise TypeError("no comparison")

    __hash__ = None  # type: ignore[assignment]


ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.complex_numbers(),
    st.decimals(allow_nan=True), st.binary(max_size=20), st.text(max_size=20),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(),
                                                         max_size=2),
    st.builds(object), st.builds(_Unequal), st.just(Decimal("1E+999")), st.just(2**80),
)
ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=40)


def mostly(usual: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` about 70 % of the time, so that most examples get past validation."""
    return st.integers(0, 9).flatmap(lambda i: usual if i < 7 else other)


@st.composite
def international(draw: st.DrawFn) -> str:
    code = draw(st.sampled_from(CALLING_CODES))
    rest = draw(st.text(alphabet="0123456789", min_size=8 - len(code), max_size=15 - len(code)))
    return f"+{code} {rest}"


NUMBERS = mostly(
    st.one_of(international(), st.sampled_from(["+44 7700 900123", "+852 1234 5678"])),
    st.one_of(
        international().map(lambda n: "0" + n[1:]),            # trunk 0 instead of +
        international().map(lambda n: "00" + n[1:]),           # international prefix
        international().map(lambda n: "+0" + n[1:]),
        st.text(alphabet=NUMBER_CHARACTERS, min_size=0, max_size=20),
        st.sampled_from(["07700 900123", "+44 (0)7700 900123", "\u00b2" * 9, "\u2460" * 9,
                         "+\u00b244 7700 900123", "+86 138 0013 8000"]),
        ANY_TEXT,
        ANY_VALUE,
    ),
)
MESSAGES = mostly(
    st.one_of(st.text(min_size=1, max_size=30), st.uuids().map(lambda u: f"Your code is {u.hex}")),
    st.one_of(st.just("x" * 1601), ANY_TEXT, ANY_VALUE),
)
SENDERS = mostly(st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9]{1,11}", fullmatch=True)),
                 st.one_of(st.from_regex(r"[A-Za-z0-9]{12,16}", fullmatch=True), ANY_TEXT,
                           ANY_VALUE))
TYPES = mostly(st.sampled_from([None, "OTP", "NOTIFY", "MKT"]),
               st.one_of(st.sampled_from(["otp", "", "PROMO"]), ANY_VALUE))
TASK_IDS = mostly(st.one_of(st.none(), st.text(min_size=1, max_size=10)),
                  st.one_of(st.just("t" * 256), ANY_TEXT, ANY_VALUE))
PERIODS = mostly(st.one_of(st.none(), st.integers(min_value=1, max_value=10**20)),
                 st.one_of(st.integers(max_value=0), ANY_VALUE))


def _is_valid_destination(to: str) -> bool:
    """What the endpoint may receive, checked without globesms' own validation code."""
    if not (to.isascii() and to.isdigit() and 8 <= len(to) <= 15) or to.startswith("0"):
        return False
    codes = [to[:n] for n in (1, 2, 3) if to[:n] in CALLING_CODES]
    return len(codes) == 1 and codes[0] != "86"


@pytest.fixture(scope="module")
def fuzz_emulator() -> Iterator[Emulator]:
    """One emulator for every example (reset between examples)."""
    with Emulator(access_keys={"FuzzKeyId": "fuzz-secret-0123456789"}) as emu:
        yield emu


_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__)


class _Records(logging.Handler):
    """Keeps each record's message and the values of its extra fields, as text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.text: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        extra = [str(v) for k, v in record.__dict__.items() if k not in _STANDARD]
        self.text.append(" ".join([record.getMessage(), *extra]))


def _is_secret_text(message: object) -> bool:
    """Texts that cannot appear in a log by coincidence: marked codes or non-ASCII text (log
    field values and hints are ASCII)."""
    return isinstance(message, str) and (
        message.startswith("Your code is ") or (len(message) >= 8 and not message.isascii())
    )


def _check(outcome: SendReceipt | SmsError, emu: Emulator, to: object, message: object,
           logged: list[str]) -> None:
    requests = emu.requests
    if isinstance(outcome, InvalidRequest) and outcome.request_id is None:  # refused locally
        assert requests == [], f"refused input reached the endpoint: {outcome.code}"
        return
    assert len(requests) == 1
    [request] = requests
    sent_to = request.query.get("To", "")
    assert _is_valid_destination(sent_to), f"invalid number reached the endpoint: {outcome!r}"
    assert request.query.get("Message") == message
    secrets = [sent_to]
    if _is_secret_text(message):
        secrets.append(message)
    shown = " ".join([*logged, str(outcome), repr(outcome)])
    for secret in secrets:
        assert secret not in shown, "a number or a message text leaked"


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(to=NUMBERS, message=MESSAGES, sender=SENDERS, message_type=TYPES, task_id=TASK_IDS,
       validity_period=PERIODS)
def test_every_argument_gives_a_receipt_or_an_sms_error(
    fuzz_emulator: Emulator, to: Any, message: Any, sender: Any, message_type: Any,
    task_id: Any, validity_period: Any,
) -> None:
    """Any send/send_async arguments give a receipt or SmsError; refused input is never sent."""
    kwargs = {"sender": sender, "message_type": message_type, "task_id": task_id,
              "validity_period": validity_period}
    records = _Records()
    logger = logging.getLogger("globesms")
    logger.addHandler(records)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    loop = asyncio.new_event_loop()
    service: SmsService = service_for(fuzz_emulator, max_attempts=1, deadline=5.0)
    try:
        for path in ("sync", "async"):
            fuzz_emulator.reset()
            records.text.clear()
            outcome: SendReceipt | SmsError
            try:
                if path == "sync":
                    outcome = service.send(to, message, **kwargs)
                else:
                    outcome = loop.run_until_complete(service.send_async(to, message, **kwargs))
            except SmsError as error:
                outcome = error
            event(f"{path}: {type(outcome).__name__}")
            _check(outcome, fuzz_emulator, to, message, records.text)
    finally:
        loop.run_until_complete(service.aclose())
        loop.close()
        logger.removeHandler(records)
        logger.setLevel(level)


SETTING_NAMES = sorted(Settings.__dataclass_fields__)
ENV_NAMES = [f"GLOBESMS_{name.upper()}" for name in SETTING_NAMES] + [
    "GLOBESMS_CONFIG", "GLOBESMS_ENDPONT", "GLOBESMS_TEST_X", "PATH"]
SETTING_VALUES = st.one_of(ANY_VALUE, ANY_TEXT, st.floats(), st.sampled_from(
    ["ap-southeast-1", "127.0.0.1:9", "http", "https", "OTP", "Acme", "1", "true", "-1", ""]))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(values=st.dictionaries(st.sampled_from(SETTING_NAMES), SETTING_VALUES, max_size=6))
def test_settings_of_any_value_are_built_or_refused(values: dict[str, Any]) -> None:
    """Settings(...) with any values is built or raises ConfigurationError naming a field."""
    try:
        built = Settings(**values)
    except ConfigurationError as error:
        assert error.key in values, "the error names a setting that was given"
        return
    for name, value in values.items():
        assert getattr(built, name) == value, name


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.one_of(st.none(), ANY_VALUE, ANY_TEXT),
    environ=st.one_of(
        st.dictionaries(st.sampled_from(ENV_NAMES), st.one_of(SETTING_VALUES), max_size=4),
        ANY_VALUE,
    ),
    overrides=st.dictionaries(st.sampled_from([*SETTING_NAMES, "retries"]), SETTING_VALUES,
                              max_size=3),
)
def test_settings_load_of_any_value_loads_or_refuses(
    path: Any, environ: Any, overrides: dict[str, Any]
) -> None:
    """Settings.load with any arguments loads or raises ConfigurationError."""
    try:
        built = Settings.load(path, environ={} if environ is None else environ, **overrides)
    except ConfigurationError as error:
        assert error.code in ("InvalidSetting", "UnknownSetting")
        return
    for name, value in overrides.items():
        assert getattr(built, name) == value, name
