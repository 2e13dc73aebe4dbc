"""Fuzz of every argument of the other public calls (status, send_batch, send_template,
report_conversion, report_conversion_rate, preview), sync and async: a result or an SmsError,
never another exception, and input refused locally never reaches the endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from globesms import InvalidRequest, SmsError, SmsService
from globesms.emulator import Emulator
from globesms.testing import service_for
from test_fuzz import ANY_TEXT, ANY_VALUE, MESSAGES, NUMBERS, mostly

IDS = mostly(st.from_regex(r"[0-9]{1,20}", fullmatch=True), st.one_of(ANY_TEXT, ANY_VALUE))
TIMES = mostly(
    st.one_of(st.none(), st.just(datetime.now(timezone.utc) - timedelta(minutes=1))),
    st.one_of(st.datetimes(), st.datetimes(timezones=st.just(timezone.utc)), ANY_VALUE),
)
RATES = mostly(st.floats(0, 1), st.one_of(st.floats(), ANY_VALUE))
BATCH_TO = mostly(st.lists(NUMBERS, min_size=1, max_size=4), st.one_of(ANY_VALUE, NUMBERS))
BATCH_TEXT = mostly(MESSAGES, st.lists(MESSAGES, max_size=4))
PARAMS = mostly(st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.text(max_size=5),
                                                     max_size=3)),
                ANY_VALUE)
MAINLAND = mostly(st.sampled_from(["+86 138 0013 8000", "+8613900139000"]), NUMBERS)

CALLS: dict[str, tuple[str, Any]] = {
    "status": ("status", st.tuples(IDS).map(lambda a: (a, {}))),
    "send_batch": ("send_batch", st.tuples(BATCH_TO, BATCH_TEXT).flatmap(
        lambda a: st.fixed_dictionaries({"message_type": mostly(st.just("NOTIFY"), ANY_VALUE)})
        .map(lambda kw: (a, kw)))),
    "send_template": ("send_template", st.tuples(MAINLAND, mostly(st.just("SMS_1"), ANY_VALUE))
                      .flatmap(lambda a: st.fixed_dictionaries({
                          "sign_name": mostly(st.just("Acme"), ANY_VALUE), "params": PARAMS})
                          .map(lambda kw: (a, kw)))),
    "report_conversion": ("report_conversion", st.tuples(IDS).flatmap(
        lambda a: st.fixed_dictionaries({
            "to": mostly(st.none(), NUMBERS), "delivered": mostly(st.booleans(), ANY_VALUE),
            "at": TIMES}).map(lambda kw: (a, kw)))),
    "report_conversion_rate": ("report_conversion_rate", st.tuples(RATES).flatmap(
        lambda a: st.fixed_dictionaries({"at": TIMES}).map(lambda kw: (a, kw)))),
}


@pytest.fixture(scope="module")
def fuzz_service() -> Iterator[tuple[Emulator, SmsService]]:
    with Emulator(access_keys={"FuzzKeyId": "fuzz-secret-0123456789"}) as emu:
        yield emu, service_for(emu, max_attempts=1)


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except SmsError as error:
        return error


@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_every_call_gives_a_result_or_an_smserror(
    fuzz_service: tuple[Emulator, SmsService], name: str, mode: str
) -> None:
    """Any argument of any type: a result or an SmsError; locally refused input sends nothing."""
    emu, _ = fuzz_service
    method, strategy = CALLS[name]

    @settings(max_examples=25, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(strategy)
    def run(case: tuple[tuple[Any, ...], dict[str, Any]]) -> None:
        args, kwargs = case
        emu.reset()
        service = service_for(emu, max_attempts=1)  # fresh: batches are paced 1/s per service
        if mode == "sync":
            outcome = _outcome(lambda: getattr(service, method)(*args, **kwargs))
        else:
            async def go() -> Any:
                try:
                    return await getattr(service, f"{method}_async")(*args, **kwargs)
                except SmsError as error:
                    return error
                finally:
                    await service._driver.aclose()

            outcome = asyncio.run(go())
        if isinstance(outcome, InvalidRequest) and outcome.request_id is None \
                and outcome.attempts == 0:
            assert [r for r in emu.requests if r.action] == [], outcome.code

    run()


@given(NUMBERS, MESSAGES, mostly(st.none(), ANY_VALUE), mostly(st.none(), ANY_VALUE))
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_preview_gives_a_preview_or_an_invalid_request(
    fuzz_service: tuple[Emulator, SmsService], to: Any, message: Any, sender: Any,
    message_type: Any,
) -> None:
    """preview never raises anything but InvalidRequest, and never touches the network."""
    emu, service = fuzz_service
    emu.reset()
    try:
        preview = service.preview(to, message, sender=sender, message_type=message_type)
    except InvalidRequest:
        return
    assert preview.segments >= 1 and preview.encoding in ("GSM-7", "UCS-2")
    assert emu.requests == []
