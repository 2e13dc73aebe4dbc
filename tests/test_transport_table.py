"""The transport-exception table: every exception class the SDK, requests, urllib3 and aiohttp
define is pinned to the globesms class it maps to, so an edit to the table or an upgrade that
adds a class fails here."""

from __future__ import annotations

import http.client
import importlib
import inspect
import socket
import ssl

import pytest

from globesms import ConfigurationError, DeliveryUncertain, NetworkError
from globesms._errors import TRANSPORT_RULES, error_for_exception

MODULES = (
    "requests.exceptions",
    "urllib3.exceptions",
    "aiohttp.client_exceptions",
    "darabonba.exceptions",
    "Tea.exceptions",
    "alibabacloud_credentials.exceptions",
)

C, U, N = ConfigurationError, DeliveryUncertain, NetworkError
#: The expected globesms class (and code) of every exception class of those modules. ``U*``
#: entries carry no rule of their own and fall back to "the answer could not be read".
EXPECTED: dict[str, tuple[type, str]] = {
    # requests
    "requests.exceptions.RequestException": (U, "UnparsableResponse"),
    "requests.exceptions.InvalidJSONError": (U, "UnparsableResponse"),
    "requests.exceptions.JSONDecodeError": (U, "UnparsableResponse"),
    "requests.exceptions.HTTPError": (U, "UnparsableResponse"),
    "requests.exceptions.ConnectionError": (U, "UnparsableResponse"),
    "requests.exceptions.ProxyError": (N, "ConnectFailed"),
    "requests.exceptions.SSLError": (N, "ConnectFailed"),
    "requests.exceptions.Timeout": (U, "UnparsableResponse"),
    "requests.exceptions.ConnectTimeout": (N, "ConnectFailed"),
    "requests.exceptions.ReadTimeout": (U, "NoResponse"),
    "requests.exceptions.URLRequired": (U, "UnparsableResponse"),
    "requests.exceptions.TooManyRedirects": (C, "UnexpectedRedirect"),
    "requests.exceptions.MissingSchema": (C, "InvalidEndpoint"),
    "requests.exceptions.InvalidSchema": (C, "InvalidEndpoint"),
    "requests.exceptions.InvalidURL": (C, "InvalidEndpoint"),
    "requests.exceptions.InvalidHeader": (U, "UnparsableResponse"),
    "requests.exceptions.InvalidProxyURL": (C, "InvalidEndpoint"),
    "requests.exceptions.ChunkedEncodingError": (U, "NoResponse"),
    "requests.exceptions.ContentDecodingError": (U, "NoResponse"),
    "requests.exceptions.StreamConsumedError": (U, "UnparsableResponse"),
    "requests.exceptions.RetryError": (U, "UnparsableResponse"),
    "requests.exceptions.UnrewindableBodyError": (U, "UnparsableResponse"),
    "requests.exceptions.RequestsWarning": (C, "WarningAsError"),
    "requests.exceptions.FileModeWarning": (C, "WarningAsError"),
    "requests.exceptions.RequestsDependencyWarning": (C, "WarningAsError"),
    # urllib3
    "urllib3.exceptions.HTTPError": (U, "UnparsableResponse"),
    "urllib3.exceptions.HTTPWarning": (C, "WarningAsError"),
    "urllib3.exceptions.PoolError": (N, "ConnectFailed"),
    "urllib3.exceptions.RequestError": (N, "ConnectFailed"),
    "urllib3.exceptions.SSLError": (N, "ConnectFailed"),
    "urllib3.exceptions.ProxyError": (N, "ConnectFailed"),
    "urllib3.exceptions.DecodeError": (U, "NoResponse"),
    "urllib3.exceptions.ProtocolError": (U, "NoResponse"),
    "urllib3.exceptions.MaxRetryError": (N, "ConnectFailed"),
    "urllib3.exceptions.HostChangedError": (N, "ConnectFailed"),
    "urllib3.exceptions.TimeoutStateError": (U, "UnparsableResponse"),
    "urllib3.exceptions.TimeoutError": (U, "UnparsableResponse"),
    "urllib3.exceptions.ReadTimeoutError": (U, "NoResponse"),
    "urllib3.exceptions.ConnectTimeoutError": (N, "ConnectFailed"),
    "urllib3.exceptions.NewConnectionError": (N, "ConnectFailed"),
    "urllib3.exceptions.NameResolutionError": (N, "ConnectFailed"),
    "urllib3.exceptions.EmptyPoolError": (N, "ConnectFailed"),
    "urllib3.exceptions.FullPoolError": (N, "ConnectFailed"),
    "urllib3.exceptions.ClosedPoolError": (N, "ConnectFailed"),
    "urllib3.exceptions.LocationValueError": (C, "InvalidEndpoint"),
    "urllib3.exceptions.LocationParseError": (C, "InvalidEndpoint"),
    "urllib3.exceptions.URLSchemeUnknown": (C, "InvalidEndpoint"),
    "urllib3.exceptions.ResponseError": (U, "NoResponse"),
    "urllib3.exceptions.SecurityWarning": (C, "WarningAsError"),
    "urllib3.exceptions.InsecureRequestWarning": (C, "WarningAsError"),
    "urllib3.exceptions.NotOpenSSLWarning": (C, "WarningAsError"),
    "urllib3.exceptions.SystemTimeWarning": (C, "WarningAsError"),
    "urllib3.exceptions.InsecurePlatformWarning": (C, "WarningAsError"),
    "urllib3.exceptions.DependencyWarning": (C, "WarningAsError"),
    "urllib3.exceptions.ResponseNotChunked": (U, "NoResponse"),
    "urllib3.exceptions.BodyNotHttplibCompatible": (U, "UnparsableResponse"),
    "urllib3.exceptions.IncompleteRead": (U, "NoResponse"),
    "urllib3.exceptions.InvalidChunkLength": (U, "NoResponse"),
    "urllib3.exceptions.InvalidHeader": (U, "UnparsableResponse"),
    "urllib3.exceptions.ProxySchemeUnknown": (C, "InvalidEndpoint"),
    "urllib3.exceptions.ProxySchemeUnsupported": (U, "UnparsableResponse"),
    "urllib3.exceptions.HeaderParsingError": (U, "UnparsableResponse"),
    "urllib3.exceptions.UnrewindableBodyError": (U, "UnparsableResponse"),
    # aiohttp
    "aiohttp.client_exceptions.ClientError": (U, "UnparsableResponse"),
    "aiohttp.client_exceptions.ClientResponseError": (U, "NoResponse"),
    "aiohttp.client_exceptions.ContentTypeError": (U, "NoResponse"),
    "aiohttp.client_exceptions.WSServerHandshakeError": (U, "NoResponse"),
    "aiohttp.client_exceptions.ClientHttpProxyError": (U, "NoResponse"),
    "aiohttp.client_exceptions.TooManyRedirects": (C, "UnexpectedRedirect"),
    "aiohttp.client_exceptions.ClientConnectionError": (U, "UnparsableResponse"),
    "aiohttp.client_exceptions.ClientConnectionResetError": (U, "NoResponse"),
    "aiohttp.client_exceptions.ClientOSError": (U, "NoResponse"),
    "aiohttp.client_exceptions.ClientConnectorError": (N, "ConnectFailed"),
    "aiohttp.client_exceptions.ClientConnectorDNSError": (N, "ConnectFailed"),
    "aiohttp.client_exceptions.ClientProxyConnectionError": (N, "ConnectFailed"),
    "aiohttp.client_exceptions.UnixClientConnectorError": (N, "ConnectFailed"),
    "aiohttp.client_exceptions.ServerConnectionError": (U, "UnparsableResponse"),
    "aiohttp.client_exceptions.ServerDisconnectedError": (U, "NoResponse"),
    "aiohttp.client_exceptions.ServerTimeoutError": (U, "NoResponse"),
    "aiohttp.client_exceptions.ConnectionTimeoutError": (N, "ConnectFailed"),
    "aiohttp.client_exceptions.SocketTimeoutError": (U, "NoResponse"),
    "aiohttp.client_exceptions.ServerFingerprintMismatch": (C, "TlsCertificateUntrusted"),
    "aiohttp.client_exceptions.ClientPayloadError": (U, "NoResponse"),
    "aiohttp.client_exceptions.UploadAbortedError": (U, "UnparsableResponse"),
    "aiohttp.client_exceptions.InvalidURL": (C, "InvalidEndpoint"),
    "aiohttp.client_exceptions.InvalidUrlClientError": (C, "InvalidEndpoint"),
    "aiohttp.client_exceptions.RedirectClientError": (C, "UnexpectedRedirect"),
    "aiohttp.client_exceptions.NonHttpUrlClientError": (U, "UnparsableResponse"),
    "aiohttp.client_exceptions.InvalidUrlRedirectClientError": (C, "InvalidEndpoint"),
    "aiohttp.client_exceptions.NonHttpUrlRedirectClientError": (C, "UnexpectedRedirect"),
    "aiohttp.client_exceptions.ClientSSLError": (N, "ConnectFailed"),
    "aiohttp.client_exceptions.ClientConnectorSSLError": (N, "ConnectFailed"),
    "aiohttp.client_exceptions.ClientConnectorCertificateError": (C, "TlsCertificateUntrusted"),
    "aiohttp.client_exceptions.WSMessageTypeError": (U, "UnparsableResponse"),
    # the SDK's own wrappers carry no meaning alone: what they wrap decides
    "darabonba.exceptions.DaraException": (U, "UnparsableResponse"),
    "darabonba.exceptions.ResponseException": (U, "UnparsableResponse"),
    "darabonba.exceptions.ValidateException": (U, "UnparsableResponse"),
    "darabonba.exceptions.RequiredArgumentException": (U, "UnparsableResponse"),
    "darabonba.exceptions.RetryError": (U, "UnparsableResponse"),
    "darabonba.exceptions.UnretryableException": (U, "UnparsableResponse"),
    "Tea.exceptions.TeaException": (U, "UnparsableResponse"),
    "Tea.exceptions.ValidateException": (U, "UnparsableResponse"),
    "Tea.exceptions.RequiredArgumentException": (U, "UnparsableResponse"),
    "Tea.exceptions.RetryError": (U, "UnparsableResponse"),
    "Tea.exceptions.UnretryableException": (U, "UnparsableResponse"),
    "alibabacloud_credentials.exceptions.CredentialException": (C, "NoCredentials"),
}


