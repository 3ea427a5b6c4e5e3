"""Structured logging: one JSON object a line (LOG_FORMAT=json, the default) or plain text for a terminal.

Every record carries the request id when there is one. Nothing here logs headers, bodies, tokens or URLs with
query strings, so secrets cannot reach the logs through this module.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from datetime import datetime, timezone

from flask import Flask, g, has_request_context, request

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Attributes every LogRecord has; anything else was passed through `extra=` and belongs in the JSON.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id") if has_request_context() else None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "request_id", None):
            entry["request_id"] = record.request_id
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(app: Flask) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if app.config["LOG_FORMAT"] == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    # create_app may run more than once in a process (tests): replace our handler rather than stacking copies.
    for old in [h for h in root.handlers if getattr(h, "_sheetbrain", False)]:
        root.removeHandler(old)
    handler._sheetbrain = True
    root.addHandler(handler)
    root.setLevel(app.config["LOG_LEVEL"])

    @app.before_request
    def assign_request_id() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex

    @app.after_request
    def echo_request_id(response):
        if g.get("request_id"):
            response.headers["X-Request-ID"] = g.request_id
        return response
