"""Stores for one process (:class:`MemoryStore`) and one host (:class:`SqliteStore`).

Both run the policy of :mod:`._engine` inside one transaction: a lock around a dict for memory,
``BEGIN IMMEDIATE`` for SQLite (WAL, busy timeout), so several worker processes on one host see
one state and a code approves once.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from .._errors import StoreUnavailable
from ._engine import (
    CheckOutcome,
    CheckRequest,
    Reservation,
    StartRequest,
    Tx,
    run_check,
    run_record_message_id,
    run_start,
    run_withdraw,
)
from ._policy import Refusal

T = TypeVar("T")
_SWEEP_EVERY = 512


class _TxStore:
    """The sync and async shells shared by the Python stores; subclasses provide ``_tx``."""

    clock: Callable[[], float]

    @contextmanager
    def _tx(self) -> Iterator[Tx]:  # pragma: no cover - overridden
        raise NotImplementedError
        yield

    def _run(self, work: Callable[[Tx, float], T]) -> T:
        with self._tx() as tx:
            return work(tx, self.clock())

    def start(self, request: StartRequest) -> Reservation | Refusal:
        return self._run(lambda tx, now: run_start(tx, request, now))

    def record_message_id(self, key: str, challenge_id: str, message_id: str) -> None:
        self._run(lambda tx, now: run_record_message_id(tx, key, challenge_id, message_id))

    def withdraw(self, key: str, reservation: Reservation) -> None:
        self._run(lambda tx, now: run_withdraw(tx, key, reservation))

    def check(self, request: CheckRequest) -> CheckOutcome:
        return self._run(lambda tx, now: run_check(tx, request, now))

    async def start_async(self, request: StartRequest) -> Reservation | Refusal:
        return await self._in_thread(self.start, request)

    async def record_message_id_async(
        self, key: str, challenge_id: str, message_id: str
    ) -> None:
        await self._in_thread(self.record_message_id, key, challenge_id, message_id)

    async def withdraw_async(self, key: str, reservation: Reservation) -> None:
        await self._in_thread(self.withdraw, key, reservation)

    async def check_async(self, request: CheckRequest) -> CheckOutcome:
        return await self._in_thread(self.check, request)

    async def _in_thread(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(func, *args)

    def close(self) -> None:
        """Nothing to release by default."""

    async def aclose(self) -> None:
        self.close()


class _MemoryTx:
    def __init__(self, data: dict[str, tuple[dict[str, Any], float]], now: float) -> None:
        self._data = data
        self._now = now

    def get(self, key: str) -> dict[str, Any] | None:
        entry = self._data.get(key)
        if entry is None or entry[1] <= self._now:
            return None
        return dict(entry[0])

    def put(self, key: str, value: Mapping[str, Any], expire_at: float) -> None:
        self._data[key] = (dict(value), expire_at)

    def patch(self, key: str, fields: Mapping[str, Any]) -> None:
        entry = self._data.get(key)
        if entry is not None:
            entry[0].update(fields)

    def delete(self, key: str) -> None:
        self._data.pop(key, None)


class MemoryStore(_TxStore):
    """Challenges and limits in this process only: for tests and scripts.

    Worker processes (gunicorn, uvicorn ``--workers``) do not share it: a code sent by one worker
    is unknown to the next. Use :class:`SqliteStore` on one host and :class:`RedisStore` on many.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._data: dict[str, tuple[dict[str, Any], float]] = {}
        self._lock = threading.Lock()
        self._writes = 0

    def __repr__(self) -> str:
        return "MemoryStore()"

    @contextmanager
    def _tx(self) -> Iterator[Tx]:
        with self._lock:
            now = self.clock()
            self._writes += 1
            if self._writes % _SWEEP_EVERY == 0:
                for key in [k for k, (_, exp) in self._data.items() if exp <= now]:
                    del self._data[key]
            yield _MemoryTx(self._data, now)

    async def _in_thread(self, func: Callable[..., T], *args: Any) -> T:
        return func(*args)  # never blocks for long: no thread hop

    def dump(self) -> dict[str, dict[str, Any]]:
        """Every live key and its fields (for tests and audits)."""
        now = self.clock()
        with self._lock:
            return {k: dict(v) for k, (v, exp) in self._data.items() if exp > now}


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection, now: float) -> None:
        self._conn = conn
        self._now = now

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT value FROM verify_state WHERE key = ? AND expire_at > ?", (key, self._now)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def put(self, key: str, value: Mapping[str, Any], expire_at: float) -> None:
        self._conn.execute(
            "INSERT INTO verify_state (key, value, expire_at) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expire_at = excluded.expire_at",
            (key, json.dumps(value, separators=(",", ":")), expire_at),
        )

    def patch(self, key: str, fields: Mapping[str, Any]) -> None:
        current = self.get(key)
        if current is not None:
            current.update(fields)
            self._conn.execute(
                "UPDATE verify_state SET value = ? WHERE key = ?",
                (json.dumps(current, separators=(",", ":")), key),
            )

    def delete(self, key: str) -> None:
        self._conn.execute("DELETE FROM verify_state WHERE key = ?", (key,))


class SqliteStore(_TxStore):
    """Challenges and limits in one SQLite file: safe for several processes on one host.

    Every decision is one ``BEGIN IMMEDIATE`` transaction; the database runs in WAL mode with a
    busy timeout of ``timeout`` seconds. A file that cannot be opened or stays locked longer
    raises :class:`StoreUnavailable`. Numbers appear only as keyed HMACs; codes never.
    """

    def __init__(
        self, path: str | Path, *, timeout: float = 2.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.clock = clock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._writes = 0

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn  # SQLite: never use a connection opened before a fork in the child
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS verify_state (key TEXT PRIMARY KEY, "
                "value TEXT NOT NULL, expire_at REAL NOT NULL)"
            )
        except (sqlite3.Error, OSError) as exc:
            raise self._unavailable(exc) from None
        self._local.conn, self._local.pid = conn, os.getpid()
        with self._guard:
            self._connections.append(conn)
        return conn

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        return StoreUnavailable(
            f"the SQLite verification store at {self.path} cannot be used "
            f"({type(exc).__name__}: {exc}); nothing was sent or approved",
            code="StoreUnavailable",
        )

    @contextmanager
    def _tx(self) -> Iterator[Tx]:
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from None
        try:
            now = self.clock()
            yield _SqliteTx(conn, now)
            self._writes += 1
            if self._writes % _SWEEP_EVERY == 0:
                conn.execute("DELETE FROM verify_state WHERE expire_at <= ?", (now,))
            conn.execute("COMMIT")
        except BaseException as exc:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._unavailable(exc) from None
            raise

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._guard:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()
