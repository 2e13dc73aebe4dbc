"""``globesms doctor``: why a deployment cannot send, found without sending an SMS.

Each check gives ``ok``, ``warning``, ``failure`` or ``skipped`` (a check that depends on one that
failed, or a store that is not configured), a one-line summary and, when not ok, the fix:

* ``settings``: the resolved settings and where each value came from (no secrets live there);
* ``credentials``: the provider the Alibaba Cloud chain found, the AccessKey id masked;
* ``sdk internals``: every private SDK internal globesms relies on (:mod:`globesms._internals`);
* ``dns``, ``tcp``, ``tls``: the endpoint resolves, accepts a connection and, over https, shows a
  trusted certificate (subject, issuer, expiry);
* ``protocol``: the endpoint speaks the configured protocol (an https client against an http
  server, or the reverse, is named as such);
* ``clock``: the skew between this host and the endpoint's ``Date`` header (the gateway refuses
  requests more than 15 minutes off);
* ``signed call``: a QueryMessage for a made-up message id, signed by the official SDK client
  globesms builds, proves the key and secret are accepted; nothing is sent to anyone;
* ``verification store``, ``rate store``: reachable when configured (a Redis PING).

Every network step is bounded by ``timeout`` seconds, so a host that does not answer costs a few
seconds, not minutes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import sqlite3
import ssl
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from . import _log
from ._credentials import CredentialSource, default_credential
from ._errors import NO_CREDENTIALS_HINT, ConfigurationError, SmsError, error_for_exception
from ._settings import REGION_ENDPOINTS, Settings

OK, WARNING, FAILURE, SKIPPED = "ok", "warning", "failure", "skipped"

#: Seconds each network step may take before it counts as "no answer".
DEFAULT_TIMEOUT = 2.5
#: The gateway refuses a request whose ``x-acs-date`` is further than this from its clock.
GATEWAY_SKEW_LIMIT = 15 * 60
#: Skew above this is worth a warning: it is headed for the limit.
SKEW_WARNING = 60.0
#: A certificate expiring sooner than this gets a warning.
CERT_WARNING_DAYS = 14
#: The message id of the harmless signed call (no message has it).
PROBE_MESSAGE_ID = "globesms-doctor-probe"
#: Environment variables naming shared stores, read directly so that doctor works before and after
#: those settings exist.
VERIFY_STORE_ENV = "GLOBESMS_VERIFY_STORE"
RATE_STORE_ENV = "GLOBESMS_RATE_STORE"

_SDK_PACKAGES = (
    "globesms", "alibabacloud_dysmsapi20180501", "alibabacloud_tea_openapi", "darabonba-core",
    "alibabacloud_credentials",
)
_NTP_FIX = "sync this host's clock with NTP (e.g. `timedatectl set-ntp true` or `chronyc makestep`)"


@dataclass
class Check:
    """One check's outcome: ``status`` is ok, warning, failure or skipped."""

    name: str
    status: str
    summary: str
    fix: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Inputs:
    """What doctor examines: settings (or why they could not load), credential and environment."""

    settings: Settings | None
    sources: Mapping[str, str]
    environ: Mapping[str, str]
    credential: Callable[[], CredentialSource] = default_credential
    settings_error: ConfigurationError | None = None
    timeout: float = DEFAULT_TIMEOUT
    sandbox: bool = False
    config: str | None = None


# -- running ----------------------------------------------------------------------------------


def run_checks(inputs: Inputs) -> list[Check]:
    """Run every check in order; never raises for what it examines."""
    _log.install_sdk_filters()
    lookup = _CredentialLookup(inputs.credential, inputs.timeout)
    checks = [_settings_check(inputs), _internals_check()]
    settings = inputs.settings
    network: list[Check] = []
    if settings is not None:
        network = _network_checks(settings, inputs.timeout)
    credential_check, source = lookup.result()
    checks.append(credential_check)
    checks.extend(network)
    checks.append(_signed_call_check(settings, source, network, credential_check, inputs.timeout))
    checks.extend(_store_checks(settings, inputs.environ, inputs.timeout, inputs.config))
    return checks


