"""The storage seam every shop service goes through: a tiny ``Database`` interface.

A service owns exactly one database. ``SqliteDatabase`` is the default: one file per service
(``context.data_dir / "<service>.db"``), WAL mode and a busy timeout, so several processes of
the same service can share the file. A server database can take its place later by providing
the same three methods.

Under gevent a SQLite call blocks the hub for its duration, so transactions must stay short and
must never do network I/O (no RPC inside ``transaction()``).
"""

import random
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path


class Database:
    """Contract of the seam.

    - ``transaction()`` is a context manager yielding a ``Tx``; every statement inside runs
      atomically and in isolation from other processes sharing the database (the write lock is
      taken at the start, like ``BEGIN IMMEDIATE``). Leaving the block normally commits; an
      exception rolls back and propagates.
    - ``snapshot()`` is the same for reads only: a consistent view, no write lock.
    - ``query(sql, params)`` runs one read outside any explicit transaction and returns a list
      of rows (``sqlite3.Row``-like: index by column name).
    - ``execute(sql, params)`` runs one write in its own transaction; returns the row count.
    - ``close()`` releases the connection. Any greenlet may call any method; calls are serialised.
    """

    def transaction(self):
        raise NotImplementedError

    def snapshot(self):
        """Like ``transaction()`` but read-only and without the write lock: a consistent view."""
        raise NotImplementedError

    def query(self, sql, params=()):
        raise NotImplementedError

    def execute(self, sql, params=()):
        raise NotImplementedError

    def close(self):
        raise NotImplementedError


class Tx:
    """Statements inside one transaction."""

    def __init__(self, connection):
        self._connection = connection

    def execute(self, sql, params=()):
        """Run one statement; returns its row count (0 for a conditional UPDATE that missed)."""
        return self._connection.execute(sql, params).rowcount

    def query(self, sql, params=()):
        return self._connection.execute(sql, params).fetchall()

    def one(self, sql, params=()):
        """The first row, or None."""
        return self._connection.execute(sql, params).fetchone()

    def script(self, sql):
        for statement in sql.split(";"):
            if statement.strip():
                self._connection.execute(statement)


class SqliteDatabase(Database):
    """One SQLite file; ``schema`` (``;``-separated DDL, idempotent) is applied on open."""

    def __init__(self, path, schema="", busy_timeout_ms=10_000):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._connection = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False,
            timeout=busy_timeout_ms / 1000)
        self._connection.row_factory = sqlite3.Row
        self._connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        _until_unlocked(self._set_up, schema, deadline=time.monotonic() + busy_timeout_ms / 1000)

    def _set_up(self, schema):
        self._connection.execute("PRAGMA journal_mode = WAL")
        self._connection.execute("PRAGMA synchronous = NORMAL")
        if schema:
            with self.transaction() as tx:
                tx.script(schema)

    @contextmanager
    def transaction(self):
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(self._connection)
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    @contextmanager
    def snapshot(self):
        with self._lock:
            self._connection.execute("BEGIN DEFERRED")
            try:
                yield Tx(self._connection)
            finally:
                self._connection.execute("COMMIT")

    def query(self, sql, params=()):
        with self._lock:
            return self._connection.execute(sql, params).fetchall()

    def execute(self, sql, params=()):
        with self.transaction() as tx:
            return tx.execute(sql, params)

    def close(self):
        with self._lock:
            self._connection.close()


def _until_unlocked(step, *args, deadline):
    """``step(*args)``, again after a short pause while SQLite says the database is locked, until
    ``deadline``. Switching to WAL takes an exclusive lock and SQLite does not always call the
    busy handler for it, so processes opening one file at once can see "database is locked"
    whatever the busy timeout."""
    while True:
        try:
            return step(*args)
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
        time.sleep(random.uniform(0.01, 0.05))


def open_database(context, schema):
    """The service's own database, from ``services.X.settings.database`` (a URL):
    ``sqlite:`` (the default, ``context.data_dir / "<service>.db"``), ``sqlite:NAME.db`` (a file
    under the data dir) or ``postgresql://user:password@host:port/dbname``."""
    settings = getattr(context.service, "settings", None) or {}
    database = open_url(settings.get("database") or "sqlite:", context.data_dir,
                        context.service.name, schema)
    context.on_close(database.close)
    return database


def open_url(url, data_dir, name, schema):
    """A ``Database`` for one URL; raises ``ValueError`` naming the URL when it is not one."""
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresDatabase

        return PostgresDatabase(url, schema)
    if url.startswith("sqlite:"):
        rest = url[len("sqlite:"):].lstrip("/") if not url.startswith("sqlite:///") \
            else url[len("sqlite://"):]
        path = Path(rest) if rest.startswith("/") else Path(data_dir) / (rest or f"{name}.db")
        return SqliteDatabase(path, schema)
    raise ValueError(f"database URL {url.split('@')[-1]!r}: expected sqlite: or postgresql://")
