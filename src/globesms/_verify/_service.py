"""The facade: :class:`VerificationService` starts and checks verifications.

One core, two thin shells: :class:`_Plan` builds the store requests and reads their answers;
``start``/``check`` and their ``_async`` twins only do the I/O (store, SMS) around it.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any

import phonenumbers

from .. import _log
from .._errors import (
    AccountError,
    AuthError,
    ConfigurationError,
    InvalidRecipient,
    InvalidRequest,
    MessageRejected,
    SmsError,
    Throttled,
    TransientError,
)
from .._hooks import VERIFY_CHECK, VERIFY_START, CallInfo, Observation
from .._validate import mask_digits, mask_number, parse_recipient
from . import _policy as policy
from ._codes import Keys, bind, new_code, new_id, new_seed, well_formed
from ._config import VerifySettings, default_store_url, load_settings, resolve_secret
from ._engine import Budget, CheckOutcome, CheckRequest, Reservation, StartRequest, Store
from ._message import Messages
from ._policy import GateRule, Limits, Record, Refusal
from ._reporter import ConversionReporter
from ._stores import MemoryStore, SqliteStore

if TYPE_CHECKING:
    from .._results import SendReceipt
    from .._service import SmsService

STARTED = "verify.started"
REFUSED = "verify.refused"
CHECKED = "verify.checked"
WITHDRAWN = "verify.withdrawn"

#: A failed send in one of these classes proves nothing went out: the challenge is withdrawn.
NOT_SENT = (InvalidRequest, TransientError, MessageRejected, AccountError, AuthError,
            ConfigurationError)
_NEVER = "!"  # a candidate no stored HMAC can match (malformed codes still count as a check)

_HINTS = {
    policy.LOCKED: "too many wrong codes for this number and purpose; a new code can be "
                   "requested when the locked one expires",
    policy.COOLDOWN: "a code was sent to this number moments ago; wait before asking again",
    policy.NUMBER_BUDGET: "too many codes were sent to this number recently",
    policy.KEY_BUDGET: "too many codes were requested for this rate key",
    policy.PREFIX_BUDGET: "too many codes were sent to this number range this hour",
    policy.COUNTRY_BUDGET: "too many codes were sent to this country this hour",
    policy.GLOBAL_BUDGET: "too many codes were sent this hour",
    policy.LOW_CONVERSION: "codes sent to this number range or country are rarely entered "
                           "(SMS pumping defence); sending there is paused",
}


@dataclass(frozen=True, kw_only=True, repr=False)
class Challenge:
    """A started verification. ``repr`` masks the number; the code is never kept."""

    id: str
    to: str
    purpose: str
    expires_at: datetime
    resend_at: datetime
    checks_left: int
    message_id: str | None

    def __repr__(self) -> str:
        return (
            f"Challenge(id={self.id!r}, to={mask_number(self.to)!r}, purpose={self.purpose!r}, "
            f"expires_at={self.expires_at.isoformat()!r}, "
            f"resend_at={self.resend_at.isoformat()!r}, checks_left={self.checks_left!r}, "
            f"message_id={self.message_id!r})"
        )


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """The answer to a check; ``bool(result)`` is ``result.approved``."""

    approved: bool
    status: str
    checks_left: int

    def __bool__(self) -> bool:
        return self.approved


@dataclass(frozen=True)
class _Number:
    digits: str
    country_code: int

    @property
    def masked(self) -> str:
        return mask_digits(self.digits, self.country_code)


def store_from_url(url: str, *, environ: Mapping[str, str] | None = None) -> Store:
    """A store for ``memory://``, ``sqlite:///path`` or ``redis://`` / ``rediss://`` URLs."""
    if url == "memory://" or url == "memory":
        return MemoryStore()
    if url.startswith("sqlite:///"):
        return SqliteStore(url[len("sqlite:///"):] or default_store_url(environ or {})[10:])
    if url.startswith(("redis://", "rediss://", "unix://")):
        from ._redis import RedisStore

        return RedisStore(url)
    scheme = url.split("://", 1)[0] if "://" in url else url[:10]
    raise ConfigurationError.for_setting(
        "store", scheme + "://...",
        "must be memory://, sqlite:///path or redis://host:port/db (rediss:// for TLS)",
    )


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


