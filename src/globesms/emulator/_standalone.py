"""``globesms emulator``: run the emulator in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import secrets
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any, TextIO

from ._emulator import Emulator


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
) -> int:
    """Run an emulator until SIGINT/SIGTERM (or ``stop``); return the exit code.

    Prints, one ``name: value`` line each and flushed: ``endpoint``,
    ``protocol``, ``ca_file`` (with ``tls``), then ``access_key_id`` for each
    accepted key; without ``keys`` it makes a throwaway pair and also prints
    its ``access_key_secret``. The last line is ``ready``. Nothing else is
    ever printed: requests carry phone numbers and message text.
    """
    stream = out if out is not None else sys.stdout
    try:
        access_keys = parse_keys(keys)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    generated = not access_keys
    if generated:
        access_keys = {"emulator-" + secrets.token_hex(4): secrets.token_urlsafe(24)}
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
                access_keys=access_keys, tls=tls, port=port, answer_delay=answer_delay
            ).start()
        except (OSError, ImportError, ValueError) as error:
            print(f"error: cannot start the emulator: {error}", file=sys.stderr)
            return 1
        with emulator:
            lines = [f"endpoint: {emulator.endpoint}", f"protocol: {emulator.protocol}"]
            if emulator.ca_file is not None:
                lines.append(f"ca_file: {emulator.ca_file}")
            for key_id, secret in access_keys.items():
                lines.append(f"access_key_id: {key_id}")
                if generated:
                    lines.append(f"access_key_secret: {secret}")
            lines.append("ready")
            stream.write("\n".join(lines) + "\n")
            stream.flush()
            while not done.wait(0.5):
                pass
        return 0
    finally:
        for signum, handler in previous:
            signal.signal(signum, handler)
