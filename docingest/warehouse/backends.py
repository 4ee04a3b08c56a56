"""Warehouse connections: DuckDB (embedded, the default) and PostgreSQL (psycopg 3), behind one
small interface, chosen from a registry by the URL's scheme. Each backend knows its own column
types, bulk insert and the few SQL spellings that differ."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import pyarrow as pa

from docingest.errors import RunError


class WarehouseUnavailable(RunError):
    """The database cannot be reached or answered with a transient error: worth a retry."""


class Warehouse(Protocol):
    schema: str

    def execute(self, sql: str, params: tuple | list = ()) -> None: ...
    def query(self, sql: str, params: tuple | list = ()) -> list[tuple]: ...
    def insert(self, table: str, rows: pa.Table) -> None: ...
    def existing_columns(self, table: str) -> dict[str, str]: ...
    def sql_type(self, arrow_type: pa.DataType) -> str: ...
    def try_decimal(self, expr: str) -> str: ...
    def try_date(self, expr: str) -> str: ...
    def list_agg(self, expr: str, order_by: str) -> str: ...
    def transaction(self): ...
    def close(self) -> None: ...


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _SqlWarehouse:
    """What both backends spell the same: the information schema and list column types."""

    schema: str
    _double = "DOUBLE"

    def query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        raise NotImplementedError

    def existing_columns(self, table):
        rows = self.query("SELECT column_name, data_type FROM information_schema.columns "
                          "WHERE table_schema = ? AND table_name = ?", (self.schema, table))
        return {name: kind for name, kind in rows}

    def sql_type(self, t):
        if pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
            return self.sql_type(t.value_type) + "[]"
        return _scalar_type(t, timestamp="TIMESTAMP WITH TIME ZONE", double=self._double, real="REAL")


class DuckDBWarehouse(_SqlWarehouse):
    """A DuckDB file. One writer at a time (DuckDB locks the file)."""

    def __init__(self, path: Path, schema: str):
        import duckdb

        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(path))
        except duckdb.IOException as exc:
            raise WarehouseUnavailable(f"cannot open DuckDB file {path}: {exc}") from exc
        self.schema = schema
        self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}")

    def execute(self, sql, params=()):
        self.con.execute(sql, list(params))

    def query(self, sql, params=()):
        return self.con.execute(sql, list(params)).fetchall()

    def insert(self, table, rows):
        if rows.num_rows == 0:
            return
        self.con.register("_docingest_rows", rows)
        try:
            columns = ", ".join(_quote(c) for c in rows.column_names)
            self.con.execute(f"INSERT INTO {_quote(self.schema)}.{_quote(table)} ({columns}) "
                             f"SELECT {columns} FROM _docingest_rows")
        finally:
            self.con.unregister("_docingest_rows")

    def try_decimal(self, expr):
        return f"TRY_CAST({expr} AS DECIMAL(20, 6))"

    def try_date(self, expr):
        return f"TRY_CAST({expr} AS DATE)"

    def list_agg(self, expr, order_by):
        return f"list({expr} ORDER BY {order_by})"

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def close(self):
        self.con.close()


class PostgresWarehouse(_SqlWarehouse):
    _double = "DOUBLE PRECISION"

    def __init__(self, url: str, schema: str):
        import psycopg

        try:
            self.con = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise WarehouseUnavailable(f"cannot connect to PostgreSQL ({_safe(url)}): {exc}") from exc
        self.schema = schema
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}")

    def execute(self, sql, params=()):
        self._run(sql, params)

    def query(self, sql, params=()):
        return self._run(sql, params).fetchall()

    def _run(self, sql, params):
        # Placeholders are "?" in the shared SQL; a statement without parameters is sent as it
        # is (a view's regex holds "?" of its own).
        if not params:
            return self.con.execute(sql)
        return self.con.execute(sql.replace("?", "%s"), list(params))

    def insert(self, table, rows):
        if rows.num_rows == 0:
            return
        columns = ", ".join(_quote(c) for c in rows.column_names)
        with self.con.cursor().copy(f"COPY {_quote(self.schema)}.{_quote(table)} ({columns}) FROM STDIN") as copy:
            for row in rows.to_pylist():
                copy.write_row([row[c] for c in rows.column_names])

    def try_decimal(self, expr):
        return f"(CASE WHEN {expr} ~ '^-?[0-9]+(\\.[0-9]+)?$' THEN CAST({expr} AS NUMERIC(20, 6)) END)"

    def try_date(self, expr):
        return f"(CASE WHEN {expr} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$' THEN CAST({expr} AS DATE) END)"

    def list_agg(self, expr, order_by):
        return f"array_agg({expr} ORDER BY {order_by})"

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.con.transaction():
            yield

    def close(self):
        self.con.close()


def _scalar_type(t: pa.DataType, *, timestamp: str, double: str, real: str) -> str:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "TEXT" if double == "DOUBLE PRECISION" else "VARCHAR"
    if pa.types.is_int32(t):
        return "INTEGER"
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_float64(t):
        return double
    if pa.types.is_float32(t):
        return real
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_timestamp(t):
        return timestamp
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision}, {t.scale})"
    raise TypeError(f"no warehouse type for {t}")


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url


def _duckdb(url: str, schema: str) -> Warehouse:
    # duckdb:///srv/warehouse.duckdb is /srv/warehouse.duckdb; duckdb://warehouse.duckdb is relative.
    path = url.removeprefix("duckdb://")
    if not path.strip("/"):
        raise RunError("a DuckDB URL names its file: duckdb:///path/to/warehouse.duckdb")
    return DuckDBWarehouse(Path(path), schema)


def _postgres(url: str, schema: str) -> Warehouse:
    return PostgresWarehouse(url, schema)


BACKENDS = {"duckdb": _duckdb, "postgresql": _postgres, "postgres": _postgres}


def connect(url: str, schema: str) -> Warehouse:
    scheme = urlparse(url).scheme
    if scheme not in BACKENDS:
        raise RunError(f"warehouse URL {_safe(url)!r}: the scheme must be one of "
                       f"{', '.join(sorted(BACKENDS))} (duckdb:///path/file.duckdb, postgresql://user@host:port/db)")
    return BACKENDS[scheme](url, schema)


def describe(url: str) -> str:
    return _safe(url)



def is_transient_database_error(exc: BaseException) -> bool:
    """Worth another attempt: the database was unreachable, the connection dropped, or it
    aborted the transaction for a conflict (serialization failure, deadlock, lock timeout)."""
    if isinstance(exc, WarehouseUnavailable):
        return True
    try:
        import psycopg
    except ImportError:
        psycopg = None
    if psycopg is not None and isinstance(exc, (psycopg.OperationalError, psycopg.errors.SerializationFailure,
                                                psycopg.errors.DeadlockDetected)):
        return True
    try:
        import duckdb
    except ImportError:
        return False
    return isinstance(exc, (duckdb.IOException, duckdb.TransactionException))
