"""Settings read from the environment (and `.env` in development).

Every setting the service reads is declared here, with its default, so the README's configuration table and the
code cannot drift apart.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import load_dotenv


def _flag(value: str | None, default: bool = False) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(env: dict, key: str, default: int) -> int:
    raw = env.get(key)
    return default if raw in (None, "") else int(raw)


def uses_transaction_pooler(database_url: str | None, explicit: str | None) -> bool:
    """True when connections go through a transaction-mode pooler (PgBouncer, Supabase on port 6543).

    `DB_TRANSACTION_POOLER` decides when set; otherwise Supabase's pooler port is recognised.
    """
    if explicit not in (None, ""):
        return _flag(explicit)
    if not database_url:
        return False
    try:
        return urlsplit(database_url).port == 6543
    except ValueError:
        return False


def load_settings(instance_path: str, env: dict | None = None) -> dict:
    """Return the Flask config mapping built from `env` (default: the process environment plus `.env`)."""
    if env is None:
        # `.env` never overrides what the real environment already says.
        load_dotenv(override=False)
        env = dict(os.environ)
    database_url = env.get("DATABASE_URL") or None
    return {
        "DATABASE_URL": database_url,
        "EMBEDDED_PG_DIR": env.get("EMBEDDED_PG_DIR") or str(Path(instance_path) / "pgdata"),
        "SECRET_KEY": env.get("SECRET_KEY") or _instance_secret(instance_path),
        "DB_POOL_MIN_SIZE": _int(env, "DB_POOL_MIN_SIZE", 1),
        "DB_POOL_MAX_SIZE": _int(env, "DB_POOL_MAX_SIZE", 8),
        "DB_POOL_TIMEOUT": float(env.get("DB_POOL_TIMEOUT") or 5),
        "DB_READY_TIMEOUT": float(env.get("DB_READY_TIMEOUT") or 2),
        "DB_STARTUP_TIMEOUT": float(env.get("DB_STARTUP_TIMEOUT") or 30),
        "DB_CONNECT_TIMEOUT": _int(env, "DB_CONNECT_TIMEOUT", 5),
        "DB_STATEMENT_TIMEOUT_MS": _int(env, "DB_STATEMENT_TIMEOUT_MS", 15000),
        "DB_TRANSACTION_POOLER": uses_transaction_pooler(database_url, env.get("DB_TRANSACTION_POOLER")),
        "AUTO_MIGRATE": _flag(env.get("AUTO_MIGRATE"), default=True),
        "CLERK_JWT_KEY": env.get("CLERK_JWT_KEY") or None,
        "CLERK_ISSUER": (env.get("CLERK_ISSUER") or "").rstrip("/") or None,
        "CLERK_JWKS_URL": env.get("CLERK_JWKS_URL") or _jwks_url(env.get("CLERK_ISSUER")),
        "CLERK_AUTHORIZED_PARTIES": tuple(
            p.strip().rstrip("/") for p in (env.get("CLERK_AUTHORIZED_PARTIES") or "").split(",") if p.strip()),
        "CLERK_CLOCK_SKEW_SECONDS": float(env.get("CLERK_CLOCK_SKEW_SECONDS") or 5),
        "CLERK_WEBHOOK_SECRET": env.get("CLERK_WEBHOOK_SECRET") or None,
        "CLERK_JWKS_REFRESH_COOLDOWN": float(env.get("CLERK_JWKS_REFRESH_COOLDOWN") or 30),
        "AUTH_DEV_HEADERS": _flag(env.get("AUTH_DEV_HEADERS")),
        # Unset: the CLERK_AUTHORIZED_PARTIES origins; set to "" to answer no cross-origin calls.
        "CORS_ALLOWED_ORIGINS": env.get("CORS_ALLOWED_ORIGINS"),
        "RATE_LIMIT_ENABLED": _flag(env.get("RATE_LIMIT_ENABLED"), default=True),
        "RATE_LIMIT_ANONYMOUS": env.get("RATE_LIMIT_ANONYMOUS") or "1000/minute",
        "PROXY_FIX_X_FOR": _int(env, "PROXY_FIX_X_FOR", 0),
        "AUDIT_LOG_RETENTION": env.get("AUDIT_LOG_RETENTION") or "90 days",
        "STORAGE_BACKEND": (env.get("STORAGE_BACKEND") or "local").strip().lower(),
        "STORAGE_LOCAL_DIR": env.get("STORAGE_LOCAL_DIR") or str(Path(instance_path) / "storage"),
        "SUPABASE_URL": env.get("SUPABASE_URL") or None,
        "SUPABASE_SERVICE_ROLE_KEY": env.get("SUPABASE_SERVICE_ROLE_KEY") or None,
        "SIGNED_URL_TTL_SECONDS": _int(env, "SIGNED_URL_TTL_SECONDS", 3600),
        "PUBLIC_BASE_URL": (env.get("PUBLIC_BASE_URL") or "").rstrip("/") or None,
        "TUS_UPLOAD_EXPIRY_HOURS": _int(env, "TUS_UPLOAD_EXPIRY_HOURS", 24),
        # Request bodies beyond this are refused before they are read; views that take more (audits, uploads)
        # raise it for themselves.
        "MAX_CONTENT_LENGTH": _int(env, "MAX_CONTENT_LENGTH", 1024 * 1024),
        "LOG_FORMAT": env.get("LOG_FORMAT") or "json",
        "LOG_LEVEL": env.get("LOG_LEVEL") or "INFO",
    }


def _jwks_url(issuer: str | None) -> str | None:
    """Clerk publishes its signing keys under the instance's Frontend API, which is the tokens' issuer."""
    return f"{issuer.rstrip('/')}/.well-known/jwks.json" if issuer else None


def _instance_secret(instance_path: str) -> str:
    """A development secret kept under instance/ so signed links survive restarts; production sets SECRET_KEY."""
    path = Path(instance_path) / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        # Written aside, then linked into place: when several workers start at once, the first link wins and the
        # others read a complete key, never a half-written one.
        staged = path.with_name(f".secret_key.{os.getpid()}")
        staged.write_text(key)
        staged.chmod(0o600)
        try:
            os.link(staged, path)
        except FileExistsError:
            key = path.read_text().strip()
        finally:
            staged.unlink()
        return key