def exit_status(checks: list[Check]) -> int:
    """0 when no check failed (warnings allowed), 1 otherwise."""
    return 1 if any(c.status == FAILURE for c in checks) else 0


# -- settings ---------------------------------------------------------------------------------


def _settings_check(inputs: Inputs) -> Check:
    if inputs.settings is None:
        error = inputs.settings_error
        hint = error.hint if error is not None else "settings could not be loaded"
        sources = {key: redact_text(text) for key, text in inputs.sources.items()}
        return Check("settings", FAILURE, "the settings do not load", fix=redact_text(hint),
                     detail={"sources": sources})
    settings = inputs.settings
    values: dict[str, Any] = {}
    for item in fields(settings):
        value = getattr(settings, item.name)
        source = inputs.sources.get(item.name)
        if source is None:
            derived = item.name == "endpoint" and REGION_ENDPOINTS.get(settings.region) == value
            source = f"derived from region {settings.region}" if derived else "default"
        if isinstance(value, str):  # store URLs may carry a password
            value = redact_text(value)
        values[item.name] = {"value": value, "source": redact_text(source)}
    summary = f"{settings.protocol}://{settings.resolved_endpoint} (region {settings.region})"
    if inputs.sandbox:
        summary += ", sandbox emulator"
    return Check("settings", OK, summary, detail={"values": values})


# -- SDK internals ----------------------------------------------------------------------------


def _internals_check(missing_internals: Callable[[], list[str]] | None = None) -> Check:
    from . import _internals

    versions = {name: _version(name) for name in _SDK_PACKAGES}
    with _log.quiet_sdk(True), _quiet_warnings():
        missing = (missing_internals or _internals.missing_internals)()
    detail: dict[str, Any] = {"versions": versions, "missing": missing}
    total = len(_internals.INTERNALS)
    if missing:
        return Check(
            "sdk internals", FAILURE, f"{len(missing)} of {total} SDK internals missing",
            fix="install the SDK versions pyproject declares; " + "; ".join(missing),
            detail=detail,
        )
    return Check("sdk internals", OK, f"all {total} present", detail=detail)


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


# -- credentials ------------------------------------------------------------------------------


def mask_key_id(key_id: str) -> str:
    """An AccessKey id with its middle hidden: ``LTAI****XyZ``."""
    if len(key_id) < 8:
        return key_id[:2] + "****"
    return f"{key_id[:4]}****{key_id[-3:]}"


class _CredentialLookup:
    """Asks the credential chain once, in a thread, so the network checks run meanwhile."""

    def __init__(self, factory: Callable[[], CredentialSource], timeout: float) -> None:
        self._factory = factory
        self._timeout = timeout
        self._done = threading.Event()
        self._source: CredentialSource | None = None
        self._model: Any = None
        self._failure: BaseException | None = None
        self._started = time.monotonic()
        thread = threading.Thread(target=self._lookup, name="globesms-doctor-credentials",
                                  daemon=True)
        thread.start()

    def _lookup(self) -> None:
        try:
            # No warnings.catch_warnings() here: it is not thread-safe, and this runs in a thread.
            with _log.quiet_sdk(True):
                source = self._factory()
                self._model = source.get_credential()
            self._source = source
        except Exception as exc:  # any failure of the chain: reported by class name only
            self._failure = exc
        finally:
            self._done.set()

    def result(self) -> tuple[Check, CredentialSource | None]:
        left = max(0.0, self._timeout - (time.monotonic() - self._started))
        if not self._done.wait(left):
            return Check(
                "credentials", FAILURE,
                f"the credential chain found nothing within {self._timeout:g} s",
                fix=_no_credential_fix() + " (the ECS metadata service did not answer; set "
                "ALIBABA_CLOUD_ECS_METADATA_DISABLED=true off Alibaba Cloud)",
            ), None
        if self._failure is not None or self._model is None:
            kind = type(self._failure).__name__ if self._failure is not None else "no credential"
            return Check("credentials", FAILURE, f"no credential found ({kind})",
                         fix=_no_credential_fix()), None
        model = self._model
        key_id = str(getattr(model, "access_key_id", "") or "")
        kind = getattr(model, "type", None) or "unknown"
        provider = getattr(model, "provider_name", None) or kind
        detail: dict[str, Any] = {
            "provider": provider,
            "type": kind,
            "access_key_id": mask_key_id(key_id) if key_id else None,
            "security_token": bool(getattr(model, "security_token", None)),
        }
        if kind in ("bearer", "id_token") or not key_id:
            return Check(
                "credentials", FAILURE, f"{provider} gives a {kind} credential",
                fix="SendMessageToGlobe needs an AccessKey, STS token or RAM role credential",
                detail=detail,
            ), None
        token = " with an STS token" if detail["security_token"] else ""
        return Check("credentials", OK, f"{provider}: AccessKey {detail['access_key_id']}{token}",
                     detail=detail), self._source


