"""Core hardening: warning filters, the attempt floor, wrong protocol, async signing failures,
redirects with an injected client. Every path is exercised sync and async against the emulator."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from alibabacloud_credentials.exceptions import CredentialException
from alibabacloud_dysmsapi20180501.client import Client
from alibabacloud_tea_openapi.models import Config

from globesms import (
    ConfigurationError,
    NetworkError,
    Settings,
    SmsService,
    Throttled,
)
from globesms._credentials import static_credential
from globesms.emulator import Accept, Emulator, HttpError
from support import DIGITS, KEY_ID, KEY_SECRET, NUMBER, TEXT, FakeTime

SYNC_AND_ASYNC = pytest.mark.parametrize("mode", ["sync", "async"])


def _service(endpoint: str, protocol: str = "http", credential: Any = None,
             time_: FakeTime | None = None, **settings: Any) -> SmsService:
    clock = time_ or FakeTime()
    return SmsService(
        Settings(endpoint=endpoint, protocol=protocol, **settings),
        credential=credential or static_credential(KEY_ID, KEY_SECRET),
        sleep=clock.sleep, async_sleep=clock.async_sleep, clock=clock.clock,
    )


def _send(service: SmsService, mode: str, **kwargs: Any) -> Any:
    if mode == "sync":
        return service.send(NUMBER, TEXT, **kwargs)

    async def go() -> Any:
        async with service:
            return await service.send_async(NUMBER, TEXT, **kwargs)

    return asyncio.run(go())


def _api_requests(emulator: Emulator) -> list[Any]:
    return [r for r in emulator.requests if r.action]


# -- item 6: a caller's warning filters change nothing ---------------------------------------


@SYNC_AND_ASYNC
def test_warnings_as_errors_do_not_change_the_outcome(emulator: Emulator, mode: str) -> None:
    """Under filterwarnings=error the send succeeds (the SDK's utcnow() deprecation on 3.12+ is
    silenced for our calls only) and the caller's filter list is left exactly as it was."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        before = list(warnings.filters)
        receipt = _send(_service(emulator.endpoint), mode)
        assert list(warnings.filters) == before
    assert receipt.message_id
    assert len(emulator.messages) == 1


def test_sdk_warning_filter_is_only_active_during_a_call() -> None:
    """Outside a call, the SDK's own deprecation warning still reaches the caller's filters."""
    from alibabacloud_tea_openapi.utils import Utils

    from globesms._transport import SDK_WARNINGS

    if sys.version_info < (3, 12):
        pytest.skip("datetime.utcnow() warns from Python 3.12 on")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DeprecationWarning):
            Utils.get_timestamp()
        with SDK_WARNINGS:
            assert Utils.get_timestamp()
        with pytest.raises(DeprecationWarning):
            Utils.get_timestamp()


class _WarningCredential:
    """A credential source that emits a warning while producing the key (a caller's code)."""

    def __init__(self) -> None:
        self._inner = static_credential(KEY_ID, KEY_SECRET)
        self.calls = 0

    def get_credential(self) -> Any:
        self.calls += 1
        if self.calls > 1:
            warnings.warn("this credential source is deprecated", UserWarning, stacklevel=1)
        return self._inner.get_credential()

    async def get_credential_async(self) -> Any:
        return self.get_credential()


@SYNC_AND_ASYNC
def test_a_warning_raised_before_sending_is_not_uncertain(emulator: Emulator, mode: str) -> None:
    """A warning turned into an error while signing is 'not sent' (ConfigurationError), never
    DeliveryUncertain, and nothing reaches the endpoint."""
    service = _service(emulator.endpoint, credential=_WarningCredential())
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        with pytest.raises(ConfigurationError) as caught:
            _send(service, mode)
    assert caught.value.code == "WarningAsError"
    assert _api_requests(emulator) == []


# -- item 7: no attempt with milliseconds left ------------------------------------------------


@SYNC_AND_ASYNC
def test_no_retry_starts_without_a_useful_window(emulator: Emulator, mode: str) -> None:
    """1 s deadline, 900 ms retry hint: the second attempt would have ~100 ms, so the clean
    Throttled is raised after one request instead of risking DeliveryUncertain."""
    emulator.script(DIGITS, HttpError(429, "Throttling.User", retry_after_ms=900), Accept())
    service = _service(emulator.endpoint, deadline=1.0)
    with pytest.raises(Throttled) as caught:
        _send(service, mode)
    assert caught.value.attempts == 1
    assert caught.value.retry_after == pytest.approx(0.9)
    assert len(_api_requests(emulator)) == 1
    assert emulator.messages == []


