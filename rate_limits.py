"""Per-organization rate limits through flask-limiter, with counters in PostgreSQL's rate_limit_buckets.

Counters live in the database so every worker and every server shares them. A fixed window is one row: the first
hit of a window inserts it, later hits increment it under the row lock, and a hit after the window ended starts a
new one. That single INSERT ... ON CONFLICT statement is the only round trip rate limiting costs a request: it
returns the count and the reset time, which are remembered for the rest of the request so the response headers
need no further query.

Authenticated calls are limited per organization at their plan's requests per minute (known from sign-in, no
extra query); anonymous /api/ calls (the webhook) per client address at RATE_LIMIT_ANONYMOUS.
"""
from __future__ import annotations

import re
import time

import psycopg
from flask import Flask, current_app, g, has_request_context, request
from flask_limiter import Limiter, RateLimitExceeded
from limits.storage import Storage
from psycopg_pool import PoolTimeout

from errors import TooManyRequests, render
from queries import q

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class PostgresStorage(Storage):
    """A `limits` storage for the "postgresql" scheme, on the app's own connection pool.

    The URI carries no address: the storage always uses the current app's database.
    """

    STORAGE_SCHEME = ["postgresql", "postgres"]

    @property
    def base_exceptions(self):
        return (psycopg.Error, PoolTimeout)

    def _conn(self) -> psycopg.Connection:
        return current_app.extensions["db"].request_connection()

    def _remembered(self) -> dict:
        if not has_request_context():
            return {}
        if "_rate_limit_windows" not in g:
            g._rate_limit_windows = {}
        return g._rate_limit_windows

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        # Buckets keyed by organization carry its id, so the seed's reports can join them to organizations.
        organization = _UUID.search(key)
        row = self._conn().execute(q.rate_limits.hit_bucket, {
            "key": key, "amount": amount, "expiry": expiry,
            "organization_id": organization.group(0) if organization else None}).fetchone()
        self._remembered()[key] = (row["request_count"], float(row["reset_at"]))
        return row["request_count"]

    def _window(self, key: str) -> tuple[int, float]:
        remembered = self._remembered().get(key)
        if remembered is not None:
            return remembered
        row = self._conn().execute(q.rate_limits.get_bucket, {"key": key}).fetchone()
        return (row["request_count"], float(row["reset_at"])) if row else (0, time.time())

    def get(self, key: str) -> int:
        return self._window(key)[0]

    def get_expiry(self, key: str) -> float:
        return self._window(key)[1]

    def check(self) -> bool:
        try:
            self._conn().execute(q.health.ping)
            return True
        except self.base_exceptions:
            return False

    def reset(self) -> int | None:
        return self._conn().execute(q.rate_limits.delete_all_buckets).rowcount

    def clear(self, key: str) -> None:
        self._remembered().pop(key, None)
        self._conn().execute(q.rate_limits.delete_bucket, {"key": key})


def rate_limit_key() -> str:
    caller = g.get("caller")
    return f"org:{caller.organization_id}" if caller is not None else f"ip:{request.remote_addr}"


def request_rate() -> str:
    caller = g.get("caller")
    if caller is not None:
        return f"{caller.requests_per_minute}/minute"
    return current_app.config["RATE_LIMIT_ANONYMOUS"]


def _not_api() -> bool:
    return not request.path.startswith("/api/")


def init_rate_limits(app: Flask) -> Limiter:
    """Attach the limiter. Call after init_auth: limits need to know the caller's organization and plan."""
    limiter = Limiter(
        key_func=rate_limit_key,
        application_limits=[request_rate],
        application_limits_exempt_when=_not_api,
        storage_uri="postgresql://app-database",
        strategy="fixed-window",
        headers_enabled=True,
        key_prefix="rl",
        enabled=app.config["RATE_LIMIT_ENABLED"],
    )
    limiter.init_app(app)

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(exc: RateLimitExceeded):
        who = "this organization" if g.get("caller") is not None else "this client address"
        return render(TooManyRequests(f"Rate limit of {exc.limit.limit} exceeded for {who}; retry after the "
                                      "time in the Retry-After header.",
                                      details={"limit": str(exc.limit.limit)}))

    return limiter
