"""SQLite for the lab's long-running services: every transaction takes the write lock when it begins.

oslo.db begins SQLite transactions with a plain (deferred) ``BEGIN``. A transaction that reads and then writes
while another connection (another thread of the service, or nova-api beside nova-conductor on the cell database)
has written in between fails at once with "database is locked": SQLite cannot wait, its snapshot is stale. A
server boot then ends in ERROR. ``BEGIN IMMEDIATE`` takes the write lock up front, so concurrent transactions
queue on the busy timeout instead. The lab's load is small: serialising its transactions costs nothing noticeable.

The services' WSGI wrappers and ``nova_service.py`` call :func:`install` once the service is imported.
"""

import sqlite3

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

BUSY_TIMEOUT_MS = 60000


def _on_connect(dbapi_connection, _record):
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def _on_begin(conn):
    # Class-level listeners run before oslo.db's per-engine one, which emits no BEGIN of its own once its
    # "in_transaction" marker is set (and clears the marker at commit/rollback).
    if conn.dialect.name == "sqlite" and "in_transaction" not in conn.info:
        conn.execute(text("BEGIN IMMEDIATE"))
        conn.info["in_transaction"] = True


def install():
    """Register the listeners for every engine, existing or future (idempotent)."""
    if not event.contains(Engine, "begin", _on_begin):
        event.listen(Pool, "connect", _on_connect)
        event.listen(Engine, "begin", _on_begin)
