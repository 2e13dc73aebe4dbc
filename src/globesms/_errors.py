"""Errors: one root, a shallow tree grouped by what the caller does next, and one mapping table.

::

    SmsError                      unknown provider code: read `code`, contact support
    ├── InvalidRequest            fix the input; nothing was sent
    │   └── InvalidRecipient      fix the phone number
    ├── MessageRejected           fix the sender ID, the content or the destination
    ├── AccountError              fix the Alibaba Cloud account (activation, balance, state)
    ├── AuthError                 fix the keys, the RAM policy or the clock
    ├── ConfigurationError        fix globesms settings or the credential chain
    ├── TransientError            nothing was sent; retrying later can succeed
    │   ├── Throttled             rate limited; honour `retry_after`
    │   ├── ServiceUnavailable    the provider said it is temporarily failing
    │   ├── NetworkError          the request never left this machine
    │   └── StoreUnavailable      the verification store cannot be reached (fails closed)
    └── DeliveryUncertain         the SMS may have gone out; do not blindly resend

Every provider code, HTTP status and transport failure is turned into one of these by
:func:`error_for_code` (provider answers) or :func:`error_for_exception` (anything the SDK raises),
through the tables below. The most specific rule wins: the exact code (with a legacy ``isv.`` /
``isp.`` prefix stripped), then a code family, then the HTTP status, then the root class.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

_CODE_PREFIXES = ("isv.", "isp.")


class SmsError(Exception):
    """Root of every error globesms raises.

    Attributes: ``code`` (the provider's code verbatim, or ours), ``request_id``, ``http_status``,
    ``retryable`` (a later attempt could succeed; stays True for a transient failure after the
    attempts ran out), ``retry_after`` (seconds, from the server or the mapping table),
    ``attempts`` (requests made) and ``hint`` (what to do).
    """

    default_hint: ClassVar[str] = (
        "the provider answered with a code globesms does not know; quote the code and request id "
        "to Alibaba Cloud support"
    )
    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        hint: str | None = None,
        *,
        code: str | None = None,
        request_id: str | None = None,
        http_status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        attempts: int = 0,
    ) -> None:
        self.hint = hint or self.default_hint
        self.code = code
        self.request_id = request_id
        self.http_status = http_status
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after
        self.attempts = attempts
        super().__init__(self.hint)

    def __str__(self) -> str:
        prefix = f"[{self.request_id}] " if self.request_id else ""
        code = f"{self.code}: " if self.code else ""
        return f"{prefix}{code}{self.hint}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, request_id={self.request_id!r}, "
            f"http_status={self.http_status!r}, retryable={self.retryable!r}, "
            f"retry_after={self.retry_after!r}, attempts={self.attempts!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.hint, dict(self.__dict__)))


def _rebuild(cls: type[SmsError], hint: str, state: dict[str, Any]) -> SmsError:
    error = cls(hint)
    error.__dict__.update(state)
    return error


class InvalidRequest(SmsError):
    """The request is wrong; nothing was sent. Fix the input."""

    default_hint = "a request parameter is invalid; fix it before sending again"


class InvalidRecipient(InvalidRequest):
    """The phone number cannot be sent to; nothing was sent."""

    default_hint = "the phone number is not a valid international mobile number"


class MessageRejected(SmsError):
    """The provider refused the sender ID, the content or the destination."""

    default_hint = "the provider refused this message; change the sender ID, text or destination"


class AccountError(SmsError):
    """The Alibaba Cloud account cannot send (not activated, suspended, out of balance)."""

    default_hint = "the Alibaba Cloud account cannot send SMS; check it in the SMS console"


class AuthError(SmsError):
    """The request was not authenticated or not authorised."""

    default_hint = "the request was not authorised; check the AccessKey, RAM policy and clock"


class ConfigurationError(SmsError):
    """globesms or the credential chain is set up wrongly; raised before anything is sent."""

    default_hint = "globesms is not configured correctly"

    def __init__(self, hint: str | None = None, *, key: str | None = None, **kwargs: Any) -> None:
        self.key = key
        super().__init__(hint, **kwargs)

    @classmethod
    def for_setting(cls, key: str, value: object, fix: str) -> ConfigurationError:
        """Build the error for one bad setting, worded as the fix."""
        return cls(f"{key} {fix} (got {value!r})", key=key, code="InvalidSetting")

    def add_source(self, source: str) -> None:
        """Name where the bad value came from (a variable, a file, an argument)."""
        self.hint = f"{self.hint}; set by {source}"
        self.args = (self.hint,)


class TransientError(SmsError):
    """Nothing was sent and a later attempt can succeed."""

    default_hint = "a temporary failure; nothing was sent, try again later"
    default_retryable = True


class Throttled(TransientError):
    """Rate limited by the provider; wait ``retry_after`` seconds when given."""

    default_hint = "rate limited by Alibaba Cloud; slow down and retry after the given delay"


class ServiceUnavailable(TransientError):
    """The provider reported a temporary failure before accepting the message."""

    default_hint = "Alibaba Cloud reported a temporary failure; nothing was sent, retry later"


class NetworkError(TransientError):
    """The request never reached the provider (connect, DNS or TLS handshake failed)."""

    default_hint = "could not reach the endpoint; nothing was sent, check the network and retry"


class StoreUnavailable(TransientError):
    """The verification store could not be reached: nothing was sent, nothing was approved."""

    default_hint = (
        "the verification store cannot be reached; nothing was sent or approved, retry later"
    )


class DeliveryUncertain(SmsError):
    """The request may have reached the provider, so the SMS may have gone out.

    Not retryable: resending may duplicate the SMS. Check delivery (receipts, QueryMessage)
    before sending again.
    """

    default_hint = (
        "the outcome is unknown and the SMS may have been sent; check delivery before resending"
    )


@dataclass(frozen=True)
class Rule:
    """What one provider code or HTTP status means to the caller."""

    error: type[SmsError]
    hint: str | None = None
    retry_after: float | None = None


def _rules(error: type[SmsError], hint: str | None, *codes: str) -> dict[str, Rule]:
    return dict.fromkeys(codes, Rule(error, hint))


#: Exact provider codes (legacy ``isv.`` / ``isp.`` prefixes stripped). ``OK`` is not an error.
CODE_RULES: dict[str, Rule] = {
    # ResponseCode values (HTTP 200 body).
    **_rules(InvalidRecipient, "the number is not a valid international mobile number",
             "MOBILE_NUMBER_ILLEGAL"),
    **_rules(InvalidRecipient, "Chinese mainland numbers cannot be reached with this API",
             "COUNTRY_RESTRICTED"),
    **_rules(InvalidRequest, "more than 1,000 numbers in one batch", "MOBILE_COUNT_OVER_LIMIT"),
    **_rules(InvalidRequest, "a template variable has no value", "CONTENT_MISSING_PARAMETERS"),
    **_rules(InvalidRequest, "a parameter is invalid; check the request fields",
             "INVALID_PARAMETERS", "INVALID_JSON_PARAM"),
    **_rules(InvalidRequest, "a parameter value is too long", "PARAM_LENGTH_LIMIT"),
    **_rules(InvalidRequest, "the query date is invalid", "QUERY_DATE_ILLEGAL"),
    **_rules(MessageRejected, "the sender ID is not approved; use an approved ID exactly",
             "INVALID_SENDERID", "SENDERID_ERROR"),
    **_rules(MessageRejected, "the template or content code is invalid or not approved",
             "SMS_CONTENT_CODE_ILLEGAL"),
    **_rules(MessageRejected, "the signature name is invalid or not approved",
             "SMS_SIGN_NAME_ILLEGAL"),
    **_rules(MessageRejected, "the content is not allowed; rewrite the message",
             "SMS_CONTENT_ILLEGAL", "BLACK_KEY_CONTROL_LIMIT"),
    **_rules(MessageRejected, "stopped by Alibaba's risk control; contact support",
             "SMS_SECURITY_INTERCEPTED"),
    **_rules(MessageRejected, "sending to this country is not supported",
             "NOT_SUPPORTED_COUNTRY"),
    **_rules(AccountError, "the account's API access is blocked; open a support ticket",
             "FORBIDDEN_ACTION"),
    **_rules(AccountError, "international SMS is suspended for this account",
             "OUT_OF_SERVICE"),
    **_rules(AccountError, "SMS is not activated or identity verification is incomplete",
             "ACCOUNT_NOT_EXISTS", "PRODUCT_NOT_SUBSCRIBED", "PRODUCT_UN_SUBSCRIPT"),
    **_rules(AccountError, "the balance or resource plan is exhausted; top up",
             "AMOUNT_NOT_ENOUGH", "BILLING_DEDUCTION_ERROR"),
    **_rules(AccountError, "the account is blocked or abnormal; contact support",
             "ACCOUNT_ILLEGAL", "ACCOUNT_ABNORMAL", "RES_OWNER_ID_UNKNOWN"),
    **_rules(AuthError, "the RAM identity lacks permission for dysms:SendMessageToGlobe",
             "RAM_PERMISSION_DENY", "RAM_CHECK_FAILED"),
    **_rules(ServiceUnavailable, None, "SYSTEM_ERROR", "ONLINE_BILLING_FAILED", "GATEWAY_ERROR"),
    **_rules(TransientError, "the record is not visible yet; query again later",
             "DATA_NOT_EXIST"),
    **_rules(Throttled, None, "QPS_LIMIT_CONTROL"),
    "BUSINESS_LIMIT_CONTROL_MINUTE": Rule(Throttled, "per-minute limit reached", 60.0),
    "BUSINESS_LIMIT_CONTROL_PHONE": Rule(Throttled, "limit for this number reached", 60.0),
    "BUSINESS_LIMIT_HOUR": Rule(Throttled, "per-hour limit reached", 3600.0),
    "BUSINESS_LIMIT_DAY": Rule(Throttled, "per-day limit reached", 86400.0),
    **_rules(SmsError, "the provider reported an unknown error; quote the request id to support",
             "UNKNOWN"),
    # Gateway codes (non-2xx JSON).
    **_rules(Throttled, None, "Throttling", "Throttling.User", "Throttling.Api"),
    **_rules(AuthError, "the signature does not match: check the AccessKey secret",
             "SignatureDoesNotMatch", "IncompleteSignature", "InvalidSignatureMethod"),
    **_rules(AuthError, "the AccessKey ID does not exist or is disabled",
             "InvalidAccessKeyId.NotFound", "InvalidAccessKeyId.Inactive"),
    **_rules(AuthError, "the credential is an STS key but the request carries no security "
             "token; use the token issued with the key", "MissingSecurityToken"),
    **_rules(AuthError, "the STS security token is invalid, expired or belongs to another key; "
             "refresh the STS credential", "InvalidSecurityToken.Expired",
             "InvalidSecurityToken.MismatchWithAccessKey"),
    **_rules(AuthError, "this machine's clock is more than 15 minutes off; sync it (NTP)",
             "InvalidTimeStamp.Expired", "InvalidTimeStamp.Format"),
    **_rules(AuthError, "the RAM identity is not authorised for this action",
             "Forbidden.RAM", "Forbidden.NoPermission", "NoPermission", "Forbidden"),
    **_rules(AccountError, "blocked by Alibaba Cloud risk control; contact support",
             "Forbidden.RiskControl"),
    **_rules(AccountError, "complete real-name verification of the account",
             "Forbidden.UserVerification"),
    # The gateway saw this nonce before: a fresh request gets a fresh nonce, so nothing was sent.
    **_rules(TransientError, "the gateway rejected a reused nonce; a new attempt uses a new one",
             "SignatureNonceUsed"),
    **_rules(InvalidRequest, "a required parameter is missing", "MissingParameter"),
    **_rules(InvalidRequest, "a parameter value is invalid", "InvalidParameter"),
    **_rules(ConfigurationError, "the endpoint does not serve SendMessageToGlobe; check endpoint",
             "InvalidApi.NotFound", "InvalidProduct.NotFound", "UnsupportedHTTPMethod"),
    **_rules(ConfigurationError, "the endpoint requires HTTPS; set protocol to https",
             "InvalidProtocol.NeedSsl"),
    **_rules(DeliveryUncertain, "the provider failed while handling the request; it may have "
             "been sent, check delivery before resending", "InternalError"),
    **_rules(ServiceUnavailable, None, "ServiceUnavailable"),
}

#: Code families, most specific prefix first (``Missing<Name>``, ``Throttling.<x>``, ...).
FAMILY_RULES: tuple[tuple[str, Rule], ...] = tuple(
    sorted(
        {
            "Throttling": Rule(Throttled),
            "Forbidden.": Rule(AuthError, "the RAM identity is not authorised for this action"),
            "InvalidAccessKeyId.": Rule(AuthError, "the AccessKey ID is not usable"),
            "InvalidSecurityToken": Rule(AuthError, "the STS security token is invalid or expired"),
            "InvalidTimeStamp.": Rule(AuthError, "the request time is wrong; sync the clock"),
            "Missing": Rule(InvalidRequest, "a required parameter is missing"),
            "Invalid": Rule(InvalidRequest, "a parameter value is invalid"),
        }.items(),
        key=lambda item: -len(item[0]),
    )
)

#: HTTP statuses, used when the code is unknown or absent.
STATUS_RULES: dict[int, Rule] = {
    401: Rule(AuthError),
    403: Rule(AuthError),
    429: Rule(Throttled),
    500: Rule(DeliveryUncertain),
    502: Rule(DeliveryUncertain),
    503: Rule(ServiceUnavailable),
    504: Rule(DeliveryUncertain),
}


def strip_prefix(code: str) -> str:
    """Drop a legacy ``isv.`` / ``isp.`` prefix."""
    for prefix in _CODE_PREFIXES:
        if code.startswith(prefix):
            return code[len(prefix):]
    return code


def rule_for(code: str | None, http_status: int | None) -> Rule:
    """The most specific rule for a provider code and HTTP status."""
    if code:
        bare = strip_prefix(code)
        rule = CODE_RULES.get(bare)
        if rule is not None:
            return rule
        for prefix, family_rule in FAMILY_RULES:
            if bare.startswith(prefix):
                return family_rule
    if http_status is not None:
        status_rule = STATUS_RULES.get(http_status)
        if status_rule is not None:
            return status_rule
    return Rule(SmsError)


def error_for_code(
    code: str | None,
    *,
    http_status: int | None,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> SmsError:
    """The error for a provider answer: a non-OK ``ResponseCode`` or a gateway error body."""
    rule = rule_for(code, http_status)
    return rule.error(
        rule.hint,
        code=code,
        request_id=request_id,
        http_status=http_status,
        retry_after=retry_after if retry_after is not None else rule.retry_after,
    )


# ---------------------------------------------------------------------------------------------
# Exceptions raised by the SDK and the transports under it.

_REDACT_QUERY = re.compile(r"\?[^\s'\")]*")
_REDACT_DIGITS = re.compile(r"\d{7,}")


class SdkFailure(Exception):
    """A redacted stand-in for the SDK exception behind a globesms error.

    The SDK's own exception texts carry the request URL (phone number and message text) and its
    exception objects carry the signed request, so they are never chained as they are: the
    ``__cause__`` of a mapped error is this summary instead.
    """


def redact(text: str) -> str:
    """Strip query strings and long digit runs (phone numbers) from a diagnostic text."""
    return _REDACT_DIGITS.sub("***", _REDACT_QUERY.sub("?<redacted>", text))


def describe(exc: BaseException) -> SdkFailure:
    """A redacted summary of an SDK exception and its innermost transport cause."""
    names = [f"{type(e).__module__}.{type(e).__qualname__}" for e in _chain(exc)]
    return SdkFailure(redact(" <- ".join(names[:6])))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what it wraps (SDK inner exceptions, urllib3 reasons) and its causes."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for attr in ("inner_exception", "reason", "__cause__", "__context__"):
            nxt = getattr(current, attr, None)
            if isinstance(nxt, BaseException):
                stack.append(nxt)
        stack.extend(arg for arg in current.args if isinstance(arg, BaseException))


def _names(exc: BaseException) -> set[str]:
    return {
        f"{klass.__module__}.{klass.__qualname__}"
        for e in _chain(exc)
        for klass in type(e).__mro__
    }


@dataclass(frozen=True)
class TransportRule:
    """What one transport exception class proves about a request."""

    error: type[SmsError]
    code: str
    hint: str | None = None


_UNCERTAIN_HINT = (
    "no complete answer arrived after the request was sent; the SMS may have gone out, check "
    "delivery before resending"
)
_NO_RESPONSE = TransportRule(DeliveryUncertain, "NoResponse", _UNCERTAIN_HINT)
_CONNECT = TransportRule(NetworkError, "ConnectFailed")
_CERT = TransportRule(
    ConfigurationError, "TlsCertificateUntrusted",
    "the endpoint's TLS certificate is not trusted; set ca_file (GLOBESMS_CA_FILE) to its CA "
    "bundle",
)
_BAD_URL = TransportRule(
    ConfigurationError, "InvalidEndpoint", "the endpoint is not a usable host[:port]; fix endpoint",
)
_REDIRECT = TransportRule(
    ConfigurationError, "UnexpectedRedirect",
    "the endpoint answered with a redirect, which is not followed; set endpoint to the API host "
    "itself",
)

#: Transport exception classes (qualified names: no stack is imported here) and what each
#: proves. Every class in an exception's chain and MRO is looked up; when several match, the
#: error class ranked first in :data:`TRANSPORT_PRECEDENCE` wins.
TRANSPORT_RULES: dict[str, TransportRule] = {
    # The credential chain failed: nothing was signed.
    "alibabacloud_credentials.exceptions.CredentialException": TransportRule(
        ConfigurationError, "NoCredentials", None),
    # A caller's warning filter turned a warning inside the SDK into an error before sending.
    "builtins.Warning": TransportRule(
        ConfigurationError, "WarningAsError",
        "a warning filter turned a warning inside the Alibaba SDK into an error before the "
        "request was sent; nothing was sent, exempt the SDK's modules from that filter",
    ),
    # TLS trust and URL problems are configuration, found before anything was written.
    "ssl.SSLCertVerificationError": _CERT,
    "aiohttp.client_exceptions.ClientConnectorCertificateError": _CERT,
    "aiohttp.client_exceptions.ServerFingerprintMismatch": _CERT,
    "requests.exceptions.InvalidURL": _BAD_URL,
    "requests.exceptions.MissingSchema": _BAD_URL,
    "requests.exceptions.InvalidSchema": _BAD_URL,
    "urllib3.exceptions.LocationValueError": _BAD_URL,
    "aiohttp.client_exceptions.InvalidURL": _BAD_URL,
    "requests.exceptions.TooManyRedirects": _REDIRECT,
    "aiohttp.client_exceptions.TooManyRedirects": _REDIRECT,
    "aiohttp.client_exceptions.RedirectClientError": _REDIRECT,
    # The request may have been written and processed: no complete answer arrived.
    "requests.exceptions.ReadTimeout": _NO_RESPONSE,
    "urllib3.exceptions.ReadTimeoutError": _NO_RESPONSE,
    "urllib3.exceptions.ProtocolError": _NO_RESPONSE,
    "urllib3.exceptions.DecodeError": _NO_RESPONSE,
    "urllib3.exceptions.ResponseError": _NO_RESPONSE,
    "requests.exceptions.ChunkedEncodingError": _NO_RESPONSE,
    "requests.exceptions.ContentDecodingError": _NO_RESPONSE,
    "http.client.HTTPException": _NO_RESPONSE,
    "builtins.ConnectionResetError": _NO_RESPONSE,
    "builtins.ConnectionAbortedError": _NO_RESPONSE,
    "builtins.BrokenPipeError": _NO_RESPONSE,
    "aiohttp.client_exceptions.ServerTimeoutError": _NO_RESPONSE,
    "aiohttp.client_exceptions.ServerDisconnectedError": _NO_RESPONSE,
    "aiohttp.client_exceptions.ClientPayloadError": _NO_RESPONSE,
    "aiohttp.client_exceptions.ClientOSError": _NO_RESPONSE,
    "aiohttp.client_exceptions.ClientResponseError": _NO_RESPONSE,
    # Failed before the request was written: nothing was sent.
    "requests.exceptions.ConnectTimeout": _CONNECT,
    "urllib3.exceptions.ConnectTimeoutError": _CONNECT,  # NewConnectionError, NameResolution
    "urllib3.exceptions.PoolError": _CONNECT,  # empty, full or closed pool
    "requests.exceptions.ProxyError": _CONNECT,
    "urllib3.exceptions.ProxyError": _CONNECT,
    "requests.exceptions.SSLError": _CONNECT,
    "urllib3.exceptions.SSLError": _CONNECT,
    "ssl.SSLError": _CONNECT,
    "socket.gaierror": _CONNECT,
    "builtins.ConnectionRefusedError": _CONNECT,
    "aiohttp.client_exceptions.ConnectionTimeoutError": _CONNECT,
    "aiohttp.client_exceptions.ClientConnectorError": _CONNECT,
    "aiohttp.client_exceptions.ClientSSLError": _CONNECT,
}

#: When an exception chain matches several rules, the first class here wins: a configuration
#: problem explains the rest, and "may have been sent" outranks "not sent".
TRANSPORT_PRECEDENCE: tuple[type[SmsError], ...] = (
    ConfigurationError, DeliveryUncertain, NetworkError,
)


def transport_rule(exc: BaseException) -> TransportRule | None:
    """The winning rule for an exception and everything it wraps, if any matches."""
    best: TransportRule | None = None
    for error in _chain(exc):
        for klass in type(error).__mro__:
            rule = TRANSPORT_RULES.get(f"{klass.__module__}.{klass.__qualname__}")
            if rule is not None:
                if best is None or _rank(rule) < _rank(best):
                    best = rule
                break  # the most derived class of this exception decides for it
    return best


def _rank(rule: TransportRule) -> int:
    for rank, error in enumerate(TRANSPORT_PRECEDENCE):
        if issubclass(rule.error, error):
            return rank
    return len(TRANSPORT_PRECEDENCE)  # pragma: no cover - every rule's class is ranked


def error_for_exception(exc: BaseException, *, http_status: int | None = None) -> SmsError:
    """Map anything the SDK raised to a globesms error (the caller chains a redacted cause).

    ``http_status`` is the status the transport saw, when known, for answers the SDK could not
    parse.
    """
    # Instance attributes only: aiohttp's deprecated ``code`` property would warn (an error
    # under -W error) while we map.
    attributes = getattr(exc, "__dict__", {})
    code = attributes.get("code")
    status = attributes.get("status_code")
    if isinstance(status, int) and isinstance(code, str):
        # An HTTP error answer the SDK parsed (ClientException, ServerException, Throttling).
        request_id = attributes.get("request_id")
        retry_ms = attributes.get("retry_after")
        return error_for_code(
            None if code == "None" else code,
            http_status=status,
            request_id=None if request_id in (None, "None") else str(request_id),
            retry_after=retry_ms / 1000.0 if isinstance(retry_ms, int) and retry_ms > 0 else None,
        )
    if code == "InvalidCredentials":
        return ConfigurationError(NO_CREDENTIALS_HINT, code="NoCredentials")
    rule = transport_rule(exc)
    if rule is not None:
        hint = NO_CREDENTIALS_HINT if rule.code == "NoCredentials" else rule.hint
        return rule.error(hint, code=rule.code, http_status=http_status)
    if http_status is not None and 300 <= http_status < 400:
        return redirect_error(http_status)
    status_rule = STATUS_RULES.get(http_status) if http_status is not None else None
    if status_rule is not None:
        return status_rule.error(code="UnparsableResponse", http_status=http_status)
    if http_status is not None and 400 <= http_status < 500:
        return SmsError(
            f"the endpoint refused the request with HTTP {http_status} and an unreadable body; "
            "check endpoint and protocol",
            code="UnparsableResponse",
            http_status=http_status,
        )
    return DeliveryUncertain(
        "the answer could not be read; the SMS may have gone out, check delivery before resending",
        code="UnparsableResponse",
        http_status=http_status,
    )


def redirect_error(http_status: int) -> ConfigurationError:
    """The endpoint answered with a redirect, which globesms never follows (the request carries the
    number and text, and a replayed signed request is refused anyway)."""
    return ConfigurationError(_REDIRECT.hint, code=_REDIRECT.code, http_status=http_status)


NO_CREDENTIALS_HINT = (
    "no Alibaba Cloud credential found: export ALIBABA_CLOUD_ACCESS_KEY_ID and "
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET before the SmsService is built (or configure a RAM role, "
    "OIDC or a profile); off Alibaba Cloud set ALIBABA_CLOUD_ECS_METADATA_DISABLED=true to skip "
    "the 2 s metadata probe; to try globesms without an account use "
    "`globesms send --sandbox` or globesms.emulator"
)

