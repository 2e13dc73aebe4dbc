"""The ``Emulator`` facade: lifecycle, endpoint, scripts and snapshots."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType, TracebackType

from ._backend import Backend, GatewayOptions
from ._codes import find_code
from ._control import Control, digits
from ._faults import ChaosSettings
from ._operations import DEFAULT_MAX_RECORDS, DELIVERY_STATUSES, DeliveryRule, Policy
from ._outcomes import OUTCOME_TYPES, Outcome
from ._records import AcceptedMessage, Conversion, ConversionReport, RecordedRequest
from ._server import LoopbackServer
from ._tls import TlsMaterial, load_trustme, make_tls_material


def _name_set(name: str, values: Iterable[str] | None) -> frozenset[str] | None:
    if values is None:
        return None
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a collection of strings or None (got {values!r})")
    result = frozenset(values)
    if not all(isinstance(value, str) and value for value in result):
        raise ValueError(f"{name} must hold non-empty strings")
    return result


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _client_host(host: str) -> str:
    """Where a local client reaches a server bound to ``host`` (wildcards: the loopback)."""
    bare = host.strip("[]")
    if bare in ("", "0.0.0.0"):  # noqa: S104 - recognising the wildcard, not binding it
        return "127.0.0.1"
    if bare == "::":
        return "[::1]"
    return f"[{bare}]" if ":" in bare else bare


def _templates(
    values: Iterable[str] | Mapping[str, str] | None,
) -> Mapping[str, str | None] | None:
    if values is None:
        return None
    if isinstance(values, Mapping):
        for code, text in values.items():
            if not isinstance(code, str) or not code or not isinstance(text, str):
                raise ValueError("template_codes maps non-empty codes to template texts")
        return dict(values)
    codes = _name_set("template_codes", values)
    return dict.fromkeys(codes or ())


class Emulator:
    """A loopback stand-in for the Dysmsapi 2018-05-01 endpoint (all six operations).

    It verifies ACS3-HMAC-SHA256 signatures against ``access_keys`` (AccessKey
    id -> secret), accepts well-formed messages, answers like Alibaba's gateway
    for the rest, and plays back scripted outcomes. Use it as a context
    manager, or call ``start()`` and ``close()``::

        with Emulator(access_keys={"ID": "SECRET"}) as emu:
            config = Config(access_key_id="ID", access_key_secret="SECRET",
                            endpoint=emu.endpoint, protocol=emu.protocol)

    It listens on 127.0.0.1 only, on a port the OS picks unless ``port`` is
    given. With ``tls=True`` it serves HTTPS with a certificate from a private
    CA whose PEM file is ``ca_file`` (pass it to the SDK as ``Config(ca=...)``).
    ``clock`` (epoch seconds) is the server time for the ``x-acs-date`` window,
    nonce memory, the QPS window and message timestamps.

    Approved lists (None, the default, accepts anything): ``sender_ids``
    (else ``INVALID_SENDERID``), ``sign_names`` (else ``SMS_SIGN_NAME_ILLEGAL``)
    and ``template_codes`` (else ``SMS_CONTENT_CODE_ILLEGAL``; a mapping of code
    to template text with ``${name}`` variables also renders the message and
    answers ``CONTENT_MISSING_PARAMETERS`` for a variable without value).
    ``security_tokens``: when given, a request carrying any other
    ``x-acs-security-token`` is refused with HTTP 400
    ``InvalidSecurityToken.Expired`` (requests without a token are unaffected).
    ``qps``: at most that many requests per AccessKey id in any one-second
    window; beyond it HTTP 400 ``Throttling.User`` with ``x-acs-retry-after``
    (milliseconds until a slot frees).
    ``sts_tokens``: AccessKey id (one of ``access_keys``) -> the STS security
    token it was issued with, as for temporary credentials: a request signed
    with such a key and no ``x-acs-security-token`` gets HTTP 400
    ``MissingSecurityToken``, one with another token HTTP 400
    ``InvalidSecurityToken.MismatchWithAccessKey``.

    The SMS inbox (``inbox_url``) and its JSON control API live under
    ``/_emulator/``. ``host`` binds another address than 127.0.0.1; on a
    non-loopback address they need ``admin_token`` (sent as an
    ``X-Emulator-Token`` header, a bearer token, or the login form's cookie)
    unless ``no_auth=True`` says, explicitly, that anyone who reaches the port
    may read the codes. ``max_records``: messages, requests and conversions
    kept (the oldest are dropped beyond it).
    """

    def __init__(
        self,
        *,
        access_keys: Mapping[str, str],
        tls: bool = False,
        clock: Callable[[], float] = time.time,
        port: int = 0,
        sender_ids: Iterable[str] | None = None,
        sign_names: Iterable[str] | None = None,
        template_codes: Iterable[str] | Mapping[str, str] | None = None,
        security_tokens: Iterable[str] | None = None,
        sts_tokens: Mapping[str, str] | None = None,
        qps: int | None = None,
        answer_delay: float = 0.0,
        host: str = "127.0.0.1",
        admin_token: str | None = None,
        no_auth: bool = False,
        max_records: int = DEFAULT_MAX_RECORDS,
    ) -> None:
        if not isinstance(access_keys, Mapping) or not access_keys:
            raise ValueError("access_keys must map at least one AccessKey id to its secret")
        for key_id, secret in access_keys.items():
            if (
                not isinstance(key_id, str)
                or not key_id
                or not isinstance(secret, str)
                or not secret
            ):
                raise ValueError("access_keys ids and secrets must be non-empty strings")
        if not callable(clock):
            raise TypeError("clock must be a callable returning epoch seconds")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be 0 (any free port) or 1-65535 (got {port!r})")
        if qps is not None and (isinstance(qps, bool) or not isinstance(qps, int) or qps < 1):
            raise ValueError(f"qps must be a positive int or None (got {qps!r})")
        if sts_tokens is not None:
            if not isinstance(sts_tokens, Mapping):
                raise TypeError("sts_tokens must map AccessKey ids to security tokens")
            for key_id, token in sts_tokens.items():
                if key_id not in access_keys:
                    raise ValueError("every sts_tokens key must be one of the access_keys ids")
                if not isinstance(token, str) or not token.strip():
                    raise ValueError("sts_tokens values must be non-empty strings")
        policy = Policy(
            sender_ids=_name_set("sender_ids", sender_ids),
            sign_names=_name_set("sign_names", sign_names),
            templates=_templates(template_codes),
        )
        if not isinstance(answer_delay, (int, float)) or not 0 <= answer_delay <= 60:
            raise ValueError(f"answer_delay must be 0-60 seconds (got {answer_delay!r})")
        options = GatewayOptions(
            security_tokens=_name_set("security_tokens", security_tokens),
            sts_tokens=dict(sts_tokens) if sts_tokens is not None else None, qps=qps,
            answer_delay=float(answer_delay),
        )
        if not isinstance(host, str) or not host.strip("[]") or any(c in host for c in " /\n"):
            raise ValueError(f"host must be an address to bind, e.g. 127.0.0.1 (got {host!r})")
        if admin_token is not None and (
            not isinstance(admin_token, str)
            or len(admin_token) < 8
            or not admin_token.isprintable()
            or any(c in admin_token for c in " ;,\"")
        ):
            raise ValueError("admin_token must be at least 8 printable characters, no spaces")
        loopback = is_loopback(host)
        if not loopback and admin_token is None and not no_auth:
            raise ValueError(
                f"bound to {host} (not a loopback address), the inbox and control API show"
                " codes and numbers to anyone who can reach the port: give admin_token, or"
                " no_auth=True to serve them without one"
            )
        if isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 1:
            raise ValueError(f"max_records must be a positive int (got {max_records!r})")
        self._trustme: ModuleType | None = load_trustme() if tls else None
        self._tls = tls
        self._port = port
        self._host = host.strip("[]")
        self._backend = Backend(
            access_keys, clock, policy=policy, options=options, max_records=max_records
        )
        self._backend.control = Control(
            self._backend,
            token=admin_token,
            loopback=loopback,
            set_message_delivery=self._set_message_delivery,
            set_delivery=self._set_delivery_rule,
            chaos=self.chaos,
            reset=self.reset,
        )
        self._server: LoopbackServer | None = None
        self._thread: threading.Thread | None = None
        self._material: TlsMaterial | None = None
        self._closed = False
        self._lifecycle = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind and start serving; return self. Raises RuntimeError when started or closed."""
        with self._lifecycle:
            if self._closed:
                raise RuntimeError("this Emulator is closed; create a new one")
            if self._server is not None:
                raise RuntimeError("this Emulator is already started")
            material = (
                make_tls_material(self._trustme, _client_host(self._host).strip("[]"))
                if self._trustme is not None else None
            )
            try:
                server = LoopbackServer(
                    self._backend,
                    host=self._host,
                    port=self._port,
                    ssl_context=material.context if material is not None else None,
                )
            except BaseException:
                if material is not None:
                    material.remove()
                raise
            self._material = material
            self._server = server
            self._backend.host_id = f"{_client_host(self._host)}:{server.port}"
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"globesms-emulator-{server.port}",
                daemon=True,
            )
            self._thread.start()
            return self

    def close(self) -> None:
        """Stop serving, cut open connections and delays, remove TLS files. Idempotent."""
        with self._lifecycle:
            if self._closed:
                return
            self._closed = True
            self._backend.closing.set()
            self._backend.api.changes.close()
            server, thread, material = self._server, self._thread, self._material
            if server is not None:
                server.shutdown()
                server.server_close()
                server.close_connections()
            if thread is not None:
                thread.join()
            if material is not None:
                material.remove()

    def __enter__(self) -> Emulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self._server else "new"
        where = f" endpoint={self.endpoint!r}" if self._server is not None else ""
        return f"<Emulator {state}{where} tls={self._tls}>"

    # -- where to reach it -------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``HOST:PORT`` (127.0.0.1 for a wildcard bind), for ``Config(endpoint=...)``."""
        if self._server is None:
            raise RuntimeError("the Emulator is not started: use start() or a with block")
        return f"{_client_host(self._host)}:{self._server.port}"

    @property
    def protocol(self) -> str:
        """``"https"`` when ``tls=True``, else ``"http"``, for ``Config(protocol=...)``."""
        return "https" if self._tls else "http"

    @property
    def ca_file(self) -> str | None:
        """Path of the CA certificate (PEM) to trust with ``tls=True``; None for plain HTTP."""
        if not self._tls:
            return None
        if self._material is None:
            raise RuntimeError("the Emulator is not started: the CA is made by start()")
        return self._material.ca_file

    @property
    def access_keys(self) -> dict[str, str]:
        """A copy of the AccessKey id -> secret map the emulator accepts."""
        return dict(self._backend.access_keys)

    # -- what happened -------------------------------------------------------------------

    @property
    def messages(self) -> list[AcceptedMessage]:
        """Accepted messages, oldest first (a snapshot)."""
        return self._backend.messages()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request that reached the server, oldest first (a snapshot)."""
        return self._backend.requests()

    @property
    def peak_in_flight(self) -> int:
        """The most requests the server was handling at once since start (or ``reset()``)."""
        return self._backend.peak_in_flight()

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        """Block until ``count`` requests have arrived; False if ``timeout`` seconds ran out.

        For tests that must act while a request is being handled (e.g. cancel a send that is
        waiting on a ``Delay``) without sleeping.
        """
        return self._backend.wait_for_requests(count, timeout)

    @property
    def conversions(self) -> list[Conversion]:
        """Accepted ``SmsConversion`` reports, oldest first (a snapshot)."""
        return self._backend.api.conversions()

    @property
    def conversion_reports(self) -> list[ConversionReport]:
        """Accepted ``ConversionData`` reports, oldest first (a snapshot)."""
        return self._backend.api.reports()

    @property
    def admin_url(self) -> str:
        """Base URL of the JSON control API, e.g. ``admin_url + "messages"``."""
        return f"{self.protocol}://{self.endpoint}/_emulator/"

    @property
    def inbox_url(self) -> str:
        """The SMS inbox page (same as ``admin_url``)."""
        return self.admin_url

    def latest_message(self, to: str | None = None) -> AcceptedMessage | None:
        """The newest kept message (to ``to``, any spelling of the number), or None."""
        wanted = digits(to) if to is not None else None
        for message in reversed(self._backend.messages()):
            if wanted is None or message.to == wanted:
                return message
        return None

    def latest_code(self, to: str | None = None) -> str | None:
        """The verification code (4-10 digits, or WebOTP ``#code``) of the newest message
        to ``to`` that has one, as the inbox highlights it; None when there is none."""
        wanted = digits(to) if to is not None else None
        for message in reversed(self._backend.messages()):
            if wanted is None or message.to == wanted:
                found = find_code(message.message)
                if found is not None:
                    return found[0]
        return None

    def clear_messages(self) -> None:
        """Forget the accepted messages (and their delivery states), as the inbox's Clear all."""
        self._backend.api.clear_messages()

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self._backend.clear_requests()

    def delivery_status(self, message_id: str) -> str:
        """What QueryMessage would report now for ``message_id``: sent, failed or sending."""
        for message in self._backend.messages():
            if message.message_id == message_id:
                return self._backend.api.delivery_of(message).status
        raise KeyError("no accepted message has this id")

    # -- steering --------------------------------------------------------------------------

    def script(self, to: str | None, *outcomes: Outcome) -> None:
        """Queue outcomes for the next requests to ``to`` (digits as sent).

        Each verified request takes one outcome from its recipient's queue,
        or, when that is empty, from the global queue (``to=None``); with both
        empty it is handled normally.
        """
        if to is not None and not isinstance(to, str):
            raise TypeError(f"to must be the recipient as a string, or None (got {to!r})")
        for outcome in outcomes:
            if not isinstance(outcome, OUTCOME_TYPES):
                raise TypeError(f"not an outcome: {outcome!r} (use Accept, Reply, HttpError...)")
        self._backend.script(to, outcomes)

    def set_delivery(
        self,
        to: str | None,
        status: str = "sent",
        *,
        error_code: str | None = None,
        description: str | None = None,
    ) -> None:
        """Decide what QueryMessage reports for messages to ``to`` (None: every number).

        ``status`` is ``"sent"`` (Status 1, the default for every message),
        ``"failed"`` (Status 2, ``ErrorCode`` = ``error_code``, default
        ``UNDELIVERED``) or ``"sending"`` (Status 3, no receipt yet). The rule
        is read when QueryMessage runs, so it also applies to messages already
        accepted: hold a number in ``"sending"``, then set ``"sent"`` to
        release it. A number's own rule wins over a magic number's and over
        the ``None`` rule.
        """
        if to is not None and not isinstance(to, str):
            raise TypeError("to must be the recipient as a string, or None")
        if status not in DELIVERY_STATUSES:
            raise ValueError(f"status must be one of {sorted(DELIVERY_STATUSES)} (got {status!r})")
        if error_code is not None and (not isinstance(error_code, str) or not error_code):
            raise ValueError("error_code must be a non-empty string or None")
        self._set_delivery_rule(to, status, error_code, description)

    def _set_delivery_rule(
        self, to: str | None, status: str, error_code: str | None, description: str | None
    ) -> None:
        self._backend.api.set_delivery(to, DeliveryRule(status, error_code, description))

    def set_message_delivery(
        self,
        message_id: str,
        status: str,
        *,
        error_code: str | None = None,
        description: str | None = None,
    ) -> None:
        """Decide what QueryMessage reports for one message (as the inbox's state control).

        ``status`` as for ``set_delivery``; this wins over every number rule.
        Raises KeyError when no kept message has ``message_id``.
        """
        if status not in DELIVERY_STATUSES:
            raise ValueError(f"status must be one of {sorted(DELIVERY_STATUSES)} (got {status!r})")
        if error_code is not None and (not isinstance(error_code, str) or not error_code):
            raise ValueError("error_code must be a non-empty string or None")
        if not self._set_message_delivery(message_id, status, error_code, description):
            raise KeyError("no kept message has this id")

    def _set_message_delivery(
        self, message_id: str, status: str, error_code: str | None, description: str | None
    ) -> bool:
        rule = DeliveryRule(status, error_code, description)
        return self._backend.api.set_message_delivery(message_id, rule)

    def chaos(
        self,
        *,
        seed: int | None = None,
        drop: float = 0.0,
        http_500: float = 0.0,
        http_503: float = 0.0,
        throttle: float = 0.0,
        system_error: float = 0.0,
        delay: tuple[float, float] | None = None,
    ) -> None:
        """Fail a random share of requests, reproducibly for a given ``seed``.

        Each rate is the probability (0-1) that a request gets that fault; a
        request gets at most one, so the rates may add up to at most 1.
        ``drop``: connection closed without an answer; ``http_500`` /
        ``http_503``: gateway errors; ``throttle``: HTTP 400 ``Throttling.User``
        with ``x-acs-retry-after: 1000``; ``system_error``: HTTP 200
        ``SYSTEM_ERROR``; ``delay=(rate, seconds)``: the answer is held back
        ``seconds``, then the request is handled normally. Scripts and magic
        numbers go first; only requests that passed the gateway checks draw.
        Call with no rates (``emu.chaos()``) to turn chaos off.
        """
        self._backend.set_chaos(
            ChaosSettings(
                seed=seed,
                drop=drop,
                http_500=http_500,
                http_503=http_503,
                throttle=throttle,
                system_error=system_error,
                delay=delay,
            )
        )

    def reset(self) -> None:
        """Forget messages, conversions, requests, scripts, delivery rules, chaos and nonces."""
        self._backend.reset()
