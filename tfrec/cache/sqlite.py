"""SQLite backend of the user-state cache: embedded, no server, the default.

One file, one table::

    user_state(model TEXT, version INTEGER, user_id INTEGER, value BLOB, expires_at REAL NULL,
               PRIMARY KEY (model, version, user_id))

Safe across processes and threads: the database runs in WAL mode (readers never block the
writer), every connection waits up to ``timeout`` seconds on a lock, and each thread (and each
forked process) gets its own connection. ``expires_at`` is a wall-clock time from ``clock``
(``time.time`` unless a test injects another); expired rows read as misses and are removed by
``purge_expired`` or overwritten by the next put. Every ``sqlite3.Error`` becomes
``CacheUnavailable``.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tfrec.cache.base import CacheUnavailable, UserStateCache, check_int, check_model

# A rowid table, not WITHOUT ROWID: states of several KiB span pages, which rowid tables suit.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS user_state (
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    value BLOB NOT NULL,
    expires_at REAL,
    PRIMARY KEY (model, version, user_id)
)
"""
# Bound parameters per SELECT ... IN (...): under SQLite's historic limit of 999.
_CHUNK = 900


class SQLiteCache(UserStateCache):
    """User-state cache in a local SQLite file (created with its parent directories)."""

    def __init__(self, path, ttl_seconds: float | None = None, *, timeout: float = 5.0,
                 clock: Callable[[], float] = time.time):
        super().__init__(ttl_seconds)
        if str(path) in ("", ":memory:") or str(path).startswith("file:"):
            raise ValueError(f"SQLiteCache needs a file path, got {str(path)!r}")
        self.path = Path(path).expanduser().resolve()
        self.url = f"sqlite://{self.path}"
        self.timeout = float(timeout)
        self._clock = clock
        self._local = threading.local()
        self._connections: list[tuple[int, sqlite3.Connection]] = []  # (pid, connection)
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CacheUnavailable(f"{self.url}: cannot create the directory: {err}") from err
        with self._transaction() as conn:
            conn.execute(_SCHEMA)

    # -- connections -----------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise CacheUnavailable(f"{self.url}: the cache is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():  # new thread, or a forked child
            # timeout: the busy timeout. Autocommit mode: transactions are explicit (BEGIN
            # IMMEDIATE in _transaction).
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False)
            try:
                self._enable_wal(conn)
                conn.execute("PRAGMA synchronous = NORMAL")  # durable enough for a cache in WAL
            except sqlite3.Error:
                conn.close()
                raise
            self._local.conn, self._local.pid = conn, os.getpid()
            with self._lock:
                self._connections.append((os.getpid(), conn))
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switches the file to WAL (once per file), retrying while another process holds a lock.

        Changing the journal mode fails at once with "database is locked" when another
        connection is busy with the file (SQLite does not call the busy handler there), which
        happens when several processes open a new cache file together.
        """
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                    return
                conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    @contextlib.contextmanager
    def _errors(self):
        """sqlite3 failures (I/O errors, locked past the timeout, ...) -> CacheUnavailable."""
        try:
            yield
        except sqlite3.Error as err:
            raise CacheUnavailable(f"{self.url}: {type(err).__name__}: {err}") from err

    @contextlib.contextmanager
    def _transaction(self):
        """A write transaction; takes the write lock up front so it never has to upgrade."""
        with self._errors():
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        self._closed = True
        with self._lock:
            connections, self._connections = self._connections, []
        for pid, conn in connections:
            if pid == os.getpid():  # a forked child leaves its parent's connections alone
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    # -- primitives ------------------------------------------------------------------------------

    def _get_blobs(self, model, version, user_ids):
        found = {}
        now = self._clock()
        with self._errors():
            conn = self._connection()
            for start in range(0, len(user_ids), _CHUNK):
                chunk = user_ids[start:start + _CHUNK]
                rows = conn.execute(
                    "SELECT user_id, value FROM user_state WHERE model = ? AND version = ? "
                    f"AND user_id IN ({','.join('?' * len(chunk))}) "
                    "AND (expires_at IS NULL OR expires_at > ?)",
                    [model, version, *chunk, now],
                )
                found.update(rows)
        return [found.get(uid) for uid in user_ids]

    def _put_blobs(self, model, version, user_ids, blobs, ttl_seconds):
        expires_at = None if ttl_seconds is None else self._clock() + ttl_seconds
        with self._transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO user_state (model, version, user_id, value, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [(model, version, uid, blob, expires_at) for uid, blob in zip(user_ids, blobs)],
            )

    def _delete_version(self, model, version):
        with self._transaction() as conn:
            return conn.execute(
                "DELETE FROM user_state WHERE model = ? AND version = ?", (model, version)
            ).rowcount

    # -- SQLite extras ---------------------------------------------------------------------------

    def purge_expired(self) -> int:
        """Deletes expired rows (they already read as misses); returns how many."""
        with self._transaction() as conn:
            return conn.execute(
                "DELETE FROM user_state WHERE expires_at IS NOT NULL AND expires_at <= ?",
                (self._clock(),),
            ).rowcount

    def count(self, model: str | None = None, version: int | None = None) -> int:
        """Rows stored (expired ones included), optionally for one model / model version."""
        where, args = [], []
        if model is not None:
            where.append("model = ?")
            args.append(check_model(model))
        if version is not None:
            where.append("version = ?")
            args.append(check_int("version", version))
        sql = "SELECT COUNT(*) FROM user_state" + (" WHERE " + " AND ".join(where) if where else "")
        with self._errors():
            return self._connection().execute(sql, args).fetchone()[0]
