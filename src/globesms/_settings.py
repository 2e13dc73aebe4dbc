"""Settings: one frozen dataclass and the one loader that owns the precedence.

defaults < TOML file < ``GLOBESMS_*`` environment < explicit overrides.

Nothing else in the package reads ``os.environ`` for our settings; keys and secrets never live here
(they come from the Alibaba Cloud credential chain).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

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

    def __post_init__(self) -> None:
        _check_types(self)
        if self.endpoint is None:
            derived = REGION_ENDPOINTS.get(self.region)
            if derived is None:
                known = ", ".join(sorted(REGION_ENDPOINTS))
                fix = f"must be one of {known}, or endpoint must be set too"
                raise _bad("region", self.region, fix)
            object.__setattr__(self, "endpoint", derived)
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

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Build settings from defaults, a TOML file, ``GLOBESMS_*`` variables and ``overrides``.

        The file is ``path``, else ``$GLOBESMS_CONFIG``, else ``config/globesms.toml`` under the
        working directory when it exists. ``environ`` defaults to ``os.environ``.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}

        file_path = _config_path(path, env)
        if file_path is not None:
            for key, value in _read_toml(file_path).items():
                _known(key, str(file_path))
                values[key] = value
                sources[key] = f"{key} in {file_path}"

        for key in _FIELDS:
            var = f"GLOBESMS_{key.upper()}"
            raw = env.get(var)
            if raw is not None and raw.strip() != "":
                values[key] = _parse_env(key, raw, var)
                sources[key] = f"{var}={_shown(key, raw)}"

        for key, value in overrides.items():
            _known(key, "Settings.load()")
            values[key] = value
            sources[key] = f"{key}={_shown(key, value)!r} passed to Settings.load()"

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
    scheme = url.partition("://")[0].lower()
    if scheme not in ("redis", "rediss") or not url.partition("://")[2].strip():
        raise _bad("rate_store", _url_without_secret(url),
                   "must be a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379/0")


def _known(key: str, where: str) -> None:
    if key not in _FIELDS:
        known = ", ".join(sorted(_FIELDS))
        raise ConfigurationError(
            f"{key} is not a setting: remove it from {where}; known keys: {known}",
            key=key,
            code="UnknownSetting",
        )


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
        return Path(path)
    from_env = env.get(CONFIG_ENV)
    if from_env:
        return Path(from_env)
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigurationError.for_setting(
            "config file", str(path), f"does not exist: create it or unset {CONFIG_ENV}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError.for_setting(
            "config file", str(path), f"is not valid TOML ({exc})"
        ) from None
    return data
