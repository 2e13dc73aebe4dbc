"""Verification settings: one frozen dataclass and its loader.

defaults < ``[verify]`` table of the settings file < ``GLOBESMS_VERIFY_*`` variables < arguments.

The secret is not a setting: it comes from the ``secret`` argument or ``GLOBESMS_VERIFY_SECRET``
only (never from a file) and is resolved by :func:`resolve_secret`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import phonenumbers

from .._errors import ConfigurationError
from .._settings import _config_path, _read_toml

ENV_PREFIX = "GLOBESMS_VERIFY_"
SECRET_ENV = "GLOBESMS_VERIFY_SECRET"  # noqa: S105 - a variable name, not a secret
MIN_SECRET_BYTES = 32
RESEND_MODES = ("new", "same")
GATE_MODES = ("enforce", "monitor", "off")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_NONE = {"none", "off", ""}
_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)


def default_store_url(environ: Mapping[str, str]) -> str:
    """``sqlite:///$XDG_STATE_HOME/globesms/verify.sqlite3`` (``~/.local/state`` if unset)."""
    state = environ.get("XDG_STATE_HOME")
    if state:
        base = Path(state)
    else:
        home = environ.get("HOME")
        base = (Path(home) if home else Path.home()) / ".local" / "state"
    return "sqlite:///" + str(base / "globesms" / "verify.sqlite3")


@dataclass(frozen=True, kw_only=True)
class VerifySettings:
    """Every verification option; the defaults are the documented defaults.

    Limits given as ``None`` are switched off. Times are seconds (1 or more).
    """

    store: str | None = None
    code_length: int = 6
    ttl: int = 600
    max_checks: int = 5
    resend: str = "new"
    resend_cooldown: int | None = 30
    cooldown_growth: float = 2.0
    max_sends: int | None = 5
    send_window: int = 600
    key_max_sends: int | None = 30
    key_window: int = 3600
    prefix_max_sends: int | None = 20
    country_max_sends: int | None = 500
    global_max_sends: int | None = 5000
    allowed_countries: tuple[str, ...] | None = None
    blocked_countries: tuple[str, ...] = ()
    conversion_gate: str = "enforce"
    conversion_window: int = 3600
    conversion_min_starts: int = 30
    conversion_min_ratio: float = 0.2
    conversion_block: int = 900
    conversion_block_max: int = 14400
    test_numbers: Mapping[str, str] = field(default_factory=dict)
    app_name: str = "verification"
    templates: Mapping[str, str] = field(default_factory=dict)
    webotp_domain: str | None = None
    android_app_hash: str | None = None
    max_segments: int = 1
    mainland_template_code: str | None = None
    mainland_sign_name: str | None = None
    mainland_code_param: str = "code"
    report_conversions: bool = True
    conversion_queue: int = 1000

    def __post_init__(self) -> None:
        _check_types(self)
        if not 4 <= self.code_length <= 10:
            raise _bad("code_length", self.code_length, "must be 4-10 digits")
        for name in ("ttl", "send_window", "key_window", "conversion_window",
                     "conversion_block", "conversion_block_max"):
            if getattr(self, name) < 1:
                raise _bad(name, getattr(self, name), "must be a whole number of seconds >= 1")
        for name in ("max_checks", "max_segments", "conversion_min_starts", "conversion_queue"):
            if getattr(self, name) < 1:
                raise _bad(name, getattr(self, name), "must be >= 1")
        for name in ("resend_cooldown", "max_sends", "key_max_sends", "prefix_max_sends",
                     "country_max_sends", "global_max_sends"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise _bad(name, value, "must be >= 1, or None (off)")
        if not (self.cooldown_growth >= 1 and math.isfinite(self.cooldown_growth)):
            raise _bad("cooldown_growth", self.cooldown_growth, "must be >= 1 (1: no growth)")
        if not 0 < self.conversion_min_ratio <= 1:
            raise _bad("conversion_min_ratio", self.conversion_min_ratio, "must be > 0 and <= 1")
        if self.resend not in RESEND_MODES:
            raise _bad("resend", self.resend, "must be 'new' (replace the code) or 'same'")
        if self.conversion_gate not in GATE_MODES:
            raise _bad("conversion_gate", self.conversion_gate, "must be enforce, monitor or off")
        for name in ("allowed_countries", "blocked_countries"):
            codes = getattr(self, name)
            if codes is None:
                continue
            upper = tuple(code.upper() for code in codes)
            unknown = [code for code in upper if code not in _REGIONS]
            if unknown:
                raise _bad(name, codes, f"must be ISO 3166 alpha-2 codes ({unknown[0]} is not)")
            object.__setattr__(self, name, upper)
        _check_test_numbers(self.test_numbers, self.code_length)
        if self.android_app_hash is not None and len(self.android_app_hash) != 11:
            raise _bad("android_app_hash", self.android_app_hash, "must be 11 characters")
        if self.webotp_domain is not None and (
            not self.webotp_domain or any(ch.isspace() or ch in "/@#" for ch in self.webotp_domain)
        ):
            raise _bad("webotp_domain", self.webotp_domain, "must be a bare host like example.com")
        if (self.mainland_template_code is None) != (self.mainland_sign_name is None):
            raise _bad("mainland_template_code", self.mainland_template_code,
                       "and mainland_sign_name must be set together")


def _check_test_numbers(numbers: Mapping[str, str], length: int) -> None:
    for number, code in numbers.items():
        digits = "".join(ch for ch in number if ch.isdigit())
        if not 8 <= len(digits) <= 15:
            raise _bad("test_numbers", "<number>", "keys must be international numbers")
        if not (isinstance(code, str) and code.isascii() and code.isdigit()
                and len(code) == length):
            raise _bad("test_numbers", "<code>", f"codes must be {length} ASCII digits")


_FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in fields(VerifySettings)}
_INTS = {"code_length", "ttl", "max_checks", "resend_cooldown", "max_sends", "send_window",
         "key_max_sends", "key_window", "prefix_max_sends", "country_max_sends",
         "global_max_sends", "conversion_window", "conversion_min_starts", "conversion_block",
         "conversion_block_max", "max_segments", "conversion_queue"}