def _classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in MODULES:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (inspect.isclass(value) and issubclass(value, BaseException)
                    and value.__module__ == module.__name__):  # aliases appear once
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def _instance(cls: type[BaseException]) -> BaseException:
    exc = cls.__new__(cls)
    exc.args = ()
    return exc


def test_every_transport_class_is_pinned() -> None:
    """No class of those modules is missing from the expectations, and none is stale."""
    assert set(_classes()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_transport_class_maps_to_its_pinned_error(name: str) -> None:
    """Each class maps to exactly the pinned globesms class and code."""
    error = error_for_exception(_instance(_classes()[name]))
    assert (type(error), error.code) == EXPECTED[name]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ConnectionRefusedError(), (N, "ConnectFailed")),
        (ConnectionResetError(), (U, "NoResponse")),
        (BrokenPipeError(), (U, "NoResponse")),
        (socket.gaierror(), (N, "ConnectFailed")),
        (ssl.SSLError(), (N, "ConnectFailed")),
        (ssl.SSLCertVerificationError(), (C, "TlsCertificateUntrusted")),
        (http.client.RemoteDisconnected(), (U, "NoResponse")),
        (http.client.BadStatusLine("x"), (U, "NoResponse")),
        (DeprecationWarning("x"), (C, "WarningAsError")),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else "",
)
def test_standard_library_classes(exc: BaseException, expected: tuple[type, str]) -> None:
    """The standard library's socket, ssl and http.client failures are pinned too."""
    error = error_for_exception(exc)
    assert (type(error), error.code) == expected


def _wrapped(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__context__ = inner
    return outer


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        # A certificate failure inside requests' SSLError: configuration, not a network blip.
        (_wrapped(_instance(_classes()["requests.exceptions.SSLError"]),
                  ssl.SSLCertVerificationError()), C),
        # A read timeout inside a connection error: may have been sent.
        (_wrapped(_instance(_classes()["requests.exceptions.ConnectionError"]),
                  _instance(_classes()["urllib3.exceptions.ReadTimeoutError"])), U),
        # "Uncertain" outranks "not sent" when both appear.
        (_wrapped(ConnectionRefusedError(), ConnectionResetError()), U),
    ],
    ids=["cert-in-ssl", "timeout-in-connection", "reset-beats-refused"],
)
def test_precedence_across_the_chain(exc: BaseException, expected: type) -> None:
    """When a chain matches several rules, configuration > uncertain > not sent."""
    assert type(error_for_exception(exc)) is expected


def test_every_rule_names_an_existing_class() -> None:
    """No rule in the table points at a class that no longer exists."""
    known = set(_classes())
    for name in TRANSPORT_RULES:
        module, _, _ = name.rpartition(".")
        if module in MODULES:
            assert name in known, name