def _no_credential_fix() -> str:
    return (
        NO_CREDENTIALS_HINT.split(": ", 1)[1]
        + "; try `globesms doctor --sandbox` to check everything else against the emulator"
    )


# -- network ----------------------------------------------------------------------------------


def split_endpoint(endpoint: str, protocol: str) -> tuple[str, int]:
    """Host and port of ``host[:port]`` (or ``[v6]:port``); the protocol's port when none."""
    default = 443 if protocol == "https" else 80
    if endpoint.startswith("["):
        host, _, rest = endpoint[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default
    if endpoint.count(":") == 1:
        host, port = endpoint.rsplit(":", 1)
        return host, int(port)
    return endpoint, default


def _network_checks(settings: Settings, timeout: float) -> list[Check]:
    endpoint = settings.resolved_endpoint
    try:
        host, port = split_endpoint(endpoint, settings.protocol)
    except ValueError:
        return [Check("dns", FAILURE, f"endpoint {endpoint!r} has no valid port",
                      fix="set endpoint to host[:port], e.g. dysmsapi.ap-southeast-1.aliyuncs.com")]
    where = f"{host}:{port}"
    dns = _dns_check(host, port, timeout)
    checks = [dns]
    if dns.status == FAILURE:
        return [*checks, *_skipped(("tcp", "tls", "protocol", "clock"), "dns failed")]
    address = dns.detail["addresses"][0]
    tcp = _tcp_check(address, port, where, timeout)
    checks.append(tcp)
    if tcp.status == FAILURE:
        return [*checks, *_skipped(("tls", "protocol", "clock"), "tcp failed")]
    context: ssl.SSLContext | None = None
    if settings.protocol == "https":
        tls, context = _tls_check(host, address, port, settings.ca_file, timeout)
        checks.append(tls)
    else:
        checks.append(Check("tls", SKIPPED, "protocol is http (a local emulator only)"))
    protocol, date = _protocol_check(host, port, settings.protocol, context, timeout)
    checks.append(protocol)
    tls = checks[-2]
    if protocol.detail.get("mismatch") and tls.status == FAILURE:
        # The failed handshake is the protocol mismatch: say it once, where it is named.
        checks[-2] = Check("tls", SKIPPED, "see protocol", detail=tls.detail)
    checks.append(_clock_check(date, answered=protocol.status != FAILURE))
    return checks


def _skipped(names: tuple[str, ...], reason: str) -> list[Check]:
    return [Check(name, SKIPPED, f"not run: {reason}") for name in names]


def _dns_check(host: str, port: int, timeout: float) -> Check:
    box: dict[str, Any] = {}

    def resolve() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            box["addresses"] = list(dict.fromkeys(str(info[4][0]) for info in infos))
        except OSError as exc:
            box["error"] = exc

    thread = threading.Thread(target=resolve, name="globesms-doctor-dns", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return Check("dns", FAILURE, f"{host} did not resolve within {timeout:g} s",
                     fix="check this host's DNS resolver (/etc/resolv.conf) and network")
    if "error" in box or not box.get("addresses"):
        return Check("dns", FAILURE, f"{host} does not resolve",
                     fix="check endpoint (GLOBESMS_ENDPOINT) or region, and this host's DNS")
    addresses: list[str] = box["addresses"]
    return Check("dns", OK, f"{host} -> {', '.join(addresses[:3])}",
                 detail={"host": host, "addresses": addresses})


def _connect(address: str, port: int, timeout: float) -> socket.socket:
    return socket.create_connection((address, port), timeout=timeout)


def _tcp_check(address: str, port: int, where: str, timeout: float) -> Check:
    started = time.monotonic()
    try:
        with _connect(address, port, timeout):
            pass
    except ConnectionRefusedError:
        return Check("tcp", FAILURE, f"{where} refused the connection (nothing listens there)",
                     fix="check endpoint (host and port) and that the service runs")
    except TimeoutError:
        return Check("tcp", FAILURE, f"{where} did not answer within {timeout:g} s",
                     fix="check endpoint, firewalls and proxies between this host and it")
    except OSError as exc:
        return Check("tcp", FAILURE, f"{where} cannot be reached ({type(exc).__name__})",
                     fix="check endpoint, routes and firewalls")
    elapsed = (time.monotonic() - started) * 1000
    return Check("tcp", OK, f"{where} connected in {elapsed:.0f} ms",
                 detail={"connect_ms": round(elapsed, 1)})


def _verified_context(ca_file: str | None) -> ssl.SSLContext:
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only to read a Date header or to name the protocol
    return context


def _tls_check(
    host: str, address: str, port: int, ca_file: str | None, timeout: float
) -> tuple[Check, ssl.SSLContext | None]:
    """The handshake with the context globesms uses; the context to read Date with after."""
    context = _verified_context(ca_file)
    where = f"{host}:{port}"
    try:
        with _connect(address, port, timeout) as raw, context.wrap_socket(
            raw, server_hostname=host
        ) as tls:
            cert = tls.getpeercert() or {}
            version_name = tls.version()
    except ssl.SSLCertVerificationError as exc:
        fix = ("set ca_file (GLOBESMS_CA_FILE) to the CA bundle that signed it"
               if ca_file is None else f"ca_file {ca_file} does not hold the CA that signed it")
        return Check("tls", FAILURE, f"{where}'s certificate is not trusted "
                     f"({exc.verify_message})", fix=fix), _unverified_context()
    except TimeoutError:
        return Check("tls", FAILURE, f"{where} did not complete a TLS handshake within "
                     f"{timeout:g} s", fix="check that endpoint is the HTTPS API host"), None
    except (ssl.SSLError, OSError) as exc:
        return Check("tls", FAILURE, f"TLS handshake with {where} failed ({type(exc).__name__})",
                     fix="check endpoint and protocol"), None
    subject = _name(cert.get("subject", ()))
    issuer = _name(cert.get("issuer", ()))
    expires_text = str(cert.get("notAfter", ""))
    detail: dict[str, Any] = {"subject": subject, "issuer": issuer, "tls_version": version_name}
    try:
        expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(expires_text), tz=timezone.utc)
    except ValueError:
        return Check("tls", WARNING, f"{subject}: expiry unreadable", detail=detail), context
    days = (expires - datetime.now(timezone.utc)).total_seconds() / 86400
    detail.update(expires=expires.isoformat(), days_left=math.floor(days))
    summary = f"{version_name}, {subject} issued by {issuer}, expires {expires:%Y-%m-%d}"
    if days < CERT_WARNING_DAYS:
        return Check("tls", WARNING, summary + f" ({math.floor(days)} days left)",
                     fix="the endpoint's certificate is about to expire: renew it",
                     detail=detail), context
    return Check("tls", OK, summary, detail=detail), context


def _name(parts: Any) -> str:
    values = {key: value for rdn in parts for key, value in rdn}
    return str(values.get("commonName") or values.get("organizationName") or "?")


def _protocol_check(
    host: str, port: int, protocol: str, context: ssl.SSLContext | None, timeout: float,
) -> tuple[Check, str | None]:
    """Speak the configured protocol to the endpoint; name a mismatch. Returns the Date header."""
    where = f"{host}:{port}"
    try:
        status, date = _get(host, port, protocol, context, timeout)
    except (OSError, HTTPException) as exc:
        return _mismatch_or_failure(host, port, protocol, timeout, exc), None
    return Check("protocol", OK, f"{where} answers {protocol} (HTTP {status})",
                 detail={"http_status": status}), date


def _get(
    host: str, port: int, protocol: str, context: ssl.SSLContext | None, timeout: float,
) -> tuple[int, str | None]:
    """``GET /``; the answer's status and ``Date`` (an API gateway answers 404, which is fine)."""
    connection: HTTPConnection
    if protocol == "https":
        connection = HTTPSConnection(host, port, timeout=timeout,
                                     context=context or _unverified_context())
    else:
        connection = HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/", headers={"User-Agent": "globesms-doctor"})
        response = connection.getresponse()
        response.read(64 * 1024)
        return response.status, response.getheader("Date")
    finally:
        connection.close()


def _mismatch_or_failure(
    host: str, port: int, protocol: str, timeout: float, exc: BaseException,
) -> Check:
    where = f"{host}:{port}"
    if protocol == "https" and _speaks_plain_http(host, port, timeout):
        return Check(
            "protocol", FAILURE, f"{where} speaks plain http but protocol is https",
            fix="use the endpoint's HTTPS port, or set protocol = \"http\" "
                f"(GLOBESMS_PROTOCOL=http) only if {where} is a local emulator",
            detail={"mismatch": True, "server_protocol": "http"},
        )
    if protocol == "http" and _speaks_tls(host, port, timeout):
        return Check(
            "protocol", FAILURE, f"{where} speaks https but protocol is http",
            fix="set protocol = \"https\" (GLOBESMS_PROTOCOL=https)",
            detail={"mismatch": True, "server_protocol": "https"},
        )
    if isinstance(exc, TimeoutError):
        return Check("protocol", FAILURE, f"{where} accepted a connection but did not answer "
                     f"within {timeout:g} s", fix="check that endpoint is the SMS API host")
    return Check("protocol", FAILURE, f"{where} gave no {protocol} answer ({type(exc).__name__})",
                 fix="check endpoint and protocol")


def _speaks_plain_http(host: str, port: int, timeout: float) -> bool:
    try:
        with _connect(host, port, timeout) as sock:
            sock.sendall(f"HEAD / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode("ascii"))
            return sock.recv(5) == b"HTTP/"
    except OSError:
        return False


def _speaks_tls(host: str, port: int, timeout: float) -> bool:
    try:
        with _connect(host, port, timeout) as raw, _unverified_context().wrap_socket(raw):
            return True
    except (OSError, ssl.SSLError):
        return False


def clock_skew(date_header: str, now: float | None = None) -> float:
    """Seconds the endpoint's clock is ahead of ours (negative: behind), from a ``Date`` header."""
    server = parsedate_to_datetime(date_header).timestamp()
    return server - (time.time() if now is None else now)


def _clock_check(date: str | None, *, answered: bool) -> Check:
    if date is None:
        if not answered:
            return Check("clock", SKIPPED, "not run: no answer to read the time from")
        return Check("clock", WARNING, "the endpoint sent no Date header; skew unknown",
                     fix=_NTP_FIX + " to be safe")
    try:
        # The header has whole seconds and was written before we read it: half a second of slack.
        skew = clock_skew(date) + 0.5
    except (TypeError, ValueError):
        return Check("clock", WARNING, f"unreadable Date header {date!r}", fix=_NTP_FIX)
    detail = {"skew_s": round(skew, 1), "server_date": date}
    text = f"this host is {abs(skew):.0f} s {'behind' if skew > 0 else 'ahead of'} the endpoint"
    if abs(skew) > GATEWAY_SKEW_LIMIT:
        return Check("clock", FAILURE, text + " (the gateway refuses more than 15 min)",
                     fix=_NTP_FIX, detail=detail)
    if abs(skew) > SKEW_WARNING:
        return Check("clock", WARNING, text, fix=_NTP_FIX, detail=detail)
    return Check("clock", OK, f"skew {round(skew):+d} s", detail=detail)


# -- signed call ------------------------------------------------------------------------------

_AUTH_FIXES = {
    "SignatureDoesNotMatch": "the AccessKey secret does not match the AccessKey id: set the "
    "secret that belongs to this id (ALIBABA_CLOUD_ACCESS_KEY_SECRET or your credential source)",
    "IncompleteSignature": "the request signature was refused: check the AccessKey secret",
    "InvalidAccessKeyId.NotFound": "the AccessKey id is unknown: check "
    "ALIBABA_CLOUD_ACCESS_KEY_ID (or your credential source)",
    "InvalidAccessKeyId.Inactive": "the AccessKey is disabled: enable it in the RAM console or "
    "use an active one",
    "InvalidTimeStamp.Expired": "the gateway says this host's clock is more than 15 min off: "
    + _NTP_FIX,
    "InvalidSecurityToken.Expired": "the STS token is expired or does not belong to the key: "
    "refresh the STS credential",
}


def _signed_call_check(
    settings: Settings | None, source: CredentialSource | None, network: list[Check],
    credentials: Check, timeout: float,
) -> Check:
    name = "signed call"
    if settings is None:
        return Check(name, SKIPPED, "not run: settings failed")
    if source is None:
        return Check(name, SKIPPED, "not run: no usable credential")
    failed = [c.name for c in network if c.status == FAILURE]
    if failed:
        return Check(name, SKIPPED, f"not run: {failed[0]} failed")
    from alibabacloud_dysmsapi20180501 import models
    from alibabacloud_tea_util.models import RuntimeOptions

    from ._client import build_client, seconds_to_ms

    key = credentials.detail.get("access_key_id")
    runtime = RuntimeOptions(
        autoretry=False,
        connect_timeout=seconds_to_ms(min(timeout, settings.connect_timeout)),
        read_timeout=seconds_to_ms(min(timeout, settings.read_timeout)),
    )
    try:
        with _log.quiet_sdk(True), _quiet_warnings():
            client = build_client(settings, source)
            response = client.query_message_with_options(
                models.QueryMessageRequest(message_id=PROBE_MESSAGE_ID), runtime
            )
    except Exception as exc:  # mapped through globesms's one table, never printed raw
        return _signed_call_failure(exc, key)
    body = response.body
    code = getattr(body, "response_code", None)
    request_id = getattr(body, "request_id", None)
    detail = {"response_code": code, "request_id": request_id}
    if code in ("OK", "DATA_NOT_EXIST"):
        return Check(name, OK, f"QueryMessage accepted the signature of AccessKey {key} "
                     f"(request {request_id})", detail=detail)
    return Check(name, WARNING, f"QueryMessage answered {code}", detail=detail,
                 fix="the key was accepted; look the code up in the README's error table")


def _signed_call_failure(exc: Exception, key: str | None) -> Check:
    error: SmsError = exc if isinstance(exc, SmsError) else error_for_exception(exc)
    code = error.code or type(error).__name__
    detail = {"error_class": type(error).__name__, "code": code, "request_id": error.request_id}
    fix = _AUTH_FIXES.get(code)
    if fix is not None:
        return Check("signed call", FAILURE, f"the gateway refused AccessKey {key}: {code}",
                     fix=fix, detail=detail)
    if code.startswith(("Forbidden", "NoPermission")):
        return Check(
            "signed call", WARNING, f"the key and secret are valid, but {code} for QueryMessage",
            fix="grant the RAM identity dysms:QueryMessage (and dysms:SendMessageToGlobe to send)",
            detail=detail,
        )
    return Check("signed call", FAILURE, f"QueryMessage failed: {type(error).__name__} [{code}]",
                 fix=error.hint, detail=detail)


# -- stores -----------------------------------------------------------------------------------


def _store_checks(
    settings: Settings | None, environ: Mapping[str, str], timeout: float,
    config: str | None = None,
) -> list[Check]:
    rate = getattr(settings, "rate_store", None) if settings is not None else None
    rate_source = "rate_store setting"
    if not rate:
        rate, rate_source = environ.get(RATE_STORE_ENV), RATE_STORE_ENV
    verify, verify_source = _verify_store(config, environ)
    return [
        _store_check("verification store", verify, verify_source, timeout),
        _store_check("rate store", rate, rate_source, timeout),
    ]


def _verify_store(config: str | None, environ: Mapping[str, str]) -> tuple[str | None, str]:
    """The store VerificationService would use: GLOBESMS_VERIFY_STORE, else ``store`` in the
    ``[verify]`` table, else the default SQLite file."""
    from ._verify._config import load_settings

    if environ.get(VERIFY_STORE_ENV):
        return environ[VERIFY_STORE_ENV], VERIFY_STORE_ENV
    try:
        store = load_settings(config, environ).store
    except ConfigurationError:
        return None, VERIFY_STORE_ENV
    return store, "[verify] store, else the default"


def redact_url(url: str) -> str:
    """A URL with any user and password replaced by ``****``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<not a URL>"
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="****@" + parts.netloc.rpartition("@")[2]))


_USERINFO = re.compile(r"(://)[^/\s]*@")


def redact_text(text: str) -> str:
    """``text`` with the user and password of every URL in it replaced by ``****``."""
    return _USERINFO.sub(r"\1****@", text)


def _store_check(name: str, value: Any, source: str, timeout: float) -> Check:
    if not value:
        return Check(name, SKIPPED, "not configured (in-process memory)")
    text = str(value).strip()
    scheme = urlsplit(text).scheme.lower()
    shown = redact_url(text)
    detail: dict[str, Any] = {"store": shown, "source": source}
    if scheme in ("redis", "rediss", "unix"):
        return _redis_check(name, text, shown, source, timeout, detail)
    if text.lower() in ("memory", "memory://"):
        return Check(name, WARNING, "in-process memory: not shared between processes",
                     fix=f"set {source} to a redis:// URL when several processes serve users",
                     detail=detail)
    if scheme in ("sqlite", "") or text.endswith((".db", ".sqlite", ".sqlite3")):
        return _sqlite_check(name, text, shown, source, timeout, detail)
    return Check(name, WARNING, f"{shown} ({source}): doctor cannot check this kind of store",
                 detail=detail)


def _redis_check(
    name: str, url: str, shown: str, source: str, timeout: float, detail: dict[str, Any]
) -> Check:
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        return Check(name, FAILURE, f"{shown} needs the redis client",
                     fix="pip install 'globesms[redis]'", detail=detail)
    started = time.monotonic()
    try:
        client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        return Check(name, FAILURE, f"{shown} does not answer PING ({type(exc).__name__})",
                     fix=f"start Redis or fix {source}; safety limits fail closed while it is down",
                     detail=detail)
    elapsed = (time.monotonic() - started) * 1000
    detail["ping_ms"] = round(elapsed, 1)
    return Check(name, OK, f"{shown} answered PING in {elapsed:.0f} ms", detail=detail)


def _sqlite_check(
    name: str, text: str, shown: str, source: str, timeout: float, detail: dict[str, Any]
) -> Check:
    path = Path(text[len("sqlite:///"):] if text.startswith("sqlite:///") else text)
    if path.exists():
        try:
            with contextlib.closing(
                sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=timeout)
            ) as connection:
                connection.execute("PRAGMA schema_version").fetchone()
        except sqlite3.Error as exc:
            return Check(name, FAILURE, f"{shown} cannot be opened ({type(exc).__name__})",
                         fix=f"check the file's permissions or fix {source}", detail=detail)
        return Check(name, OK, f"{shown} opens read-write", detail=detail)
    parent = path.parent if str(path.parent) else Path()
    existing = next((p for p in (parent, *parent.parents) if p.exists()), Path("/"))
    if existing.is_dir() and os.access(existing, os.W_OK):  # the store makes missing folders
        return Check(name, OK, f"{shown} will be created", detail=detail)
    return Check(name, FAILURE, f"{shown}: directory {existing} is not writable",
                 fix=f"make it writable or fix {source}", detail=detail)


# -- the command ------------------------------------------------------------------------------


def command(
    *, config: str | None = None, sandbox: bool = False, json_output: bool = False,
    timeout: float = DEFAULT_TIMEOUT, environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
) -> int:
    """``globesms doctor``: run the checks, print the report, return 0 (no failure) or 1."""
    env = os.environ if environ is None else environ
    stream = out if out is not None else sys.stdout
    with contextlib.ExitStack() as stack:
        inputs = _sandbox_inputs(stack, config, timeout, env) if sandbox else _inputs(
            config, timeout, env
        )
        checks = run_checks(inputs)
    print(as_json(checks) if json_output else as_text(checks), file=stream)
    return exit_status(checks)


def _inputs(config: str | None, timeout: float, env: Mapping[str, str]) -> Inputs:
    sources: dict[str, str] = {}
    try:
        settings = Settings.load(config, env, sources_into=sources)
    except ConfigurationError as error:
        return Inputs(None, sources, env, settings_error=error, timeout=timeout, config=config)
    return Inputs(settings, sources, env, timeout=timeout, config=config)


def _sandbox_inputs(
    stack: contextlib.ExitStack, config: str | None, timeout: float, env: Mapping[str, str]
) -> Inputs:
    """Settings and a throwaway key pointed at an in-process emulator (as ``send --sandbox``)."""
    import secrets

    from ._credentials import static_credential
    from .emulator import Emulator

    key_id, secret = "sandbox-" + secrets.token_hex(4), secrets.token_urlsafe(24)
    emulator = stack.enter_context(Emulator(access_keys={key_id: secret}))
    sources: dict[str, str] = {}
    overrides = {"endpoint": emulator.endpoint, "protocol": "http", "ca_file": None}
    try:
        settings = Settings.load(config, {}, sources_into=sources, **overrides)
    except ConfigurationError as error:
        return Inputs(None, sources, env, settings_error=error, timeout=timeout, sandbox=True)
    for key in overrides:
        sources[key] = "--sandbox"
    return Inputs(settings, sources, env, credential=lambda: static_credential(key_id, secret),
                  timeout=timeout, sandbox=True)


# -- output -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_warnings() -> Iterator[None]:
    """The SDK's own deprecation warnings must not fail a check under ``-W error``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def as_json(checks: list[Check]) -> str:
    """The report for machines: ``{"ok": bool, "checks": [...]}``."""
    payload = {
        "ok": exit_status(checks) == 0,
        "checks": [
            {"name": c.name, "status": c.status, "summary": c.summary, "fix": c.fix,
             "detail": c.detail}
            for c in checks
        ],
    }
    return json.dumps(payload, indent=2, ensure_ascii=False, default=str)


def as_text(checks: list[Check]) -> str:
    """The report for people: one line per check, its fix below, settings with their sources."""
    lines: list[str] = []
    for check in checks:
        lines.append(f"{check.status:<8} {check.name:<19} {check.summary}")
        if check.name == "settings" and "values" in check.detail:
            for key, item in check.detail["values"].items():
                lines.append(f"{'':<28}{key:<19} {item['value']!s:<38} {item['source']}")
        if check.fix and check.status in (WARNING, FAILURE):
            lines.append(f"{'':<28}fix: {check.fix}")
    failures = sum(c.status == FAILURE for c in checks)
    warned = sum(c.status == WARNING for c in checks)
    lines.append(f"{failures} failure(s), {warned} warning(s)")
    return "\n".join(lines)