_FLOATS = {"cooldown_growth", "conversion_min_ratio"}
_BOOLS = {"report_conversions"}
_LISTS = {"allowed_countries", "blocked_countries"}
_MAPS = {"test_numbers", "templates"}
#: Settings that may be None (off / not set).
_OPTIONAL = {name for name, f in _FIELDS.items() if f.default is None} | {
    "resend_cooldown", "max_sends", "key_max_sends", "prefix_max_sends", "country_max_sends",
    "global_max_sends",
}
#: Variables that are not settings but belong to the GLOBESMS_VERIFY_ family.
_OTHER_VARS = {SECRET_ENV}


def _bad(key: str, value: object, fix: str) -> ConfigurationError:
    return ConfigurationError.for_setting(key, value, fix)


def _check_types(settings: VerifySettings) -> None:
    for name in _FIELDS:
        value = getattr(settings, name)
        if value is None and name in _OPTIONAL:
            continue
        if name in _FLOATS:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok:
                object.__setattr__(settings, name, float(value))
        elif name in _INTS:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif name in _BOOLS:
            ok = isinstance(value, bool)
        elif name in _LISTS:
            ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
            if ok:
                object.__setattr__(settings, name, tuple(value))
        elif name in _MAPS:
            ok = isinstance(value, Mapping) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            )
            if ok:
                object.__setattr__(settings, name, dict(value))
        else:
            ok = isinstance(value, str)
        if not ok:
            raise _bad(name, value, f"must be {_kind_name(name)}")


def _kind_name(name: str) -> str:
    if name in _INTS:
        return "a whole number"
    if name in _FLOATS:
        return "a number"
    if name in _BOOLS:
        return "true or false"
    if name in _LISTS:
        return "a list of strings"
    if name in _MAPS:
        return "a table of strings"
    return "a string"


def _closest(name: str, known: list[str]) -> str:
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.0)
    return match[0] if match else known[0]


