"""The application factory: wiring only."""
from __future__ import annotations

import logging
import os
import time

import psycopg
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

import migrations
from api_request import init_api_request
from auth import init_auth
from blueprints import audits, billing, health, orgs, policies, webhooks
from blueprints import storage as storage_routes
from commands import db_cli
from config import load_settings
from cors import init_cors
from db import Database, connect_once
from embedded_pg import embedded_database_url
from errors import register_error_handlers
from formula_audit.cli import audit as audit_cli
from json_provider import IsoJsonProvider
from logs import configure_logging
from maintenance import maintenance_cli
from rate_limits import init_rate_limits
from storage import init_storage
from storage.cli import storage_cli

log = logging.getLogger(__name__)


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: settings from the environment, then `test_config` on top; database, errors, blueprints."""
    app = Flask(__name__, instance_relative_config=True)
    app.json = IsoJsonProvider(app)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(load_settings(app.instance_path))
    if test_config:
        app.config.update(test_config)
    configure_logging(app)
    if not app.config["DATABASE_URL"]:
        app.config["DATABASE_URL"] = embedded_database_url(app.config["EMBEDDED_PG_DIR"])
        app.config["DATABASE_EMBEDDED"] = True

    register_error_handlers(app)
    init_api_request(app)
    init_cors(app)
    Database(app)
    init_auth(app)
    init_rate_limits(app)
    init_storage(app)
    if app.config["PROXY_FIX_X_FOR"]:
        # Behind a load balancer the client address is in X-Forwarded-For; trust only as many hops as we have.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["PROXY_FIX_X_FOR"], x_proto=1)
    if app.config["AUTO_MIGRATE"]:
        _migrate_at_startup(app)

    app.register_blueprint(health.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(orgs.bp)
    app.register_blueprint(billing.bp)
    app.register_blueprint(policies.bp)
    app.register_blueprint(audits.bp)
    app.register_blueprint(storage_routes.bp)
    app.cli.add_command(db_cli)
    app.cli.add_command(maintenance_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(storage_cli)
    return app


def _migrate_at_startup(app: Flask) -> None:
    """Apply pending migrations, waiting up to DB_STARTUP_TIMEOUT seconds for the database to answer.

    Raises psycopg.OperationalError when it never does: a worker that cannot reach its database should not boot.
    """
    deadline = time.monotonic() + app.config["DB_STARTUP_TIMEOUT"]
    while True:
        try:
            with connect_once(app.config) as conn:
                applied = migrations.upgrade(conn)
            break
        except psycopg.OperationalError as exc:
            if time.monotonic() >= deadline:
                log.error("database unreachable at start-up; giving up")
                raise
            log.warning("database unreachable at start-up, retrying: %s", type(exc).__name__)
            time.sleep(1)
    if applied:
        log.info("migrations applied", extra={"versions": applied})
