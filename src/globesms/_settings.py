"""Settings: one frozen dataclass and the one loader that owns the precedence.

defaults < TOML file < ``GLOBESMS_*`` environment < explicit overrides.

Nothing else in the package reads ``os.environ`` for our settings; keys and secrets never live here
(they come from the Alibaba Cloud credential chain).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ._errors import ConfigurationError
from ._validate import MESSAGE_TYPES, check_sender

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

#: Regions with a known SendMessageToGlobe endpoint (from the SDK's own endpoint map).
REGION_ENDPOINTS: dict[str, str] = {
    "ap-southeast-1": "dysmsapi.ap-southeast-1.aliyuncs.com",
    "ap-southeast-5": "dysmsapi.ap-southeast-5.aliyuncs.com",
    "cn-beijing": "dysmsapi-proxy.cn-beijing.aliyuncs.com",
    "cn-hongkong": "dysmsapi-xman.cn-hongkong.aliyuncs.com",
    "eu-central-1": "dysmsapi.eu-central-1.aliyuncs.com",
    "us-east-1": "dysmsapi.us-east-1.aliyuncs.com",
}

CONFIG_ENV = "GLOBESMS_CONFIG"
DEFAULT_CONFIG_PATH = Path("config") / "globesms.toml"
ENV_PREFIX = "GLOBESMS_"
#: ``GLOBESMS_*`` variables read by other loaders (verification settings, test suites, the
#: emulator, CI switches): never an unknown setting here.
RESERVED_ENV_PREFIXES = (
    "GLOBESMS_VERIFY_", "GLOBESMS_TEST_", "GLOBESMS_EMULATOR_", "GLOBESMS_REQUIRE_",
)
#: Tables of the TOML file that other loaders read (``_config_path``/``_read_toml``).
RESERVED_TABLES = ("verify",)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything globesms needs to know that is not a secret.

    Build it with :meth:`Settings.load` to get files and environment applied, or directly for
    tests. Invalid values raise :class:`ConfigurationError` when the object is built.
    """

    region: str = "ap-southeast-1"
    endpoint: str | None = None
    protocol: str = "https"
    ca_file: str | None = None
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    max_attempts: int = 3
    deadline: float = 15.0
    sender: str | None = None
    message_type: str | None = None
    retry_uncertain: bool = False
    max_message_length: int = 1600
    quiet_sdk_logs: bool = True
    max_rate: float | None = None
    max_in_flight: int = 256
    rate_store: str | None = field(default=None, repr=False)
    rate_instances: int = 1
    otel: bool = True

    def __post_init__(self) -> None:
        _check_types(self)
        if self.endpoint is None:
            if self.region not in REGION_ENDPOINTS:
                known = ", ".join(sorted(REGION_ENDPOINTS))
                fix = f"must be one of {known}, or endpoint must be set too"
                raise _bad("region", self.region, fix)
        elif not self.endpoint.strip() or "://" in self.endpoint or "/" in self.endpoint:
            raise _bad("endpoint", self.endpoint, "must be host[:port] only, e.g. 127.0.0.1:8080")
        if self.protocol not in ("https", "http"):
            raise _bad("protocol", self.protocol, "must be https (or http for a local emulator)")
        if self.ca_file is not None and not Path(self.ca_file).is_file():
            raise _bad("ca_file", self.ca_file, "must name an existing PEM CA bundle file")
        for name in ("connect_timeout", "read_timeout", "deadline"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise _bad(name, value, "must be a number of seconds > 0")
        if self.max_attempts < 1:
            raise _bad("max_attempts", self.max_attempts, "must be >= 1 (1 disables retries)")
        if self.max_rate is not None and not (self.max_rate > 0 and math.isfinite(self.max_rate)):
            raise _bad("max_rate", self.max_rate, "must be a number of sends per second > 0")
        if self.max_in_flight < 1:
            raise _bad("max_in_flight", self.max_in_flight, "must be >= 1")
        if self.max_message_length < 1:
            raise _bad("max_message_length", self.max_message_length, "must be >= 1")
        if self.message_type is not None and self.message_type not in MESSAGE_TYPES:
            raise _bad("message_type", self.message_type, "must be OTP, NOTIFY or MKT")
        if self.sender is not None:
            problem = check_sender(self.sender)
            if problem:
                raise _bad("sender", self.sender, problem)
        _check_rate_store(self.rate_store, self.rate_instances)

    @property
    def resolved_endpoint(self) -> str:
        """The ``host[:port]`` requests go to: ``endpoint`` when set, else the region's.

        Derived on every read and never stored, so ``dataclasses.replace(settings,
        region=...)`` moves the endpoint with the region (``endpoint`` stays as given: None).
        """
        return self.endpoint if self.endpoint is not None else REGION_ENDPOINTS[self.region]

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        sources_into: dict[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Build settings from defaults, a TOML file, ``GLOBESMS_*`` variables and ``overrides``.

        The file is ``path``, else ``$GLOBESMS_CONFIG``, else ``config/globesms.toml`` under the
        working directory when it exists; its ``[verify]`` table belongs to another loader and
        is skipped. ``environ`` defaults to ``os.environ``. An unknown key or ``GLOBESMS_*``
        variable is a :class:`ConfigurationError` naming the closest known name.
        ``sources_into``, when given, receives where each value not left at its default came
        from (``globesms doctor`` prints it).
        """
        env = os.environ if environ is None else environ
        if not isinstance(env, Mapping):
            raise ConfigurationError(
                f"environ must be a mapping of variable names to strings, not "
                f"{type(env).__name__}", code="InvalidSetting",
            )
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}

        file_path = _config_path(path, env)
        if file_path is not None:
            for key, value in _read_toml(file_path).items():
                if key in RESERVED_TABLES and isinstance(value, dict):
                    continue
                _known(key, str(file_path))
                values[key] = value
                sources[key] = f"{key} in {file_path}"

        _check_env_names(env)
        for key in _FIELDS:
            var = f"{ENV_PREFIX}{key.upper()}"
            raw = env.get(var)
            if raw is not None and (not isinstance(raw, str) or raw.strip() != ""):
                values[key] = _parse_env(key, raw, var)
                sources[key] = f"{var}={_shown(key, raw)}"

        for key, value in overrides.items():
            _known(key, "Settings.load()")
            values[key] = value
            sources[key] = f"{key}={_shown(key, value)!r} passed to Settings.load()"
        if sources_into is not None:
            sources_into.update(sources)

        try:
            return cls(**values)
        except ConfigurationError as exc:
            source = sources.get(exc.key or "")
            if source:
                exc.add_source(source)
            raise


_FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in fields(Settings)}
_KINDS: dict[str, type] = {
    "connect_timeout": float,
    "read_timeout": float,
    "deadline": float,
    "max_attempts": int,
    "max_message_length": int,
    "max_in_flight": int,
    "max_rate": float,
    "retry_uncertain": bool,
    "quiet_sdk_logs": bool,
    "rate_instances": int,
    "otel": bool,
}
#: Settings whose value may hold a password: shown without it in errors and sources.
_SECRET_URLS = ("rate_store",)


def _bad(key: str, value: object, fix: str) -> ConfigurationError:
    return ConfigurationError.for_setting(key, value, fix)


def _shown(key: str, value: Any) -> Any:
    """``value`` as it may appear in messages: a store URL without its user and password."""
    if key in _SECRET_URLS and isinstance(value, str):
        return _url_without_secret(value)
    return value


def _url_without_secret(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<not a URL>"
    host = rest.rpartition("@")[2]
    return f"{scheme}://{host}"


def _check_rate_store(url: str | None, instances: int) -> None:
    if instances < 1:
        raise _bad("rate_instances", instances, "must be >= 1 (the processes sharing max_rate)")
    if url is None:
        return
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    scheme, where = "", None
    if parts is not None:
        scheme = parts.scheme.lower()
        where = parts.path if scheme == "unix" else parts.hostname
    if scheme not in ("redis", "rediss", "unix") or not where:
        raise _bad("rate_store", _url_without_secret(url),
                   "must be a redis:// or rediss:// URL (or unix:///path/redis.sock), e.g. "
                   "redis://127.0.0.1:6379/0")


def _known(key: str, where: str) -> None:
    if key not in _FIELDS:
        known = ", ".join(sorted(_FIELDS))
        raise ConfigurationError(
            f"{key} is not a setting{_did_you_mean(key, _FIELDS)}: remove it from {where}; "
            f"known keys: {known}",
            key=key,
            code="UnknownSetting",
        )


def _check_env_names(env: Mapping[str, str]) -> None:
    """Refuse a ``GLOBESMS_*`` variable that no loader reads (a misspelling is never ignored)."""
    known = {f"{ENV_PREFIX}{key.upper()}" for key in _FIELDS} | {CONFIG_ENV}
    for var in env:
        if (
            isinstance(var, str)
            and var.startswith(ENV_PREFIX)
            and var not in known
            and not var.startswith(RESERVED_ENV_PREFIXES)
        ):
            raise ConfigurationError(
                f"{var} is not a globesms variable{_did_you_mean(var, known)}: rename or unset "
                f"it; known: {', '.join(sorted(known))}",
                key=var,
                code="UnknownSetting",
            )


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _check_types(settings: Settings) -> None:
    for name in _FIELDS:
        value = getattr(settings, name)
        kind = _KINDS.get(name, str)
        if value is None and _FIELDS[name].default is None:
            continue
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok:
                object.__setattr__(settings, name, float(value))
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind)
        if not ok:
            raise _bad(name, value, f"must be {'a number' if kind is float else kind.__name__}")


def _parse_env(key: str, raw: str, var: str) -> Any:
    kind = _KINDS.get(key, str)
    if not isinstance(raw, str):
        raise ConfigurationError.for_setting(key, raw, f"must be a string in {var}")
    text = raw.strip()
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        expected = {bool: "1/0, true/false, yes/no or on/off", int: "an integer"}
        raise ConfigurationError.for_setting(
            key, raw, f"must be {expected.get(kind, 'a number of seconds')} in {var}"
        ) from None
    return text


def _config_path(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise ConfigurationError.for_setting(
                "config file", path, "must be a path (str or os.PathLike)"
            )
        return Path(path)
    from_env = env.get(CONFIG_ENV)
    if from_env:
        if not isinstance(from_env, str):
            raise ConfigurationError.for_setting(CONFIG_ENV, from_env, "must be a string")
        return Path(from_env)
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    """The table in the TOML file at ``path``; any failure is one :class:`ConfigurationError`."""
    try:
        text = path.read_bytes().decode("utf-8")
        data: dict[str, Any] = tomllib.loads(text)
    except FileNotFoundError:
        fix = f"does not exist: create it, or point --config / {CONFIG_ENV} at a file"
    except IsADirectoryError:
        fix = "is a directory: name a TOML file"
    except OSError as exc:
        fix = f"cannot be read ({exc.strerror or type(exc).__name__}): check its permissions"
    except UnicodeDecodeError as exc:
        fix = f"is not UTF-8 text (byte {exc.start}): a TOML file must be UTF-8"
    except tomllib.TOMLDecodeError as exc:
        fix = f"is not valid TOML ({exc})"
    except ValueError:  # a path the OS cannot take, e.g. with a NUL character
        fix = "is not a usable file name"
    else:
        return data
    raise ConfigurationError.for_setting("config file", str(path), fix)
