"""Verification settings, the SMS text and the pure policy, without a store or a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from globesms import ConfigurationError, MemoryStore, Settings, SmsService, VerificationService
from globesms._credentials import static_credential
from globesms._verify import _policy as policy
from globesms._verify._config import load_settings
from globesms._verify._message import Messages
from globesms._verify._policy import GateRule, GateState, Limits, Record

SECRET = "x" * 32


@pytest.fixture
def sms() -> SmsService:
    """A facade that is never asked to send in these tests."""
    settings = Settings.load(environ={}, endpoint="127.0.0.1:9", protocol="http")
    return SmsService(settings, credential=static_credential("id", "secret-unused"))


def build(sms: SmsService, **options: object) -> VerificationService:
    return VerificationService(sms, store=MemoryStore(), secret=SECRET, environ={}, **options)


# -- the secret -----------------------------------------------------------------------------------

def test_missing_secret_is_a_configuration_error(sms: SmsService) -> None:
    """Without secret= or GLOBESMS_VERIFY_SECRET the service is not built."""
    with pytest.raises(ConfigurationError, match="GLOBESMS_VERIFY_SECRET") as missing:
        VerificationService(sms, store=MemoryStore(), environ={})
    assert missing.value.code == "MissingSecret"


def test_short_secret_is_refused_and_never_echoed(sms: SmsService) -> None:
    """A secret under 32 UTF-8 bytes is refused; the message names the source, not the value."""
    short = "s3cr3t-value-31-bytes-long-abcd"
    with pytest.raises(ConfigurationError) as refused:
        VerificationService(sms, store=MemoryStore(),
                            environ={"GLOBESMS_VERIFY_SECRET": short})
    assert refused.value.code == "ShortSecret" and "GLOBESMS_VERIFY_SECRET" in str(refused.value)
    assert short not in str(refused.value) and short not in repr(refused.value)
    service = VerificationService(sms, store=MemoryStore(),
                                  environ={"GLOBESMS_VERIFY_SECRET": "é" * 16})  # 32 bytes
    assert "é" not in repr(service)


def test_secret_in_the_file_is_refused(tmp_path: Path) -> None:
    """A secret written into [verify] is refused: secrets never come from a file."""
    config = tmp_path / "globesms.toml"
    config.write_text('[verify]\nsecret = "' + "a" * 64 + '"\n')
    with pytest.raises(ConfigurationError, match="must not be in"):
        load_settings(config, {})


# -- loading --------------------------------------------------------------------------------------

def test_precedence_file_then_environment_then_arguments(tmp_path: Path) -> None:
    """[verify] < GLOBESMS_VERIFY_* < arguments, found through GLOBESMS_CONFIG like Settings."""
    config = tmp_path / "globesms.toml"
    config.write_text('[verify]\nttl = 300\nmax_checks = 3\ncode_length = 8\n'
                      'blocked_countries = ["ru"]\n[verify.templates]\n'
                      'login = "Login code {code}"\n')
    env = {"GLOBESMS_CONFIG": str(config), "GLOBESMS_VERIFY_MAX_CHECKS": "4",
           "GLOBESMS_VERIFY_MAX_SENDS": "off", "GLOBESMS_VERIFY_TEST_NUMBERS":
           "+44 7700 900999=12345678"}
    settings = load_settings(environ=env, code_length=8)
    assert (settings.ttl, settings.max_checks, settings.max_sends) == (300, 4, None)
    assert settings.blocked_countries == ("RU",)
    assert settings.templates == {"login": "Login code {code}"}
    assert settings.test_numbers == {"+44 7700 900999": "12345678"}
    assert load_settings(environ=env, ttl=60).ttl == 60


def test_unknown_variable_names_the_closest_setting() -> None:
    """A misspelt GLOBESMS_VERIFY_* variable is refused with the closest known name."""
    with pytest.raises(ConfigurationError, match="GLOBESMS_VERIFY_MAX_CHECKS"):
        load_settings(environ={"GLOBESMS_VERIFY_MAX_CHEKS": "3"})
    with pytest.raises(ConfigurationError, match="did you mean resend_cooldown"):
        load_settings(environ={}, resend_cooldwn=3)


def test_bad_values_name_the_fix_and_the_source() -> None:
    """Out-of-range values are refused when built, naming the variable they came from."""
    with pytest.raises(ConfigurationError, match=r"4-10 digits.*GLOBESMS_VERIFY_CODE_LENGTH=3"):
        load_settings(environ={"GLOBESMS_VERIFY_CODE_LENGTH": "3"})
    for options in ({"ttl": 0}, {"resend": "again"}, {"allowed_countries": ["XX"]},
                    {"android_app_hash": "short"}, {"conversion_gate": "maybe"},
                    {"mainland_template_code": "SMS_1"}, {"test_numbers": {"+447700900123": "1"}}):
        with pytest.raises(ConfigurationError):
            load_settings(environ={}, **options)
    assert load_settings(environ={}, ttl=1, resend_cooldown=1).ttl == 1  # 1 s is allowed


def test_default_store_is_sqlite_under_the_state_directory() -> None:
    """The default store URL is sqlite:/// under $XDG_STATE_HOME (or ~/.local/state)."""
    assert load_settings(environ={"XDG_STATE_HOME": "/srv/state"}).store == (
        "sqlite:////srv/state/globesms/verify.sqlite3")
    assert load_settings(environ={"HOME": "/home/u"}).store == (
        "sqlite:////home/u/.local/state/globesms/verify.sqlite3")


