"""Functions that run in child processes (multiprocessing with "spawn"): they live in a module
importable by name (``pythonpath`` puts this folder on ``sys.path``), so children can unpickle
them whatever pytest's import mode."""

from __future__ import annotations

from typing import Any


def race_worker(store_spec: tuple[str, str, str], secret: str, number: str, code: str,
                barrier: Any, results: Any) -> None:
    """One process: build its own service and store, wait for the others, check the code."""
    from globesms import RedisStore, Settings, SmsService, SqliteStore, VerificationService
    from globesms.testing import static_credential

    kind, where, prefix = store_spec
    store = SqliteStore(where) if kind == "sqlite" else RedisStore(where, prefix=prefix)
    sms = SmsService(Settings.load(environ={}, endpoint="127.0.0.1:9", protocol="http"),
                     credential=static_credential("unused", "unused-secret"))
    service = VerificationService(sms, store=store, secret=secret, environ={},
                                  conversion_gate="off")
    service.check(number, "000000", purpose="warm-up")  # connect before the race
    barrier.wait(timeout=30)
    results.put(service.check(number, code).status)
    store.close()
