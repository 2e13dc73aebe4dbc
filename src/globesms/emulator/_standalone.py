"""``globesms emulator``: run the emulator in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any, TextIO

from ._emulator import Emulator, is_loopback
from ._operations import DEFAULT_MAX_RECORDS

TOKEN_ENV = "GLOBESMS_EMULATOR_TOKEN"  # noqa: S105 - the variable's name


def parse_keys(specs: Sequence[str]) -> dict[str, str]:
    """``["ID:SECRET", ...]`` as a dict; raise ValueError on an entry without both parts."""
    keys: dict[str, str] = {}
    for spec in specs:
        key_id, sep, secret = spec.partition(":")
        if not sep or not key_id or not secret:
            raise ValueError("--key takes ID:SECRET (both non-empty)")
        keys[key_id] = secret
    return keys


def serve(
    *,
    port: int = 0,
    tls: bool = False,
    keys: Sequence[str] = (),
    out: TextIO | None = None,
    stop: threading.Event | None = None,
    answer_delay: float = 0.0,
    host: str = "127.0.0.1",
    env: bool = False,
    admin_token: str | None = None,
    no_auth: bool = False,
    max_records: int = DEFAULT_MAX_RECORDS,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run an emulator until SIGINT/SIGTERM (or ``stop``); return the exit code.

    Prints, one ``name: value`` line each and flushed: ``endpoint``,
    ``protocol``, ``ca_file`` (with ``tls``), then ``access_key_id`` for each
    accepted key; without ``keys`` it makes a throwaway pair and also prints
    its ``access_key_secret``; then ``inbox`` (the page's URL) and, when one
    was generated, ``admin_token``. The last line is ``ready``. With ``env``
    the same facts are printed as a shell file instead: ``export`` lines that
    point a service at the emulator (first key), the rest as ``#`` comments.
    Nothing else is ever printed: requests carry phone numbers and message text.

    Bound to a non-loopback ``host``, the inbox needs ``admin_token`` (else
    ``$GLOBESMS_EMULATOR_TOKEN``, else a generated one, printed) unless ``no_auth``.
    """
    stream = out if out is not None else sys.stdout
    variables = os.environ if environ is None else environ
    try:
        access_keys = parse_keys(keys)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    generated = not access_keys
    if generated:
        access_keys = {"emulator-" + secrets.token_hex(4): secrets.token_urlsafe(24)}
    token = admin_token or variables.get(TOKEN_ENV) or None
    made_token = False
    if no_auth:
        token = None
    elif token is None and not is_loopback(host.strip("[]")):
        token, made_token = secrets.token_urlsafe(18), True
    done = stop if stop is not None else threading.Event()
    previous: list[tuple[signal.Signals, Any]] = []

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous.append((signum, signal.signal(signum, _stop)))
    try:
        try:
            emulator = Emulator(
                access_keys=access_keys, tls=tls, port=port, answer_delay=answer_delay,
                host=host, admin_token=token, no_auth=no_auth, max_records=max_records,
            ).start()
        except (OSError, ImportError, ValueError) as error:
            print(f"error: cannot start the emulator: {error}", file=sys.stderr)
            return 1
        with emulator:
            facts = _facts(emulator, access_keys, generated, token if made_token else None)
            lines = _env_lines(emulator, access_keys, facts) if env else [
                f"{name}: {value}" for name, value in facts
            ]
            lines.append("# ready" if env else "ready")
            stream.write("\n".join(lines) + "\n")
            stream.flush()
            while not done.wait(0.5):
                pass
        return 0
    finally:
        for signum, handler in previous:
            signal.signal(signum, handler)


def _facts(
    emulator: Emulator, access_keys: Mapping[str, str], generated: bool, made_token: str | None
) -> list[tuple[str, str]]:
    facts = [("endpoint", emulator.endpoint), ("protocol", emulator.protocol)]
    if emulator.ca_file is not None:
        facts.append(("ca_file", emulator.ca_file))
    for key_id, secret in access_keys.items():
        facts.append(("access_key_id", key_id))
        if generated:
            facts.append(("access_key_secret", secret))
    facts.append(("inbox", emulator.inbox_url))
    if made_token is not None:
        facts.append(("admin_token", made_token))
    return facts


def _env_lines(
    emulator: Emulator, access_keys: Mapping[str, str], facts: list[tuple[str, str]]
) -> list[str]:
    """``export`` lines that point a globesms service (or any SDK user) at ``emulator``."""
    key_id, secret = next(iter(access_keys.items()))
    exports = [
        ("GLOBESMS_ENDPOINT", emulator.endpoint),
        ("GLOBESMS_PROTOCOL", emulator.protocol),
    ]
    if emulator.ca_file is not None:
        exports.append(("GLOBESMS_CA_FILE", emulator.ca_file))
    exports += [
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", key_id),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", secret),
    ]
    lines = [f"export {name}={shlex.quote(value)}" for name, value in exports]
    lines += [f"# {name}: {value}" for name, value in facts if name in ("inbox", "admin_token")]
    return lines