def _known(key: str, where: str) -> None:
    if key == "secret":
        raise ConfigurationError(
            f"secret must not be in {where}: pass secret= or set {SECRET_ENV}",
            key=key, code="UnknownSetting",
        )
    if key not in _FIELDS:
        raise ConfigurationError(
            f"{key} is not a verification setting: remove it from {where} "
            f"(did you mean {_closest(key, sorted(_FIELDS))}?)",
            key=key, code="UnknownSetting",
        )


def _parse_env(key: str, raw: str, var: str) -> Any:
    text = raw.strip()
    if key in _OPTIONAL and text.lower() in _NONE:
        return None
    try:
        if key in _BOOLS:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError(text)
        if key in _INTS:
            return int(text)
        if key in _FLOATS:
            return float(text)
    except ValueError:
        raise ConfigurationError.for_setting(
            key, raw, f"must be {_kind_name(key)} in {var}"
        ) from None
    if key in _LISTS:
        return tuple(part.strip() for part in text.split(",") if part.strip())
    if key in _MAPS:
        pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ConfigurationError.for_setting(
                key, "<hidden>", f"must be name=value pairs separated by commas in {var}"
            )
        return {name.strip(): value.strip() for name, value in pairs}
    return text


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> VerifySettings:
    """Build :class:`VerifySettings` from defaults, ``[verify]``, ``GLOBESMS_VERIFY_*``, overrides.

    The file is found as :meth:`globesms.Settings.load` finds it (``path``, else
    ``$GLOBESMS_CONFIG``, else ``config/globesms.toml`` when it exists). Unknown keys and unknown
    ``GLOBESMS_VERIFY_*`` variables are refused with the closest known name.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    file_path = _config_path(path, env)
    if file_path is not None:
        table = _read_toml(file_path).get("verify", {})
        if not isinstance(table, dict):
            raise _bad("[verify]", "<value>", f"must be a table in {file_path}")
        for key, value in table.items():
            _known(key, f"[verify] in {file_path}")
            values[key] = tuple(value) if key in _LISTS and isinstance(value, list) else value
            sources[key] = f"{key} in [verify] of {file_path}"
    known_vars = sorted([ENV_PREFIX + name.upper() for name in _FIELDS] + list(_OTHER_VARS))
    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX) or var in _OTHER_VARS:
            continue
        key = var[len(ENV_PREFIX):].lower()
        if key not in _FIELDS:
            raise ConfigurationError(
                f"{var} is not a verification setting: unset it "
                f"(did you mean {_closest(var, known_vars)}?)",
                key=key, code="UnknownSetting",
            )
        if raw.strip() == "" and key not in _OPTIONAL:
            continue
        values[key] = _parse_env(key, raw, var)
        # values are quoted back in errors: never a map (codes) or a store URL (a password)
        sources[key] = var if key in _MAPS or key == "store" else f"{var}={raw}"
    for key, value in overrides.items():
        _known(key, "the arguments")
        values[key] = value
        sources[key] = f"{key}= argument"
    if values.get("store") is None:
        values["store"] = default_store_url(env)
    try:
        return VerifySettings(**values)
    except ConfigurationError as exc:
        source = sources.get(exc.key or "")
        if source:
            exc.add_source(source)
        raise


def resolve_secret(secret: str | bytes | None, environ: Mapping[str, str]) -> bytes:
    """The HMAC key: the argument, else ``GLOBESMS_VERIFY_SECRET``; at least 32 bytes."""
    source = "the secret= argument"
    if secret is None:
        secret = environ.get(SECRET_ENV)
        source = SECRET_ENV
    if secret is None or secret == "":
        raise ConfigurationError(
            f"a verification secret is required: set {SECRET_ENV} (at least {MIN_SECRET_BYTES} "
            "bytes, e.g. 64 hex characters from `python -c 'import secrets; "
            "print(secrets.token_hex(32))'`) or pass secret=",
            key="secret", code="MissingSecret",
        )
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"the verification secret from {source} has {len(key)} bytes; it needs at least "
            f"{MIN_SECRET_BYTES} (e.g. 64 hex characters)",
            key="secret", code="ShortSecret",
        )
    return key