def test_store_url_chooses_the_store(sms: SmsService, tmp_path: Path) -> None:
    """GLOBESMS_VERIFY_STORE picks memory, SQLite or Redis (password masked); others refused."""
    env = {"GLOBESMS_VERIFY_SECRET": SECRET}
    memory = VerificationService(sms, environ={**env, "GLOBESMS_VERIFY_STORE": "memory://"})
    assert repr(memory.store) == "MemoryStore()"
    path = tmp_path / "v.sqlite3"
    lite = VerificationService(sms, environ={**env, "GLOBESMS_VERIFY_STORE": f"sqlite:///{path}"})
    assert str(path) in repr(lite.store)
    remote = VerificationService(sms, environ={
        **env, "GLOBESMS_VERIFY_STORE": "redis://:pa55word@127.0.0.1:1/0"})
    assert "pa55word" not in repr(remote.store) and "***" in repr(remote.store)
    with pytest.raises(ConfigurationError, match="memory://"):
        VerificationService(sms, environ={**env, "GLOBESMS_VERIFY_STORE": "mysql://db"})


# -- the SMS text ---------------------------------------------------------------------------------

def test_template_per_purpose_and_locale_with_webotp_and_app_hash() -> None:
    """Templates fall back purpose.locale > purpose > default.locale > default; WebOTP is last."""
    settings = load_settings(environ={}, app_name="Acme", ttl=300, webotp_domain="acme.example",
                             android_app_hash="FA+9qCX9VSu",
                             templates={"login.fr": "Code {app}: {code} ({minutes} min)"})
    messages = Messages(settings)
    french = messages.render("123456", "login", "fr")
    assert french == "Code Acme: 123456 (5 min)\n\nFA+9qCX9VSu\n@acme.example #123456"
    english = messages.render("123456", "login", "de")
    assert english.startswith("123456 is your Acme code. It expires in 5 min.")
    assert english.splitlines()[-1] == "@acme.example #123456"


def test_template_that_cannot_fit_is_refused_when_built(sms: SmsService) -> None:
    """A template over max_segments (with the longest code and links) fails at build time."""
    long_text = "Twój kod to {code}. " + "Nie udostępniaj go nikomu, nawet nam. " * 2  # UCS-2
    with pytest.raises(ConfigurationError, match="segments"):
        build(sms, templates={"default": long_text}, code_length=10)
    build(sms, templates={"default": long_text}, code_length=10, max_segments=3)
    for bad in ("no code here", "{code} {user}", "{code"):
        with pytest.raises(ConfigurationError):
            build(sms, templates={"signup": bad})


# -- the pure policy ------------------------------------------------------------------------------

LIMITS = Limits(ttl=600, max_checks=3, cooldown=30, growth=2.0, same=False)


def record(**changes: object) -> Record:
    base = {"id": "c1", "mac": "m", "seed": "", "expires": 1000.0, "resend_at": 500.0,
            "sends": 1, "wrong": 0, "message_id": "", "country": "44", "prefix": "p"}
    return Record(**{**base, **changes})  # type: ignore[arg-type]


