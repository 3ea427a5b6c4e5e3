"""Liveness and readiness probes for load balancers and orchestrators."""
from __future__ import annotations

import psycopg
from flask import Blueprint, current_app
from psycopg_pool import PoolTimeout

import migrations
from db import get_db
from errors import ServiceUnavailable
from queries import q

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up and serving; says nothing about the database."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """200 when the database answers and every migration is applied; 503 with the failing check otherwise.

    Raises ServiceUnavailable (503).
    """
    try:
        with get_db().connection(timeout=current_app.config["DB_READY_TIMEOUT"]) as conn:
            conn.execute(q.health.ping).fetchone()
            current = migrations.is_current(conn)
    except (PoolTimeout, psycopg.Error):
        raise ServiceUnavailable("The database is not reachable.", code="not_ready",
                                 details={"database": "unreachable"}, headers={"Retry-After": "5"}) from None
    if not current:
        raise ServiceUnavailable("Migrations are pending.", code="not_ready",
                                 details={"database": "ok", "migrations": "pending"})
    return {"status": "ready", "database": "ok", "migrations": "current"}
