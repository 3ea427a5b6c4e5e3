"""Schema migrations: numbered files in sql/migrations/, plus the function files in sql/functions/.

Migrations are applied in order, once, and recorded in `schema_migrations`; a file that changed after it was applied
is reported, never re-run. Function files hold `CREATE OR REPLACE` definitions and are re-applied whenever their
text changes, so a function is edited in place like code.

Everything pending is applied in one transaction that first takes a transaction-level advisory lock: when several
workers or servers start at once, one applies and the others wait, then find nothing left to do. A transaction lock
(not a session lock) also holds behind a transaction-mode pooler.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psycopg

from queries import SQL_ROOT, q

MIGRATIONS_DIR = SQL_ROOT / "migrations"
FUNCTIONS_DIR = SQL_ROOT / "functions"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class SqlFile:
    version: str  # "0001_core_schema" for a migration, "function:usage" for a function file
    kind: str  # "migration" or "function"
    path: Path
    checksum: str

    @property
    def sql(self) -> str:
        return self.path.read_text()


@dataclass(frozen=True, slots=True)
class FileStatus:
    file: SqlFile
    state: str  # "applied", "pending", "changed" (applied, then edited), "outdated" (function text changed)


def _checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@cache
def discover() -> tuple[SqlFile, ...]:
    """Migrations in numeric order, then function files by name. Raises ValueError on a misnamed or duplicate number.

    Read once per process: the files ship with the code and do not change while it runs.
    """
    migrations = []
    seen_numbers: dict[str, str] = {}
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name!r} must be named NNNN_snake_case.sql")
        if match.group(1) in seen_numbers:
            raise ValueError(f"migrations {seen_numbers[match.group(1)]} and {path.name} share a number")
        seen_numbers[match.group(1)] = path.name
        migrations.append(SqlFile(path.stem, "migration", path, _checksum(path)))
    functions = [
        SqlFile(f"function:{path.stem}", "function", path, _checksum(path)) for path in sorted(FUNCTIONS_DIR.glob("*.sql"))
    ]
    return tuple(migrations + functions)


def _recorded(conn: psycopg.Connection) -> dict[str, str]:
    if conn.execute(q.schema.get_migrations_table).fetchone()["regclass"] is None:
        return {}
    return {row["version"]: row["checksum"] for row in conn.execute(q.schema.list_applied)}


def status(conn: psycopg.Connection, files: tuple[SqlFile, ...] | None = None) -> list[FileStatus]:
    """The state of every known file against what the database has recorded."""
    recorded = _recorded(conn)
    result = []
    for file in files if files is not None else discover():
        checksum = recorded.get(file.version)
        if checksum is None:
            state = "pending"
        elif checksum == file.checksum:
            state = "applied"
        else:
            state = "changed" if file.kind == "migration" else "outdated"
        result.append(FileStatus(file, state))
    return result


def is_current(conn: psycopg.Connection, files: tuple[SqlFile, ...] | None = None) -> bool:
    """True when nothing is pending or outdated (an edited migration counts as current: it is never re-run)."""
    return all(s.state in ("applied", "changed") for s in status(conn, files))


class MigrationError(Exception):
    """The database's schema history does not fit this code's migrations."""


def upgrade(conn: psycopg.Connection) -> list[str]:
    """Apply what is pending, in one transaction, under the migration lock. Returns the versions applied.

    Raises MigrationError, applying nothing, when a pending migration is numbered below one already applied: it was
    written against an older schema, and applying it out of order could do something else than its author tested.
    When the database has migrations this code does not know (an older release still running during a rolling
    deploy), function files are left alone: the newer release's definitions stay in place.
    """
    files = discover()
    applied = []
    with conn.transaction():
        conn.execute(q.schema.lock_migrations)
        conn.execute(q.schema.create_migrations_table)
        states = status(conn, files)
        _refuse_out_of_order(states)
        database_is_newer = bool(_recorded_migrations(conn) - {f.version for f in files if f.kind == "migration"})
        for file_status in states:
            file = file_status.file
            if file_status.state not in ("pending", "outdated") or (file.kind == "function" and database_is_newer):
                continue
            conn.execute(file.sql.encode())
            conn.execute(q.schema.record_applied, {"version": file.version, "kind": file.kind, "checksum": file.checksum})
            applied.append(file.version)
        # Every run, pending work or not: this month's and the next months' audit log partitions exist before the
        # first audit of the month is written, so the default partition stays empty.
        conn.execute(q.schema.ensure_audit_log_partitions)
    return applied


def _recorded_migrations(conn: psycopg.Connection) -> set[str]:
    return {row["version"] for row in conn.execute(q.schema.list_applied) if not row["version"].startswith("function:")}


def _refuse_out_of_order(states: list[FileStatus]) -> None:
    applied = [s.file.version for s in states if s.file.kind == "migration" and s.state != "pending"]
    pending = [s.file.version for s in states if s.file.kind == "migration" and s.state == "pending"]
    late = [version for version in pending if applied and version < max(applied)]
    if late:
        raise MigrationError(f"migrations {', '.join(late)} are numbered below {max(applied)}, which is already "
                             "applied; renumber them after it")
