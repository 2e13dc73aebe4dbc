"""Settings: defaults, precedence, parsing and the errors a misconfiguration gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from globesms import ConfigurationError, Settings
from globesms._settings import REGION_ENDPOINTS, tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_the_documented_ones() -> None:
    """Defaults: ap-southeast-1, https, 3 s / 10 s / 15 s, 3 attempts, 1,600 characters."""
    settings = Settings()
    assert settings.region == "ap-southeast-1"
    assert settings.endpoint == "dysmsapi.ap-southeast-1.aliyuncs.com"
    assert settings.protocol == "https"
    assert (settings.connect_timeout, settings.read_timeout, settings.deadline) == (3, 10, 15)
    assert settings.max_attempts == 3
    assert settings.sender is None and settings.message_type is None
    assert settings.retry_uncertain is False
    assert settings.max_message_length == 1600


def test_precedence_file_env_overrides(tmp_path: Path) -> None:
    """defaults < TOML file < GLOBESMS_* environment < explicit overrides."""
    config = tmp_path / "sms.toml"
    config.write_text('region = "eu-central-1"\nread_timeout = 4\nmax_attempts = 5\n'
                      'sender = "FromFile"\n')
    env = {"GLOBESMS_READ_TIMEOUT": "6.5", "GLOBESMS_SENDER": "FromEnv"}
    settings = Settings.load(config, environ=env, sender="FromArg")
    assert settings.region == "eu-central-1"
    assert settings.endpoint == REGION_ENDPOINTS["eu-central-1"]
    assert settings.max_attempts == 5
    assert settings.read_timeout == 6.5
    assert settings.sender == "FromArg"


def test_config_file_from_variable_and_working_directory(tmp_path: Path) -> None:
    """$GLOBESMS_CONFIG names the file; otherwise config/globesms.toml in the cwd is used."""
    named = tmp_path / "named.toml"
    named.write_text("max_attempts = 7\n")
    assert Settings.load(environ={"GLOBESMS_CONFIG": str(named)}).max_attempts == 7
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "globesms.toml").write_text("max_attempts = 2\n")
    assert Settings.load(environ={}).max_attempts == 2  # the cwd is tmp_path (autouse fixture)


@pytest.mark.parametrize("raw", ["1", "true", "YES", "On"])
def test_booleans_accept_common_spellings(raw: str) -> None:
    """Booleans accept 1/0, true/false, yes/no, on/off in any case."""
    assert Settings.load(environ={"GLOBESMS_RETRY_UNCERTAIN": raw}).retry_uncertain is True
    off = {"1": "0", "true": "false", "YES": "no", "On": "OFF"}[raw]
    assert Settings.load(environ={"GLOBESMS_RETRY_UNCERTAIN": off}).retry_uncertain is False


def test_every_field_has_an_environment_variable() -> None:
    """Each setting can be set with GLOBESMS_<NAME>."""
    env = {
        "GLOBESMS_REGION": "us-east-1", "GLOBESMS_ENDPOINT": "127.0.0.1:9",
        "GLOBESMS_PROTOCOL": "http", "GLOBESMS_CONNECT_TIMEOUT": "1",
        "GLOBESMS_READ_TIMEOUT": "2", "GLOBESMS_MAX_ATTEMPTS": "4", "GLOBESMS_DEADLINE": "9",
        "GLOBESMS_SENDER": "Acme", "GLOBESMS_MESSAGE_TYPE": "OTP",
        "GLOBESMS_RETRY_UNCERTAIN": "yes", "GLOBESMS_MAX_MESSAGE_LENGTH": "500",
        "GLOBESMS_QUIET_SDK_LOGS": "off", "GLOBESMS_MAX_RATE": "50.5",
        "GLOBESMS_MAX_IN_FLIGHT": "32",
    }
    settings = Settings.load(environ=env)
    assert (settings.region, settings.endpoint, settings.protocol) == (
        "us-east-1", "127.0.0.1:9", "http")
    assert (settings.connect_timeout, settings.read_timeout, settings.deadline) == (1, 2, 9)
    assert (settings.max_attempts, settings.sender, settings.message_type) == (4, "Acme", "OTP")
    assert settings.retry_uncertain is True and settings.quiet_sdk_logs is False
    assert settings.max_message_length == 500
    assert (settings.max_rate, settings.max_in_flight) == (50.5, 32)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"GLOBESMS_READ_TIMEOUT": "-1"}, ["read_timeout", "-1", "> 0", "GLOBESMS_READ_TIMEOUT"]),
        ({"GLOBESMS_CONNECT_TIMEOUT": "0"}, ["connect_timeout", "> 0"]),
        ({"GLOBESMS_DEADLINE": "soon"}, ["deadline", "soon", "GLOBESMS_DEADLINE"]),
        ({"GLOBESMS_MAX_ATTEMPTS": "2.5"}, ["max_attempts", "2.5", "integer"]),
        ({"GLOBESMS_RETRY_UNCERTAIN": "maybe"}, ["retry_uncertain", "maybe", "true/false"]),
        ({"GLOBESMS_REGION": "mars-1"}, ["region", "mars-1", "ap-southeast-1", "endpoint"]),
        ({"GLOBESMS_PROTOCOL": "ftp"}, ["protocol", "ftp", "https"]),
        ({"GLOBESMS_MESSAGE_TYPE": "SPAM"}, ["message_type", "SPAM", "OTP"]),
        ({"GLOBESMS_SENDER": "no spaces"}, ["sender", "letters and digits"]),
        ({"GLOBESMS_ENDPOINT": "https://x.example"}, ["endpoint", "host[:port]"]),
        ({"GLOBESMS_CA_FILE": "/nonexistent/ca.pem"}, ["ca_file", "/nonexistent/ca.pem"]),
        ({"GLOBESMS_MAX_RATE": "0"}, ["max_rate", "> 0", "GLOBESMS_MAX_RATE"]),
        ({"GLOBESMS_MAX_IN_FLIGHT": "0"}, ["max_in_flight", ">= 1"]),
    ],
)
def test_bad_values_name_key_value_and_fix(env: dict[str, str], words: list[str]) -> None:
    """A bad value raises ConfigurationError naming the key, the value and the fix."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.load(environ=env)
    for word in words:
        assert word in str(caught.value)


