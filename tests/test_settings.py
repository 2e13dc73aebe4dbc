"""Settings: defaults, precedence, parsing and the errors a misconfiguration gets."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from globesms import ConfigurationError, Settings
from globesms._settings import REGION_ENDPOINTS, tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_the_documented_ones() -> None:
    """Defaults: ap-southeast-1, https, 3 s / 10 s / 15 s, 3 attempts, 1,600 characters."""
    settings = Settings()
    assert settings.region == "ap-southeast-1"
    assert settings.endpoint is None
    assert settings.resolved_endpoint == "dysmsapi.ap-southeast-1.aliyuncs.com"
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
    assert settings.resolved_endpoint == REGION_ENDPOINTS["eu-central-1"]
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
    """config/globesms.toml has every key; uncommented ones equal the defaults; its [verify]
    table (the verification loader's) holds only verification settings at their defaults."""
    from globesms._verify._config import load_settings

    text = (ROOT / "config" / "globesms.toml").read_text()
    defaults = Settings()
    for name in Settings.__dataclass_fields__:
        assert f"{name} =" in text, f"{name} missing from config/globesms.toml"
    data = tomllib.loads(text)
    verify = data.pop("verify")
    for name, value in data.items():
        assert getattr(defaults, name) == value, name
    verify_defaults = load_settings(ROOT / "config" / "globesms.toml", environ={})
    for name, value in verify.items():
        assert getattr(verify_defaults, name) == value, name


def test_replacing_the_region_moves_the_derived_endpoint() -> None:
    """dataclasses.replace(settings, region=...) moves the derived endpoint with the region."""
    from globesms._client import build_client
    from globesms._credentials import static_credential

    moved = dataclasses.replace(Settings(), region="eu-central-1")
    assert moved.endpoint is None
    assert moved.resolved_endpoint == REGION_ENDPOINTS["eu-central-1"]
    client = build_client(moved, static_credential("id", "secret"))
    assert client._endpoint == REGION_ENDPOINTS["eu-central-1"]
    pinned = dataclasses.replace(Settings(endpoint="127.0.0.1:9"), region="us-east-1")
    assert pinned.resolved_endpoint == "127.0.0.1:9"
    with pytest.raises(ConfigurationError, match="mars-1"):
        dataclasses.replace(Settings(), region="mars-1")


def test_misspelt_variable_names_the_closest_known_one() -> None:
    """GLOBESMS_ENDPONT is a ConfigurationError naming it and GLOBESMS_ENDPOINT, not ignored."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.load(environ={"GLOBESMS_ENDPONT": "127.0.0.1:9"})
    assert caught.value.code == "UnknownSetting"
    assert "GLOBESMS_ENDPONT is not a globesms variable" in caught.value.hint
    assert "did you mean GLOBESMS_ENDPOINT?" in caught.value.hint


def test_misspelt_variable_stops_a_default_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """SmsService() with a misspelt GLOBESMS_* variable in os.environ fails when it is built."""
    from globesms import SmsService

    monkeypatch.setenv("GLOBESMS_READTIMEOUT", "5")
    with pytest.raises(ConfigurationError, match="GLOBESMS_READ_TIMEOUT"):
        SmsService()


def test_variables_of_other_loaders_are_not_refused() -> None:
    """GLOBESMS_CONFIG and the VERIFY_, TEST_, EMULATOR_, REQUIRE_ prefixes are left alone."""
    env = {
        "GLOBESMS_VERIFY_CODE_LENGTH": "6", "GLOBESMS_TEST_REDIS_URL": "redis://127.0.0.1",
        "GLOBESMS_EMULATOR_PORT": "8080", "GLOBESMS_REQUIRE_REDIS": "1",
        "GLOBESMS_SENDER": "Acme", "OTHER_VARIABLE": "x",
    }
    assert Settings.load(environ=env).sender == "Acme"


def test_unknown_key_in_file_names_the_closest_known_one(tmp_path: Path) -> None:
    """A misspelt TOML key is refused with the closest known key, as a variable is."""
    config = tmp_path / "sms.toml"
    config.write_text("read_timout = 3\n")
    with pytest.raises(ConfigurationError, match=r"did you mean read_timeout\?"):
        Settings.load(config, environ={})


def test_verify_table_is_left_to_its_own_loader(tmp_path: Path) -> None:
    """A [verify] table in the config file is skipped; any other table is refused."""
    config = tmp_path / "sms.toml"
    config.write_text('sender = "Acme"\n\n[verify]\ncode_length = 6\n')
    assert Settings.load(config, environ={}).sender == "Acme"
    config.write_text('sender = "Acme"\n\n[verfy]\ncode_length = 6\n')
    with pytest.raises(ConfigurationError, match="verfy"):
        Settings.load(config, environ={})


def _unreadable_configs(tmp_path: Path) -> dict[str, Path]:
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    nul = tmp_path / "nul.toml"
    nul.write_bytes(b"\x00\x01\x02\x03")
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('sender = "Caf\u00e9"\n'.encode("latin-1"))
    bad = tmp_path / "bad.toml"
    bad.write_text("sender = \n")
    return {
        "directory": tmp_path, "missing": tmp_path / "nope.toml", "binary": binary,
        "nul-bytes": nul, "not-utf8": latin1, "bad-toml": bad,
    }


@pytest.mark.parametrize(
    ("case", "words"),
    [("directory", "is a directory"), ("missing", "does not exist"),
     ("binary", "not UTF-8"), ("nul-bytes", "not valid TOML"), ("not-utf8", "not UTF-8"),
     ("bad-toml", "not valid TOML")],
)
def test_unreadable_config_file_is_configuration_error(
    tmp_path: Path, case: str, words: str
) -> None:
    """A directory, missing, binary, non-UTF-8 or non-TOML file is one ConfigurationError."""
    path = _unreadable_configs(tmp_path)[case]
    with pytest.raises(ConfigurationError, match=words) as caught:
        Settings.load(path, environ={})
    assert str(path) in caught.value.hint
    with pytest.raises(ConfigurationError, match=words):
        Settings.load(environ={"GLOBESMS_CONFIG": str(path)})


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_config_file_without_read_permission_is_configuration_error(tmp_path: Path) -> None:
    """A config file the process may not read is a ConfigurationError naming the fix."""
    config = tmp_path / "locked.toml"
    config.write_text('sender = "Acme"\n')
    config.chmod(0)
    with pytest.raises(ConfigurationError, match="cannot be read"):
        Settings.load(config, environ={})


def test_config_path_under_a_file_is_configuration_error(tmp_path: Path) -> None:
    """A config path that cannot be opened (its parent is a file) is one ConfigurationError."""
    parent = tmp_path / "file.toml"
    parent.write_text("")
    with pytest.raises(ConfigurationError, match="cannot be read"):
        Settings.load(parent / "child.toml", environ={})


@pytest.mark.parametrize(
    ("path", "environ"),
    [(b"/tmp/x.toml", {}), (3, {}), ("bad\x00name.toml", {}), (None, ["GLOBESMS_SENDER"]),
     (None, {"GLOBESMS_SENDER": 5}), (None, {"GLOBESMS_CONFIG": 5})],
    ids=["bytes-path", "int-path", "nul-in-path", "environ-list", "int-value", "int-config"],
)
def test_load_arguments_of_the_wrong_type_are_configuration_errors(
    path: object, environ: object
) -> None:
    """Settings.load arguments of the wrong type raise ConfigurationError, not TypeError."""
    with pytest.raises(ConfigurationError):
        Settings.load(path, environ=environ)  # type: ignore[arg-type]


def test_derived_endpoint_gets_the_guarded_session() -> None:
    """A derived endpoint is what the client is built for, and its SDK session is guarded."""
    from darabonba.core import DaraCore

    from globesms._client import _GuardAdapter, build_client, client_endpoint, guard_client
    from globesms._credentials import static_credential

    settings = Settings(region="us-east-1", max_in_flight=7)
    client = build_client(settings, static_credential("id", "secret"))
    assert client_endpoint(client) == ("https", REGION_ENDPOINTS["us-east-1"])
    key = f"https://{REGION_ENDPOINTS['us-east-1']}:80:pool=7"
    try:
        guard_client(client)
        session = DaraCore._sessions[key]
        assert isinstance(session.get_adapter(f"https://{REGION_ENDPOINTS['us-east-1']}/"),
                          _GuardAdapter)
    finally:
        DaraCore._sessions.pop(key, None)
