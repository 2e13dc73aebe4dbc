"""Transport failures: what provably did not send is retried, the rest is uncertain."""

from __future__ import annotations

import socket

import pytest
import requests
import urllib3

from globesms import (
    ConfigurationError,
    DeliveryUncertain,
    NetworkError,
    Settings,
    SmsService,
)
from globesms._credentials import static_credential
from globesms._errors import error_for_exception
from globesms.emulator import Accept, Delay, Drop, Emulator
from support import DIGITS, KEY_ID, KEY_SECRET, NUMBER, TEXT, FakeTime, ServiceFactory


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_read_timeout_is_uncertain_and_sent_once(
    emulator: Emulator, make_service: ServiceFactory
) -> None:
    """No answer within read_timeout: DeliveryUncertain after exactly one request."""
    emulator.script(DIGITS, Delay(5.0), Accept())
    with pytest.raises(DeliveryUncertain) as caught:
        make_service(read_timeout=0.3).send(NUMBER, TEXT)
    assert caught.value.retryable is False
    assert caught.value.attempts == 1
    assert len(emulator.requests) == 1


@pytest.mark.parametrize("after_read", [True, False], ids=["after-read", "before-read"])
def test_dropped_connection_is_uncertain(
    emulator: Emulator, make_service: ServiceFactory, after_read: bool
) -> None:
    """A connection closed after the request was written cannot prove nothing was sent."""
    emulator.script(DIGITS, Drop(after_read=after_read), Accept())
    with pytest.raises(DeliveryUncertain) as caught:
        make_service().send(NUMBER, TEXT)
    assert caught.value.attempts == 1
    assert len(emulator.messages) == 0


def test_connection_refused_is_retried_network_error(fake_time: FakeTime) -> None:
    """Connection refused never reached anyone: retried up to max_attempts, then NetworkError."""
    settings = Settings(endpoint=f"127.0.0.1:{_closed_port()}", protocol="http", max_attempts=3)
    service = SmsService(settings, credential=static_credential(KEY_ID, KEY_SECRET),
                         sleep=fake_time.sleep, clock=fake_time.clock)
    with pytest.raises(NetworkError) as caught:
        service.send(NUMBER, TEXT)
    assert caught.value.attempts == 3
    assert caught.value.retryable is True
    assert len(fake_time.sleeps) == 2


def test_untrusted_tls_certificate_is_configuration_error(fake_time: FakeTime) -> None:
    """HTTPS to an endpoint whose CA is not trusted is a ConfigurationError naming ca_file."""
    with Emulator(access_keys={KEY_ID: KEY_SECRET}, tls=True) as emu:
        settings = Settings(endpoint=emu.endpoint, protocol="https")
        service = SmsService(settings, credential=static_credential(KEY_ID, KEY_SECRET),
                             sleep=fake_time.sleep, clock=fake_time.clock)
        with pytest.raises(ConfigurationError, match="ca_file"):
            service.send(NUMBER, TEXT)
        assert emu.messages == []


def test_tls_with_ca_file_sends(fake_time: FakeTime) -> None:
    """With ca_file pointing at the endpoint's CA, HTTPS sends succeed."""
    with Emulator(access_keys={KEY_ID: KEY_SECRET}, tls=True) as emu:
        assert emu.ca_file is not None
        settings = Settings(endpoint=emu.endpoint, protocol="https", ca_file=emu.ca_file)
        service = SmsService(settings, credential=static_credential(KEY_ID, KEY_SECRET),
                             sleep=fake_time.sleep, clock=fake_time.clock)
        receipt = service.send(NUMBER, TEXT)
        assert [m.message_id for m in emu.messages] == [receipt.message_id]


def _chained(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__context__ = inner
    return outer


def test_connect_timeout_maps_to_network_error() -> None:
    """A connect timeout (requests over urllib3) is a NetworkError: nothing was written."""
    inner = urllib3.exceptions.ConnectTimeoutError(None, "timed out")
    error = error_for_exception(_chained(requests.exceptions.ConnectTimeout("x"), inner))
    assert type(error) is NetworkError


def test_dns_failure_maps_to_network_error() -> None:
    """A name-resolution failure is a NetworkError."""
    error = error_for_exception(_chained(requests.exceptions.ConnectionError("x"),
                                         socket.gaierror(-2, "Name or service not known")))
    assert type(error) is NetworkError


def test_unknown_exception_is_uncertain() -> None:
    """Anything the mapper does not recognise is reported as uncertain, never as retryable."""
    error = error_for_exception(RuntimeError("surprise"))
    assert type(error) is DeliveryUncertain
    assert error.retryable is False


def test_redirect_is_not_followed(
    emulator: Emulator, redirector: str, fake_time: FakeTime
) -> None:
    """A 307 to another endpoint is a ConfigurationError; the signed request is not replayed."""
    settings = Settings(endpoint=redirector, protocol="http")
    service = SmsService(settings, credential=static_credential(KEY_ID, KEY_SECRET),
                         sleep=fake_time.sleep, clock=fake_time.clock)
    with pytest.raises(ConfigurationError) as caught:
        service.send(NUMBER, TEXT)
    assert caught.value.code == "UnexpectedRedirect"
    assert caught.value.http_status == 307
    assert emulator.requests == []