def test_unknown_key_in_file_is_refused(tmp_path: Path) -> None:
    """An unknown key in the TOML file is an error naming the key and the file."""
    config = tmp_path / "sms.toml"
    config.write_text("read_timout = 3\n")
    with pytest.raises(ConfigurationError, match="read_timout") as caught:
        Settings.load(config, environ={})
    assert str(config) in str(caught.value)


def test_wrong_type_in_file_is_refused(tmp_path: Path) -> None:
    """A wrong TOML type names the key, the value and where it came from."""
    config = tmp_path / "sms.toml"
    config.write_text('max_attempts = "three"\n')
    with pytest.raises(ConfigurationError, match="max_attempts") as caught:
        Settings.load(config, environ={})
    assert "three" in str(caught.value) and str(config) in str(caught.value)


def test_unknown_override_is_refused() -> None:
    """A misspelt keyword to Settings.load is refused, not ignored."""
    with pytest.raises(ConfigurationError, match="retries"):
        Settings.load(environ={}, retries=5)


def test_explicit_endpoint_allows_unknown_region() -> None:
    """A region without a known endpoint is fine when the endpoint is given."""
    assert Settings(region="xx-test-1", endpoint="127.0.0.1:1").endpoint == "127.0.0.1:1"


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after they are built."""
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.region = "us-east-1"  # type: ignore[misc]


def test_shipped_config_lists_every_key_with_its_default() -> None:
    """config/globesms.toml has every key; uncommented ones equal the defaults."""
    text = (ROOT / "config" / "globesms.toml").read_text()
    defaults = Settings()
    for name in Settings.__dataclass_fields__:
        assert f"{name} =" in text, f"{name} missing from config/globesms.toml"
    for name, value in tomllib.loads(text).items():
        assert getattr(defaults, name) == value, name
