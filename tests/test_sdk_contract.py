"""The SDK-internals contract: every private internal globesms relies on, checked by name.

Each internal in ``globesms._internals.INTERNALS`` is probed against the installed SDK with a real
client, so an upgrade that removes one fails a test that names it.
"""

from __future__ import annotations

import ast
import logging
import re
import sys
from collections.abc import Iterator
from importlib.metadata import distribution, distributions, packages_distributions
from pathlib import Path
from typing import Any

import pytest

from globesms import Settings
from globesms._client import _GuardAdapter, build_client, guard_client
from globesms._credentials import static_credential
from globesms._internals import (
    INTERNAL_MISSING,
    INTERNALS,
    PROBE_ENDPOINT,
    Internal,
    check,
    missing_internals,
    probe_client,
    reset_warnings,
    session_key,
    warn_once,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def client() -> Any:
    """A real SDK client for the probe endpoint, built by globesms's own build_client."""
    return probe_client()


@pytest.mark.parametrize("internal", INTERNALS, ids=[i.name for i in INTERNALS])
def test_internal_is_present(internal: Internal, client: Any) -> None:
    """The installed SDK still has this internal and it behaves as globesms relies on."""
    assert check(internal, client), internal.message()


def test_nothing_is_missing_from_the_installed_sdk() -> None:
    """missing_internals(), as doctor runs it, finds the installed SDK complete."""
    assert missing_internals() == []


def test_a_client_without_endpoint_is_named(client: Any) -> None:
    """A real client that lost ``_endpoint`` is reported by name (the check can fail)."""
    broken = probe_client()
    del broken._endpoint
    messages = missing_internals(broken)
    assert next(i for i in INTERNALS if i.name == "Client._endpoint").message() in messages
    # The SDK itself reads _endpoint for the host, so its session key is lost with it.
    assert len(messages) == 2 and "session key" in messages[0]


def test_session_key_probe_fails_when_the_sdk_uses_another_key() -> None:
    """The key probe passes only when the SDK files its session under the expected key."""
    other = build_client(
        Settings(endpoint="another-host.invalid", protocol="http", max_in_flight=7),
        static_credential("globesms-probe", "globesms-probe"),
    )
    key_probe = next(i for i in INTERNALS if "session key" in i.name)
    from darabonba.core import DaraCore

    try:
        assert not check(key_probe, other)
    finally:
        DaraCore._sessions.pop(session_key("http", "another-host.invalid", 7), None)


def test_an_object_that_is_no_sdk_client_fails_every_client_probe() -> None:
    """Each client-dependent probe fails on an object that is no SDK client, naming itself."""
    messages = missing_internals(object())
    for name in ("Client._endpoint", "Client._user_agent", "Client._credential", "session key"):
        assert any(name in message for message in messages), name


def test_the_guard_uses_the_contract_session_key() -> None:
    """guard_client wraps the adapter of the session filed under the contract's key format."""
    from darabonba.core import DaraCore

    settings = Settings(endpoint="tap-check.invalid", protocol="http", max_in_flight=3)
    key = session_key("http", "tap-check.invalid", 3)
    try:
        guard_client(build_client(settings, static_credential("id", "secret")))
        session = DaraCore._sessions[key]
        assert isinstance(session.get_adapter("http://tap-check.invalid/"), _GuardAdapter)
    finally:
        DaraCore._sessions.pop(key, None)


def test_probes_leave_no_session_behind() -> None:
    """Running every probe leaves no session for the probe endpoint in the SDK's cache."""
    from darabonba.core import DaraCore

    missing_internals()
    assert not [key for key in DaraCore._sessions if PROBE_ENDPOINT in key]


@pytest.fixture
def fresh_warnings() -> Iterator[None]:
    """warn_once's memory is empty before and after the test."""
    reset_warnings()
    yield
    reset_warnings()


def test_warn_once_logs_once_per_mechanism(
    caplog: pytest.LogCaptureFixture, fresh_warnings: None
) -> None:
    """warn_once logs one WARNING per mechanism on the globesms logger, naming the internal."""
    caplog.set_level(logging.WARNING, logger="globesms")
    warn_once("redirect guard", "darabonba.core.DaraCore._sessions")
    warn_once("redirect guard", "darabonba.core.DaraCore._sessions")
    warn_once("answer tap", "darabonba.core.DaraCore.get_adapter")
    records = [r for r in caplog.records if getattr(r, "event", None) == INTERNAL_MISSING]
    assert [(r.levelno, r.name, r.mechanism, r.internal) for r in records] == [  # type: ignore[attr-defined]
        (logging.WARNING, "globesms", "redirect guard", "darabonba.core.DaraCore._sessions"),
        (logging.WARNING, "globesms", "answer tap", "darabonba.core.DaraCore.get_adapter"),
    ]


# -- declared dependencies ---------------------------------------------------------------------

_NOT_RUNTIME = {"globesms", "pytest"}  # pytest: only the pytest plugin, which pytest itself loads
_NEWER_STDLIB = {"tomllib"}  # imported under a version check (3.11+)
_NO_UPPER_BOUND = {"certifi"}  # a CA bundle: capping it would keep stale roots


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_distributions() -> set[str]:
    found: set[str] = set()
    mapping = packages_distributions()
    for path in (ROOT / "src" / "globesms").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in _NEWER_STDLIB:
                    continue
                candidates = mapping.get(top) or [
                    dist.metadata["Name"] for dist in distributions()
                ]  # Python 3.10 does not map namespace packages
                found.update(_normal(d) for d in _owners(name, candidates))
    return found - _NOT_RUNTIME


def _owners(module: str, candidates: list[str]) -> list[str]:
    """The distribution that ships ``module`` (namespace packages have several candidates)."""
    if len(candidates) == 1:
        return candidates
    parts = module.split(".")
    while len(parts) > 1:  # the longest prefix that one of them ships (a name may be a class)
        path = "/".join(parts)
        owners = [
            name for name in candidates
            if any(str(f) == f"{path}.py" or str(f).startswith(f"{path}/")
                   for f in distribution(name).files or ())
        ]
        if owners:
            return owners
        parts.pop()
    return candidates if len(candidates) < 10 else [module.split(".")[0]]


def _declared() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra, requirements in project.get("optional-dependencies", {}).items():
        if extra != "test":
            lines.extend(requirements)
    declared: dict[str, str] = {}
    for line in lines:
        match = re.match(r"\s*([A-Za-z0-9_.-]+)", line)
        assert match, line
        declared[_normal(match.group(1))] = line
    return declared


def test_every_directly_imported_package_is_declared() -> None:
    """Each third-party package src/ imports is a declared dependency (or in a feature extra)."""
    declared = _declared()
    undeclared = sorted(_imported_distributions() - set(declared))
    assert not undeclared, f"import without a pyproject dependency: {undeclared}"


def test_every_runtime_dependency_has_both_bounds() -> None:
    """Each runtime dependency has a lower bound and, but for the CA bundle, an upper bound."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for line in project["dependencies"]:
        name = _normal(re.match(r"\s*([A-Za-z0-9_.-]+)", line).group(1))  # type: ignore[union-attr]
        assert ">=" in line, f"{name} has no lower bound"
        if name not in _NO_UPPER_BOUND:
            assert "<" in line.split(";")[0], f"{name} has no upper bound"
