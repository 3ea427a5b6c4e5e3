"""One error hierarchy, rendered as JSON in one place.

Every error response has the shape {"error": {"code", "message", "details", "request_id"}}. Views raise ApiError
subclasses; werkzeug's HTTP errors, marshmallow's ValidationError and database outages are translated here. A 500
logs its cause with the request id and tells the client nothing more than that id.
"""
from __future__ import annotations

import logging
import re
from uuid import UUID

import psycopg
from flask import Flask, g, jsonify
from marshmallow import ValidationError
from psycopg_pool import PoolTimeout
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the client should see: an HTTP status, a stable code, a message and optional details."""

    status = 500
    code = "internal_error"
    message = "Something went wrong on our side."

    def __init__(self, message: str | None = None, *, details=None, code: str | None = None,
                 status: int | None = None, headers: dict | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details
        self.code = code or self.code
        self.status = status or self.status
        self.headers = headers or {}

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "details": self.details,
                "request_id": g.get("request_id")}


class BadRequest(ApiError):
    status, code, message = 400, "bad_request", "The request could not be understood."


class Unauthorized(ApiError):
    status, code, message = 401, "unauthorized", "Authentication is required."


class PaymentRequired(ApiError):
    status, code, message = 402, "quota_exceeded", "The plan's quota is used up."


class Forbidden(ApiError):
    status, code, message = 403, "forbidden", "You are not allowed to do this."


class NotFound(ApiError):
    status, code, message = 404, "not_found", "The resource does not exist."


def uuid_or_404(raw: str, noun: str) -> UUID:
    """The UUID in a URL. Raises NotFound for anything else: to the client, a malformed id is just a `noun` that
    does not exist."""
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound(f"The {noun} does not exist.") from None


class Conflict(ApiError):
    status, code, message = 409, "conflict", "The resource already exists."


class PayloadTooLarge(ApiError):
    status, code, message = 413, "payload_too_large", "The request body is too large."


class UnsupportedMediaType(ApiError):
    status, code, message = 415, "unsupported_media_type", "The content type is not accepted here."


class ValidationFailed(ApiError):
    status, code, message = 422, "validation_failed", "The request body is not valid."


class TooManyRequests(ApiError):
    status, code, message = 429, "rate_limited", "Too many requests."


class ServiceUnavailable(ApiError):
    status, code, message = 503, "service_unavailable", "The service is not available right now."


class StorageUnavailable(ServiceUnavailable):
    """The storage backend (a disk, Supabase) failed: an outage the client may retry, not a bug."""

    code, message = "storage_unavailable", "File storage is not available right now; try again shortly."

    def __init__(self, message: str | None = None, **kwargs) -> None:
        kwargs.setdefault("headers", {"Retry-After": "5"})
        super().__init__(message, **kwargs)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def render(error: ApiError):
    response = jsonify({"error": error.to_dict()})
    response.status_code = error.status
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, render)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code == 413:
            # werkzeug's refusal of an oversized body, in the words our own size checks use.
            return render(PayloadTooLarge())
        error = ApiError(exc.description, code=_snake(type(exc).__name__), status=exc.code)
        response = render(error)
        if exc.code == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(ValidationError)
    def validation_error(exc: ValidationError):
        return render(ValidationFailed(details=exc.normalized_messages()))

    @app.errorhandler(PoolTimeout)
    @app.errorhandler(psycopg.OperationalError)
    def database_unavailable(exc: Exception):
        log.error("database unavailable: %s", type(exc).__name__)
        return render(ServiceUnavailable("The database is not reachable; try again shortly.",
                                         code="database_unavailable", headers={"Retry-After": "5"}))

    @app.errorhandler(UnicodeEncodeError)
    @app.errorhandler(psycopg.DataError)
    def unstorable_value(exc: Exception):
        # The request checks catch NUL characters and lone surrogates up front; this is the net behind them, for a
        # value the database still refuses (text it cannot encode, a number out of range).
        log.warning("unstorable value: %s", type(exc).__name__)
        return render(ValidationFailed("A value in the request cannot be stored.", code="invalid_value"))

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        log.exception("unhandled error")
        return render(ApiError())