@SYNC_AND_ASYNC
def test_a_retry_with_a_useful_window_still_runs(emulator: Emulator, mode: str) -> None:
    """With a 5 s deadline the same 900 ms hint is honoured and the retry succeeds."""
    emulator.script(DIGITS, HttpError(429, "Throttling.User", retry_after_ms=900), Accept())
    receipt = _send(_service(emulator.endpoint, deadline=5.0), mode)
    assert receipt.attempts == 2


# -- item 8: wrong protocol -------------------------------------------------------------------


@pytest.fixture
def tls_emulator() -> Iterator[Emulator]:
    with Emulator(access_keys={KEY_ID: KEY_SECRET}, tls=True) as emu:
        yield emu


@SYNC_AND_ASYNC
def test_http_client_against_https_endpoint(tls_emulator: Emulator, mode: str) -> None:
    """protocol=http against a TLS port: ConfigurationError naming host, port and protocol,
    one attempt, not uncertain."""
    with pytest.raises(ConfigurationError) as caught:
        _send(_service(tls_emulator.endpoint, "http"), mode)
    error = caught.value
    assert error.code == "ProtocolMismatch"
    assert tls_emulator.endpoint in str(error) and "protocol" in str(error)
    assert error.attempts == 1
    assert tls_emulator.messages == []


@SYNC_AND_ASYNC
def test_https_client_against_http_endpoint(emulator: Emulator, mode: str) -> None:
    """protocol=https against a plain-HTTP port: ConfigurationError, not retried."""
    with pytest.raises(ConfigurationError) as caught:
        _send(_service(emulator.endpoint, "https"), mode)
    assert caught.value.code == "ProtocolMismatch"
    assert emulator.endpoint in str(caught.value)
    assert caught.value.attempts == 1
    assert _api_requests(emulator) == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@SYNC_AND_ASYNC
def test_connection_errors_name_host_and_port(mode: str) -> None:
    """A refused connection says where it tried to connect."""
    port = _closed_port()
    with pytest.raises(NetworkError) as caught:
        _send(_service(f"127.0.0.1:{port}", max_attempts=1), mode)
    assert f"127.0.0.1:{port}" in str(caught.value)


# -- item 9: everything in an async send is mapped ---------------------------------------------


class _RefreshFails:
    """Works for the first lookup (the credential gate), then fails like an expired STS refresh
    whose error text carries a URL."""

    def __init__(self) -> None:
        self._inner = static_credential(KEY_ID, KEY_SECRET)
        self.calls = 0

    def get_credential(self) -> Any:
        self.calls += 1
        if self.calls > 1:
            raise CredentialException(
                "refresh failed: http://100.100.100.200/latest/meta-data/ram/security-credentials/x"
            )
        return self._inner.get_credential()

    async def get_credential_async(self) -> Any:
        return self.get_credential()


