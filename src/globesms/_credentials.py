"""Credentials: the Alibaba Cloud default chain, checked once and failing fast.

The SDK asks its credential for keys on every request and, when the chain finds nothing, pays the
ECS metadata probe (about 2 s) every time and prints tracebacks. :class:`CredentialGate` asks
once, bounded in time, remembers a failure for a while, and turns it into a one-line
:class:`ConfigurationError` before anything is sent.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from ._errors import NO_CREDENTIALS_HINT, ConfigurationError, describe

#: How long the first lookup may take before globesms gives up (the SDK's own ECS probe alone
#: can take 2 s off-cloud).
LOOKUP_TIMEOUT = 2.0
#: How long a failed lookup is remembered before the chain is asked again.
FAILURE_TTL = 30.0


#: What a missing credential says: how to provide one, how to skip the ECS metadata probe, and
#: how to try globesms without an account.


class CredentialSource(Protocol):
    """What the SDK needs from a credential: ``alibabacloud_credentials.client.Client`` fits."""

    def get_credential(self) -> Any: ...


_OVERRIDE: list[CredentialSource] = []


@contextlib.contextmanager
def override_default_credential(credential: CredentialSource) -> Iterator[None]:
    """Make :func:`default_credential` return ``credential`` inside the block (test fixtures).

    The credential library reads its environment once, at import, so a test cannot switch keys by
    setting variables; this hook is how the pytest fixture points a plain ``SmsService()`` at the
    emulator's keys.
    """
    _OVERRIDE.append(credential)
    try:
        yield
    finally:
        _OVERRIDE.remove(credential)


def default_credential() -> CredentialSource:
    """The ``alibabacloud_credentials`` default chain (environment, OIDC, profiles, ECS, URI),
    built from the environment as it is now, not as it was when the library was imported."""
    if _OVERRIDE:
        return _OVERRIDE[-1]
    from alibabacloud_credentials.client import Client as CredentialClient

    refresh_credential_environment()
    client: CredentialSource = CredentialClient()
    return client


#: The variables the credential library's environment snapshot was last taken from.
_ENV_SEEN: dict[str, str] | None = None
_ENV_LOCK = threading.Lock()
_ENV_NAMES = ("HOME", "HOMEPATH", "HOMEDRIVE")


def refresh_credential_environment() -> None:
    """Let the credential library see variables set after it was imported.

    ``alibabacloud_credentials`` copies its ``ALIBABA_CLOUD_*`` variables into module attributes
    of ``alibabacloud_credentials.utils.auth_util`` once, at import, and its providers read those
    copies. An application that loads a ``.env`` file after ``import globesms`` (python-dotenv)
    would get ``NoCredentials``. When the variables differ from the last snapshot, the module is
    re-executed (``importlib.reload``), so the library's own chain reads today's environment with
    its own rules. Nothing happens when the environment has not changed.
    """
    global _ENV_SEEN
    current = {
        name: value for name, value in os.environ.items()
        if name.startswith("ALIBABA_CLOUD_") or name in _ENV_NAMES
    }
    if current == _ENV_SEEN:
        return
    with _ENV_LOCK:
        if current == _ENV_SEEN:
            return
        try:
            from alibabacloud_credentials.utils import auth_util
        except ImportError:  # a library that no longer snapshots its environment
            _ENV_SEEN = current
            return
        importlib.reload(auth_util)
        _ENV_SEEN = current


class CredentialGate:
    """Checks once that a credential can be found, and fails fast while it cannot."""

    def __init__(
        self,
        credential: CredentialSource,
        *,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = LOOKUP_TIMEOUT,
        failure_ttl: float = FAILURE_TTL,
    ) -> None:
        self._credential = credential
        self._clock = clock
        self._timeout = timeout
        self._failure_ttl = failure_ttl
        self._lock = threading.Lock()
        self._ok = False
        self._failed_at: float | None = None
        self._failure: ConfigurationError | None = None
        self._probe: threading.Thread | None = None
        self._done = threading.Event()

    @property
    def ready(self) -> bool:
        """Whether a credential was already found (no lookup needed)."""
        return self._ok

    def ensure(self) -> None:
        """Return when a credential was found; raise :class:`ConfigurationError` otherwise."""
        if self._ok:
            return
        with self._lock:
            if self._ok:
                return
            if (
                self._failure is not None
                and self._failed_at is not None
                and self._clock() - self._failed_at < self._failure_ttl
            ):
                raise self._copy_failure()
            # A probe is in flight until it sets _done (its thread may still be ending after
            # that: is_alive() would race with a new lookup).
            if self._probe is None or self._done.is_set():
                self._done.clear()
                context = contextvars.copy_context()
                self._probe = threading.Thread(
                    target=context.run, args=(self._lookup,), name="globesms-credentials",
                    daemon=True,
                )
                self._probe.start()
            finished = self._done.wait(self._timeout)
            if self._ok:
                return
            if not finished:
                self._failure = ConfigurationError(
                    f"no Alibaba Cloud credential found within {self._timeout:g} s "
                    "(the metadata service did not answer): " + _FIX,
                    code="NoCredentials",
                )
            self._failed_at = self._clock()
            raise self._copy_failure()

    def _lookup(self) -> None:
        try:
            self._credential.get_credential()
        except Exception as exc:  # any failure of the chain means "no usable credential"
            failure = ConfigurationError(NO_CREDENTIALS_HINT, code="NoCredentials")
            failure.__cause__ = describe(exc)
            self._failure = failure
        else:
            self._ok = True
            self._failure = None
        finally:
            self._done.set()

    def _copy_failure(self) -> ConfigurationError:
        failure = self._failure or ConfigurationError(NO_CREDENTIALS_HINT, code="NoCredentials")
        copy = ConfigurationError(failure.hint, code=failure.code)
        copy.__cause__ = failure.__cause__
        return copy


_FIX = NO_CREDENTIALS_HINT.split(": ", 1)[1]


def static_credential(access_key_id: str, access_key_secret: str) -> CredentialSource:
    """A fixed AccessKey pair (for the sandbox and tests; production uses the default chain)."""
    from alibabacloud_credentials.client import Client as CredentialClient
    from alibabacloud_credentials.models import Config

    client: CredentialSource = CredentialClient(
        Config(type="access_key", access_key_id=access_key_id,
               access_key_secret=access_key_secret)
    )
    return client
