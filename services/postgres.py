"""The ``Database`` seam on PostgreSQL: psycopg 3 with a bounded psycopg-pool per process.

psycopg 3 picks its wait function at import: when gevent has patched ``select`` it uses the
pure-Python wait over the patched selectors instead of its C ``poll`` loop, so a query waiting
on the server yields the hub and other greenlets keep serving (tests/test_shop_postgres.py
proves it with ``pg_sleep``). The module must therefore be imported after ``soa.entry.init``
(services' handlers are imported by ``soa serve`` after it); ``PostgresDatabase`` refuses to
run with the C wait in a patched process.

The statements the shop writes are SQLite's; ``translate`` turns them into PostgreSQL's:
``?`` placeholders become ``%s``, ``INSERT OR IGNORE`` becomes ``ON CONFLICT DO NOTHING``, and
in the schema ``INTEGER`` becomes ``BIGINT`` (millisecond clocks), ``BLOB`` ``BYTEA``, and
``rowid`` (insertion order) a ``seq BIGSERIAL`` column the schema adds in a ``/*pg:*/`` comment.

Write transactions keep SQLite's ``BEGIN IMMEDIATE`` semantics: each takes one transaction-
scoped advisory lock per database (``pg_advisory_xact_lock``), so writers of one service are
serialised across all its processes exactly as they are on SQLite, and the conditional-UPDATE
guarantees of inventory and flashsale (no oversold unit) carry over unchanged. Snapshots are
``REPEATABLE READ READ ONLY`` and take no lock.
"""

import re
from contextlib import contextmanager

from .storage import Database, Tx

WRITE_LOCK = 0x5047_5752  # one advisory lock key per database: the "write lock"
_PLACEHOLDER = re.compile(r"\?")


def translate(sql):
    """A SQLite statement of the shop in PostgreSQL's dialect."""
    sql = sql.replace("%", "%%")
    if "INSERT OR IGNORE INTO" in sql:
        sql = sql.replace("INSERT OR IGNORE INTO", "INSERT INTO") + " ON CONFLICT DO NOTHING"
    sql = re.sub(r"\browid\b", "seq", sql)  # SQLite's insertion order; the schema adds seq
    return _PLACEHOLDER.sub("%s", sql)


def translate_schema(ddl):
    """DDL in PostgreSQL's dialect; ``/*pg:TEXT*/`` comments (ignored by SQLite) become TEXT."""
    ddl = re.sub(r"/\*pg:(.*?)\*/", r"\1", ddl)
    ddl = re.sub(r"\bINTEGER\b", "BIGINT", ddl)
    return re.sub(r"\bBLOB\b", "BYTEA", ddl)


def _abandon(connection):
    """Roll back a transaction that is ending in an exception, and never raise.

    A greenlet killed (or timed out) while a statement is on the wire leaves the connection
    busy, and ROLLBACK then fails with "another command is already in progress". Raising that
    would replace the exception in flight (a GreenletExit, say), so a loop that logs errors
    and goes on would never stop. The pool discards a connection returned mid-command, which
    ends the server's transaction and frees its locks."""
    from psycopg import Error

    try:
        connection.execute("ROLLBACK")
    except Error:
        pass


class _PgConnection:
    """The sqlite3-like face ``Tx`` expects: ``execute`` returning a cursor."""

    def __init__(self, connection):
        self._connection = connection

    def execute(self, sql, params=()):
        return self._connection.execute(translate(sql), tuple(params))


class PgTx(Tx):
    def script(self, sql):
        for statement in sql.split(";"):
            if statement.strip():
                self._connection._connection.execute(translate_schema(statement))


class PostgresDatabase(Database):
    """One PostgreSQL database; ``schema`` (SQLite DDL, idempotent) is applied on open.

    Any greenlet may call any method; each call borrows a connection from the pool (at most
    ``max_size`` per process) and waits cooperatively when all are in use."""

    dialect = "postgresql"

    def __init__(self, url, schema="", min_size=1, max_size=8, timeout=30.0):
        from psycopg import waiting
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        _check_cooperative(waiting)
        self.url = url
        self._pool = ConnectionPool(
            url, min_size=min_size, max_size=max_size, timeout=timeout, open=False,
            kwargs={"autocommit": True, "row_factory": dict_row}, name="shop")
        self._pool.open(wait=True, timeout=timeout)
        if schema:
            with self.transaction() as tx:
                tx.script(schema)

    @contextmanager
    def transaction(self):
        with self._pool.connection() as connection:
            connection.execute("BEGIN")
            try:
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                yield PgTx(_PgConnection(connection))
            except BaseException:
                _abandon(connection)
                raise
            connection.execute("COMMIT")

    @contextmanager
    def snapshot(self):
        with self._pool.connection() as connection:
            connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield PgTx(_PgConnection(connection))
            except BaseException:
                _abandon(connection)
                raise
            connection.execute("COMMIT")

    def query(self, sql, params=()):
        with self._pool.connection() as connection:
            return connection.execute(translate(sql), tuple(params)).fetchall()

    def execute(self, sql, params=()):
        with self.transaction() as tx:
            return tx.execute(sql, params)

    def close(self):
        self._pool.close()


def _check_cooperative(waiting):
    import sys

    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("select") \
            and getattr(waiting, "wait_c", None) is not None and waiting.wait is waiting.wait_c:
        raise RuntimeError("psycopg was imported before gevent patched the process: its C wait "
                           "would block the hub (import services.postgres after soa.entry.init)")