@SYNC_AND_ASYNC
def test_credential_refresh_failure_is_mapped_and_logged(
    emulator: Emulator, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A refresh failure is ConfigurationError on both paths, with an sms.failed event and no
    URL in the error; nothing is sent."""
    caplog.set_level(logging.INFO, logger="globesms")
    with pytest.raises(ConfigurationError) as caught:
        _send(_service(emulator.endpoint, credential=_RefreshFails()), mode)
    assert caught.value.code == "NoCredentials"
    assert "100.100.100.200" not in str(caught.value)
    assert "100.100.100.200" not in repr(caught.value.__cause__)
    assert [r for r in caplog.records if getattr(r, "event", "") == "sms.failed"]
    assert _api_requests(emulator) == []


# -- item 11: redirects are never followed, whatever the client --------------------------------


def _sdk_client(endpoint: str, **config: Any) -> Client:
    return Client(Config(credential=static_credential(KEY_ID, KEY_SECRET), endpoint=endpoint,
                         protocol="http", **config))


@SYNC_AND_ASYNC
@pytest.mark.parametrize("used_first", [False, True], ids=["fresh", "raw-sdk-used-first"])
def test_injected_client_never_follows_a_redirect(
    emulator: Emulator, redirector: str, mode: str, used_first: bool
) -> None:
    """SmsService(client=...) refuses a 307 and never replays the signed request, also when the
    application used the raw SDK on that endpoint before (its session already exists)."""
    from alibabacloud_dysmsapi20180501 import models
    from alibabacloud_tea_util.models import RuntimeOptions

    client = _sdk_client(redirector, max_idle_conns=7 if used_first else 9)
    if used_first:
        with contextlib.suppress(Exception):  # the raw SDK's own behaviour is not under test
            client.query_message_with_options(models.QueryMessageRequest(message_id="1"),
                                              RuntimeOptions())
        emulator.reset()
    fake = FakeTime()
    service = SmsService(client=client, sleep=fake.sleep, async_sleep=fake.async_sleep,
                         clock=fake.clock)
    with pytest.raises(ConfigurationError) as caught:
        _send(service, mode)
    assert caught.value.code == "UnexpectedRedirect"
    assert emulator.requests == []


def test_injected_client_without_endpoint_is_refused() -> None:
    """A client the guard cannot be placed on is refused when the service is built."""
    client = Client(Config(credential=static_credential(KEY_ID, KEY_SECRET),
                           endpoint="127.0.0.1:9", protocol="http"))
    client._endpoint = None
    with pytest.raises(ConfigurationError) as caught:
        SmsService(client=client)
    assert caught.value.code == "InvalidClient"


# -- item 14: STS credentials on both paths ---------------------------------------------------


def _sts_credential(token: str) -> Any:
    from alibabacloud_credentials.client import Client as CredentialClient
    from alibabacloud_credentials.models import Config as CredentialConfig

    return CredentialClient(CredentialConfig(
        type="sts", access_key_id="STS.key", access_key_secret="sts-secret", security_token=token))


@pytest.fixture
def sts_emulator() -> Iterator[Emulator]:
    with Emulator(access_keys={"STS.key": "sts-secret"},
                  sts_tokens={"STS.key": "token-1"}) as emu:
        yield emu


@SYNC_AND_ASYNC
def test_sts_credentials_sign_on_both_paths(sts_emulator: Emulator, mode: str) -> None:
    """An STS key pair with its token is accepted sync and async; the token travels signed."""
    receipt = _send(_service(sts_emulator.endpoint, credential=_sts_credential("token-1")), mode)
    assert receipt.message_id
    (request,) = _api_requests(sts_emulator)
    assert request.headers["x-acs-security-token"] == "token-1"
    assert "x-acs-security-token" in request.headers["authorization"]


@SYNC_AND_ASYNC
def test_wrong_sts_token_is_an_auth_error(sts_emulator: Emulator, mode: str) -> None:
    """A token issued for another key is refused by the gateway: AuthError, nothing sent."""
    from globesms import AuthError

    with pytest.raises(AuthError) as caught:
        _send(_service(sts_emulator.endpoint, credential=_sts_credential("token-2")), mode)
    assert caught.value.code == "InvalidSecurityToken.MismatchWithAccessKey"
    assert sts_emulator.messages == []
    assert "token-2" not in str(caught.value) + repr(caught.value)


@SYNC_AND_ASYNC
def test_a_client_missing_an_sdk_internal_warns_once_and_never_sends_uncertain(
    emulator: Emulator, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An injected client without the private ``_credential`` the async signer uses: one
    WARNING naming the internal when the service is built; the sync path still sends, and the
    async path fails as 'not sent' (ConfigurationError), never as uncertain."""
    from globesms._internals import reset_warnings

    reset_warnings()
    client = _sdk_client(emulator.endpoint)
    client._credential = None
    caplog.set_level(logging.WARNING, logger="globesms")
    fake = FakeTime()
    service = SmsService(client=client, sleep=fake.sleep, async_sleep=fake.async_sleep,
                         clock=fake.clock)
    warned = [r for r in caplog.records if "Client._credential" in r.getMessage()]
    assert getattr(client, "_credential", None) is None
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING
    if mode == "async":
        with pytest.raises(ConfigurationError) as caught:
            _send(service, mode)
        assert caught.value.code == "SigningFailed"
        assert _api_requests(emulator) == []
    reset_warnings()