class VerificationService:
    """Send verification codes by SMS and check them, safely across processes and hosts.

    ``store`` defaults to the ``store`` setting (SQLite under the user's state directory);
    ``secret`` to ``GLOBESMS_VERIFY_SECRET``; every other option (``code_length``, ``ttl``,
    ``max_checks``, ``resend_cooldown``, ``max_sends``, ...) to the ``[verify]`` table of the
    settings file and ``GLOBESMS_VERIFY_*`` variables. See docs/verification.md.
    """

    def __init__(
        self,
        sms: SmsService,
        *,
        store: Store | None = None,
        secret: str | bytes | None = None,
        settings: VerifySettings | None = None,
        config: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        env = os.environ if environ is None else environ
        if settings is None:
            settings = load_settings(config, env, **options)
        elif options:
            settings = load_settings(config, {}, **{**_as_dict(settings), **options})
        self.settings = settings
        self._keys = Keys(resolve_secret(secret, env))
        self._messages = Messages(settings)
        self._sms = sms
        self._owns_store = store is None
        self.store: Store = store if store is not None else store_from_url(
            settings.store or default_store_url(env), environ=env
        )
        self._limits = Limits(
            ttl=settings.ttl, max_checks=settings.max_checks, cooldown=settings.resend_cooldown,
            growth=settings.cooldown_growth, same=settings.resend == "same",
        )
        self._gate = None if settings.conversion_gate == "off" else GateRule(
            window=settings.conversion_window, min_starts=settings.conversion_min_starts,
            min_ratio=settings.conversion_min_ratio, block=settings.conversion_block,
            block_max=settings.conversion_block_max,
            monitor=settings.conversion_gate == "monitor",
        )
        self._reporter = (ConversionReporter(sms, settings.conversion_queue)
                          if settings.report_conversions else None)
        self._test_numbers = {
            "".join(ch for ch in number if ch.isdigit()): code
            for number, code in settings.test_numbers.items()
        }

    def __repr__(self) -> str:
        return f"VerificationService(store={self.store!r})"

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> VerificationService:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    async def __aenter__(self) -> VerificationService:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    def close(self) -> None:
        """Send the queued conversion reports; close the store when this service built it."""
        if self._reporter is not None:
            self._reporter.close()
        if self._owns_store:
            self.store.close()

    async def aclose(self) -> None:
        """``close`` for asyncio: the queued reports drain in a thread, the loop keeps running."""
        if self._reporter is not None:
            await asyncio.to_thread(self._reporter.close)
        if self._owns_store:
            await self.store.aclose()

    # -- start -----------------------------------------------------------------------------------

    def start(self, to: str, *, purpose: str = "default", locale: str | None = None,
              rate_key: str | None = None) -> Challenge:
        """Send a code to ``to``; return the :class:`Challenge` or raise.

        Refusals raise :class:`Throttled` (``code`` names the limit, ``retry_after`` in seconds)
        or :class:`InvalidRecipient` (``CountryNotAllowed``) and send nothing. A failed send
        withdraws the challenge unless the SMS may have gone out (:class:`DeliveryUncertain`).
        """
        with self._observed(VERIFY_START, to) as observed:
            return observed.done(self._start(to, purpose, locale, rate_key))

    def _start(self, to: str, purpose: str, locale: str | None, rate_key: str | None
               ) -> Challenge:
        plan = self._plan(to, purpose, locale, rate_key)
        if plan.test_code is not None:
            return plan.test_challenge()
        outcome = self.store.start(plan.start_request())
        reservation = plan.reserved(outcome)
        try:
            if plan.mainland:
                receipt = self._sms.send_template(plan.to, **plan.template_args())
            else:
                receipt = self._sms.send(plan.to, plan.text(), message_type="OTP",
                                         task_id=reservation.record.id)
        except NOT_SENT as error:
            plan.log_withdrawn(error)
            self._quietly(lambda: self.store.withdraw(plan.key, reservation))
            raise
        self._quietly(lambda: self.store.record_message_id(
            plan.key, reservation.record.id, receipt.message_id))
        return plan.challenge(reservation, receipt)

    async def start_async(self, to: str, *, purpose: str = "default", locale: str | None = None,
                          rate_key: str | None = None) -> Challenge:
        """``start`` for asyncio: same arguments, challenge, refusals and errors."""
        with self._observed(VERIFY_START, to) as observed:
            return observed.done(await self._start_async(to, purpose, locale, rate_key))

    async def _start_async(self, to: str, purpose: str, locale: str | None,
                           rate_key: str | None) -> Challenge:
        plan = self._plan(to, purpose, locale, rate_key)
        if plan.test_code is not None:
            return plan.test_challenge()
        outcome = await self.store.start_async(plan.start_request())
        reservation = plan.reserved(outcome)
        try:
            if plan.mainland:
                receipt = await self._sms.send_template_async(plan.to, **plan.template_args())
            else:
                receipt = await self._sms.send_async(plan.to, plan.text(),
                                                     message_type="OTP",
                                                     task_id=reservation.record.id)
        except NOT_SENT as error:
            plan.log_withdrawn(error)
            try:
                await self.store.withdraw_async(plan.key, reservation)
            except SmsError:
                _log.logger.warning("verify: withdraw failed; the reservation stays counted")
            raise
        try:
            await self.store.record_message_id_async(plan.key, reservation.record.id,
                                                     receipt.message_id)
        except SmsError:
            _log.logger.warning("verify: could not record the message id")
        return plan.challenge(reservation, receipt)

    @staticmethod
    def _quietly(action: Any) -> None:
        try:
            action()
        except SmsError:
            _log.logger.warning("verify: store update after the send failed; left as is")

    # -- check -----------------------------------------------------------------------------------

    def check(self, to: str, code: str, *, purpose: str = "default") -> CheckResult:
        """Check ``code``; a wrong, expired or unknown code is a result, never an exception.

        Raises only for a malformed number (:class:`InvalidRecipient`) or an unreachable store
        (:class:`StoreUnavailable`: nothing is approved).
        """
        with self._observed(VERIFY_CHECK, to) as observed:
            request, number, test = self._check_request(to, code, purpose)
            if test is not None:
                return observed.done(test)
            return observed.done(self._checked(self.store.check(request), number, purpose))

    async def check_async(self, to: str, code: str, *, purpose: str = "default") -> CheckResult:
        """``check`` for asyncio."""
        with self._observed(VERIFY_CHECK, to) as observed:
            request, number, test = self._check_request(to, code, purpose)
            if test is not None:
                return observed.done(test)
            outcome = await self.store.check_async(request)
            return observed.done(self._checked(outcome, number, purpose))

    def _check_request(self, to: object, code: object, purpose: object
                       ) -> tuple[CheckRequest, _Number, CheckResult | None]:
        number = self._number(to)
        _check_name("purpose", purpose)
        assert isinstance(purpose, str)
        fixed = self._test_numbers.get(number.digits)
        if fixed is not None:
            right = isinstance(code, str) and hmac.compare_digest(
                code.encode("utf-8", "replace"), fixed.encode())
            status = policy.APPROVED if right else policy.WRONG_CODE
            return (CheckRequest("", _NEVER, 0), number,
                    CheckResult(approved=right, status=status,
                                checks_left=self.settings.max_checks))
        length = self.settings.code_length
        candidate = (self._keys.candidate(purpose, number.digits, code)
                     if well_formed(code, length) and isinstance(code, str) else _NEVER)
        gate = self._gate
        return CheckRequest(
            challenge_key=self._challenge_key(number, purpose), candidate=candidate,
            max_checks=self.settings.max_checks,
            gates=self._gate_keys(number) if gate is not None else (),
            gate_window=gate.window if gate is not None else None,
        ), number, None

    def _checked(self, outcome: CheckOutcome, number: _Number, purpose: str) -> CheckResult:
        _log.emit(logging.INFO, CHECKED, f"to {number.masked} ({purpose}): {outcome.status}",
                  to=number.masked, outcome=outcome.status)
        if outcome.status == policy.APPROVED and self._reporter is not None:
            self._reporter.submit(outcome.message_id)
        return CheckResult(approved=outcome.status == policy.APPROVED, status=outcome.status,
                           checks_left=outcome.checks_left)

    # -- shared pieces ---------------------------------------------------------------------------

    def _observed(self, operation: str, to: object) -> Observation:
        """The SMS service's hooks (traces, metrics) observing one start or check."""
        return Observation(self._sms._driver.hooks, CallInfo(operation, "", mask_number(to), ""))

    def _number(self, to: object) -> _Number:
        try:
            recipient = parse_recipient(to)
        except InvalidRecipient as error:
            if error.code != "MainlandNumber" or not self.settings.mainland_template_code:
                raise
            recipient = parse_recipient(to, mainland=True)
        return _Number(recipient.digits, recipient.country_code)

    def _challenge_key(self, number: _Number, purpose: str) -> str:
        return "c:" + self._keys.subject("challenge", f"{number.digits}\x1f{purpose}")

    def _gate_keys(self, number: _Number) -> tuple[str, str]:
        return (f"g:c:{number.country_code}",
                "g:p:" + self._keys.subject("prefix", number.digits[:-4]))

    def _plan(self, to: object, purpose: object, locale: object, rate_key: object) -> _Plan:
        number = self._number(to)
        _check_name("purpose", purpose)
        if locale is not None:
            _check_name("locale", locale)
        if rate_key is not None and (not isinstance(rate_key, str) or not rate_key):
            raise InvalidRequest("rate_key must be a non-empty string (an IP address, account "
                                 "id...) or None", code="InvalidRateKey")
        assert isinstance(purpose, str) and (locale is None or isinstance(locale, str))
        self._check_country(number)
        return _Plan(self, number, purpose, locale, rate_key)

    def _check_country(self, number: _Number) -> None:
        allowed, blocked = self.settings.allowed_countries, self.settings.blocked_countries
        if allowed is None and not blocked:
            return
        region = phonenumbers.region_code_for_number(phonenumbers.parse("+" + number.digits))
        if region is None:  # not a valid number in any plan: go by its calling code
            region = phonenumbers.region_code_for_country_code(number.country_code)
        if (allowed is not None and region not in allowed) or region in blocked:
            _log.emit(logging.WARNING, REFUSED, f"to {number.masked}: CountryNotAllowed",
                      to=number.masked, code="CountryNotAllowed", outcome="refused",
                      country=region)
            raise InvalidRecipient(
                f"verification codes are not sent to {region} numbers "
                "(allowed_countries / blocked_countries)", code="CountryNotAllowed",
            )


def _as_dict(settings: VerifySettings) -> dict[str, Any]:
    return {f.name: getattr(settings, f.name) for f in fields(settings)}


_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _check_name(what: str, value: object) -> None:
    if not (isinstance(value, str) and _NAME.fullmatch(value)):
        raise InvalidRequest(f"{what} must be 1-64 ASCII letters, digits, '-', '_' or '.'",
                             code=f"Invalid{what.capitalize()}")


class _Plan:
    """One start: the requests to the store, the code, the text and the answer."""

    def __init__(self, service: VerificationService, number: _Number, purpose: str,
                 locale: str | None, rate_key: str | None) -> None:
        self.service = service
        self.number = number
        self.purpose = purpose
        self.locale = locale
        self.rate_key = rate_key
        self.to = "+" + number.digits
        self.key = service._challenge_key(number, purpose)
        self.test_code = service._test_numbers.get(number.digits)
        self.mainland = number.country_code == 86
        self._code = ""

    def start_request(self) -> StartRequest:
        service, number, settings = self.service, self.number, self.service.settings
        keys = service._keys
        challenge_id = new_id()
        if settings.resend == "same":
            seed = new_seed()
            self._code = keys.derived_code(seed, settings.code_length)
        else:
            seed, self._code = "", new_code(settings.code_length)
        mac = bind(keys.candidate(self.purpose, number.digits, self._code), challenge_id)
        prefix_key = keys.subject("prefix", number.digits[:-4])
        hour = 3600
        budgets = [
            (policy.NUMBER_BUDGET, "b:n:" + keys.subject("number", number.digits),
             settings.max_sends, settings.send_window),
            (policy.KEY_BUDGET,
             "b:k:" + keys.subject("key", self.rate_key) if self.rate_key else "",
             settings.key_max_sends if self.rate_key else None, settings.key_window),
            (policy.PREFIX_BUDGET, "b:p:" + prefix_key, settings.prefix_max_sends, hour),
            (policy.COUNTRY_BUDGET, f"b:c:{number.country_code}", settings.country_max_sends,
             hour),
            (policy.GLOBAL_BUDGET, "b:g", settings.global_max_sends, hour),
        ]
        new = Record(id=challenge_id, mac=mac, seed=seed, expires=0.0, resend_at=0.0, sends=0,
                     wrong=0, message_id="", country=str(number.country_code),
                     prefix=prefix_key)
        gate = service._gate
        return StartRequest(
            challenge_key=self.key, new=new, limits=service._limits,
            budgets=tuple(Budget(code, key, limit, window)
                          for code, key, limit, window in budgets if limit is not None),
            gates=service._gate_keys(number) if gate is not None else (),
            gate_rule=gate,
        )

    def reserved(self, outcome: Reservation | Refusal) -> Reservation:
        """The reservation, or the refusal raised as :class:`Throttled` (nothing sent)."""
        if isinstance(outcome, Refusal):
            self._log_refusal(outcome, monitor=False)
            raise Throttled(
                f"{_HINTS[outcome.code]}; nothing was sent, retry after "
                f"{max(1, round(outcome.retry_after))} s",
                code=outcome.code, retry_after=max(0.0, outcome.retry_after),
            )
        for refusal in outcome.monitored:
            self._log_refusal(refusal, monitor=True)
        if outcome.record.seed:
            self._code = self.service._keys.derived_code(outcome.record.seed,
                                                         self.service.settings.code_length)
        return outcome

    def _log_refusal(self, refusal: Refusal, *, monitor: bool) -> None:
        _log.emit(
            logging.WARNING, REFUSED,
            f"to {self.number.masked} ({self.purpose}): {refusal.code}"
            + (" (monitor only, sent anyway)" if monitor else ""),
            to=self.number.masked, code=refusal.code,
            retry_in_ms=round(refusal.retry_after * 1000),
            outcome="monitored" if monitor else "refused",
        )

    def log_withdrawn(self, error: SmsError) -> None:
        _log.emit(logging.WARNING, WITHDRAWN,
                  f"to {self.number.masked} ({self.purpose}) after {type(error).__name__}",
                  to=self.number.masked, code=error.code, outcome="withdrawn",
                  error_class=type(error).__name__)

    def template_args(self) -> dict[str, Any]:
        """SendMessageWithTemplate for +86: the code is a template parameter."""
        settings = self.service.settings
        assert settings.mainland_template_code and settings.mainland_sign_name
        return {"template_code": settings.mainland_template_code,
                "sign_name": settings.mainland_sign_name,
                "params": {settings.mainland_code_param: self._code}}

    def text(self) -> str:
        return self.service._messages.render(self._code, self.purpose, self.locale)

    def challenge(self, reservation: Reservation, receipt: SendReceipt) -> Challenge:
        record = reservation.record
        _log.emit(logging.INFO, STARTED, f"to {self.number.masked} ({self.purpose})",
                  to=self.number.masked, message_id=receipt.message_id, outcome="sent")
        return Challenge(
            id=record.id, to=self.to, purpose=self.purpose, expires_at=_utc(record.expires),
            resend_at=_utc(record.resend_at),
            checks_left=max(0, self.service.settings.max_checks - record.wrong),
            message_id=receipt.message_id or None,
        )

    def test_challenge(self) -> Challenge:
        now = datetime.now(timezone.utc)
        ttl = timedelta(seconds=self.service.settings.ttl)
        return Challenge(id=new_id(), to=self.to, purpose=self.purpose,
                         expires_at=now + ttl, resend_at=now,
                         checks_left=self.service.settings.max_checks, message_id=None)