def test_check_verdicts() -> None:
    """Checks: unknown, expired, locked, approved (consumed) and wrong (counted)."""
    assert policy.check_verdict(None, 0, True, 3).status == "not_found"
    assert policy.check_verdict(record(), 1000, True, 3).status == "expired"
    assert policy.check_verdict(record(wrong=3), 10, True, 3).status == "locked"
    assert policy.check_verdict(record(), 10, True, 3).action == "consume"
    wrong = policy.check_verdict(record(wrong=1), 10, False, 3)
    assert (wrong.status, wrong.checks_left, wrong.action) == ("wrong_code", 1, "wrong")


def test_start_refusals_and_cooldown_growth() -> None:
    """Locked and cooling challenges refuse a start; the cooldown doubles up to the TTL."""
    assert policy.start_refusal(record(wrong=3), 100, LIMITS) == policy.Refusal(
        "ChallengeLocked", 900)
    assert policy.start_refusal(record(), 400, LIMITS) == policy.Refusal("ResendCooldown", 100)
    assert policy.start_refusal(record(), 600, LIMITS) is None
    assert [policy.cooldown_after(n, LIMITS) for n in (1, 2, 3, 6, 9)] == [
        30, 60, 120, 600, 600]
    kept = policy.reserved(record(wrong=2, sends=2), record(id="c2"), 700, LIMITS)
    assert (kept.id, kept.wrong, kept.sends, kept.resend_at) == ("c2", 2, 3, 820)


def test_budget_windows_are_clock_aligned() -> None:
    """A full window refuses until its end; below the limit nothing is refused."""
    assert policy.budget_refusal("NumberBudget", 4, 5, 600, 1234) is None
    assert policy.budget_refusal("NumberBudget", 5, 5, 600, 1234) == policy.Refusal(
        "NumberBudget", 566)


def test_conversion_gate_blocks_and_escalates() -> None:
    """Low conversion over min_starts blocks for `block`, doubling per strike up to the cap."""
    rule = GateRule(window=3600, min_starts=10, min_ratio=0.3, block=900, block_max=3000,
                    monitor=False)
    now = 3600 * 10 + 1800  # half-way through window 10
    low = GateState(starts={10: 8, 9: 8}, approvals={10: 1}, until=0, strikes=0)
    assert policy.gate_decision(low, now, rule) == (policy.Refusal("LowConversion", 900), True)
    fine = GateState(starts={10: 8, 9: 8}, approvals={10: 4}, until=0, strikes=0)
    assert policy.gate_decision(fine, now, rule) == (None, False)
    few = GateState(starts={10: 5, 9: 8}, approvals={}, until=0, strikes=0)
    assert policy.gate_decision(few, now, rule) == (None, False)  # 5 + 8 * 0.5 = 9 < 10
    repeat = GateState(starts={10: 12}, approvals={}, until=0, strikes=2)
    assert policy.gate_decision(repeat, now, rule)[0] == policy.Refusal("LowConversion", 3000)
    blocked = GateState(starts={}, approvals={}, until=now + 60, strikes=1)
    assert policy.gate_decision(blocked, now, rule) == (policy.Refusal("LowConversion", 60),
                                                        False)


def test_one_file_for_both_loaders(tmp_path: Path) -> None:
    """Settings.load skips [verify] and GLOBESMS_VERIFY_*; the verification loader reads them."""
    config = tmp_path / "globesms.toml"
    config.write_text('endpoint = "127.0.0.1:9"\nprotocol = "http"\n\n[verify]\nttl = 120\n')
    env = {"GLOBESMS_CONFIG": str(config), "GLOBESMS_VERIFY_SECRET": SECRET,
           "GLOBESMS_VERIFY_STORE": "memory://", "GLOBESMS_VERIFY_MAX_CHECKS": "2"}
    sms = SmsService(Settings.load(environ=env), credential=static_credential("id", "s-unused"))
    service = VerificationService(sms, environ=env)
    assert (service.settings.ttl, service.settings.max_checks) == (120, 2)
    assert sms.settings.endpoint == "127.0.0.1:9"
