"""Cross-origin calls from the frontend: a Clerk app served from https://app.example.com calling this API on
https://api.example.com.

Only origins listed in CORS_ALLOWED_ORIGINS (by default the frontend origins already named in
CLERK_AUTHORIZED_PARTIES) get CORS headers, and with credentials allowed, since Clerk may authenticate with its
`__session` cookie. A preflight is answered here, before authentication and rate limiting: browsers send it without
credentials, and it must not cost the organization a request or the database a round trip.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request

ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
# Response headers a script may read: our request id and limits, and what tus clients and downloads need.
EXPOSED_HEADERS = ", ".join([
    "X-Request-ID", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After",
    "X-Storage-Quota-Warning", "X-Storage-Object-Id", "Location", "ETag", "Content-Disposition", "Content-Range",
    "Accept-Ranges", "Tus-Resumable", "Tus-Version", "Tus-Extension", "Tus-Max-Size", "Upload-Offset",
    "Upload-Length", "Upload-Expires", "Upload-Metadata",
])
PREFLIGHT_MAX_AGE_SECONDS = 600


def parse_origins(value: str | tuple | list | None) -> frozenset[str]:
    """The allowed origins from a comma-separated string (or a sequence), each as scheme://host[:port].

    Raises ValueError for '*' (it cannot be combined with credentials) and for anything that is not an origin.
    """
    items = value.split(",") if isinstance(value, str) else list(value or ())
    origins = set()
    for item in (i.strip().rstrip("/") for i in items):
        if not item:
            continue
        if item == "*":
            raise ValueError("CORS_ALLOWED_ORIGINS cannot be '*': name the frontend's origins "
                             "(browsers refuse '*' on requests that carry credentials)")
        parts = urlsplit(item)
        if parts.scheme not in {"http", "https"} or not parts.hostname or parts.path or parts.query:
            raise ValueError(f"CORS_ALLOWED_ORIGINS: {item!r} is not an origin such as https://app.example.com")
        origins.add(f"{parts.scheme}://{parts.netloc}".lower())
    return frozenset(origins)


def init_cors(app: Flask) -> None:
    """Register before authentication: a preflight answered here never reaches it."""
    configured = app.config.get("CORS_ALLOWED_ORIGINS")
    origins = parse_origins(configured if configured is not None else app.config["CLERK_AUTHORIZED_PARTIES"])
    app.extensions["cors_origins"] = origins
    if not origins:
        return
    app.before_request(_answer_preflight)
    app.after_request(_add_cors_headers)


def _allowed_origin() -> str | None:
    origin = request.headers.get("Origin")
    return origin if origin and origin.lower() in current_app.extensions["cors_origins"] else None


def _answer_preflight() -> Response | None:
    if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers \
            or not request.path.startswith("/api/"):
        return None
    response = Response(status=204)
    if _allowed_origin():
        response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        # The origin is trusted, so whichever headers its scripts send (Authorization, tus's Upload-*) are fine.
        requested = request.headers.get("Access-Control-Request-Headers")
        if requested:
            response.headers["Access-Control-Allow-Headers"] = requested
        response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_SECONDS)
    return response


def _add_cors_headers(response: Response) -> Response:
    if not request.path.startswith("/api/"):
        return response
    # The answer differs by Origin, so a shared cache must not hand one origin's answer to another.
    response.vary.add("Origin")
    origin = _allowed_origin()
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    return response
