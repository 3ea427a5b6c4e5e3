"""`flask db ...`: schema migrations from the command line."""
from __future__ import annotations

import os
import shutil

import click
from flask import current_app
from flask.cli import AppGroup

import migrations
from db import connect_once

db_cli = AppGroup("db", help="Schema migrations.")


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations and changed function files."""
    with connect_once(current_app.config) as conn:
        applied = migrations.upgrade(conn)
    if applied:
        for version in applied:
            click.echo(f"applied  {version}")
    else:
        click.echo("nothing to apply: the schema is current")


@db_cli.command("status")
def db_status() -> None:
    """Show every migration and function file with its state."""
    with connect_once(current_app.config) as conn:
        rows = migrations.status(conn)
    for row in rows:
        click.echo(f"{row.state:<9} {row.file.version}")
    pending = sum(row.state in ("pending", "outdated") for row in rows)
    click.echo(f"{len(rows) - pending} current, {pending} pending")


@db_cli.command("shell")
def db_shell() -> None:
    """Open psql on the configured database (the embedded server's own psql when none is installed)."""
    psql = shutil.which("psql")
    if psql is None:
        from pgserver._commands import POSTGRES_BIN_PATH

        psql = str(POSTGRES_BIN_PATH / "psql")
    os.execv(psql, [psql, current_app.config["DATABASE_URL"]])
