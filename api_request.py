"""The request class every view sees: JSON problems become our 400, and text PostgreSQL cannot store is refused
before any view runs.

PostgreSQL text cannot hold NUL characters, and a lone UTF-16 surrogate (legal in JSON's \\ud800 escapes) cannot
be encoded at all; either would otherwise fail deep in a query as a 500.
"""
from __future__ import annotations

import re
import sys

from flask import Flask, Request, request

from errors import BadRequest, ValidationFailed

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable_text(value) -> bool:
    """True when `value` (a string, or lists and dicts of them, keys included) holds text PostgreSQL cannot store."""
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, dict):
        return any(unstorable_text(k) or unstorable_text(v) for k, v in value.items())
    if isinstance(value, list):
        return any(unstorable_text(item) for item in value)
    return False


def refuse_unstorable(value, where: str) -> None:
    """Raises ValidationFailed (422) when `value` holds a NUL character or a lone surrogate."""
    if unstorable_text(value):
        raise ValidationFailed(f"The {where} contains a NUL character or an unpaired surrogate, which cannot be stored.",
                               code="invalid_text")


class ApiRequest(Request):
    def on_json_loading_failed(self, e: ValueError | None):
        if e is None:  # the body is not declared as JSON at all
            return super().on_json_loading_failed(e)
        raise BadRequest("The request body is not valid JSON.", code="malformed_json")

    def get_json(self, *args, **kwargs):
        """As Flask's, and raises BadRequest for JSON nested too deeply to parse, ValidationFailed for text that
        cannot be stored."""
        try:
            data = super().get_json(*args, **kwargs)
        except RecursionError:
            raise BadRequest("The request body is nested too deeply.", code="malformed_json") from None
        refuse_unstorable(data, "request body")
        return data


def truthy(value: str | None) -> bool:
    """A yes/no flag from a query parameter or header: 1, true or yes (any case) say yes."""
    return (value or "").strip().lower() in {"1", "true", "yes"}


def lift_body_limit() -> None:
    """Lets this request's body run past MAX_CONTENT_LENGTH, for a view that bounds it itself while streaming.

    Flask reads None here as "use the app-wide limit", so the way to lift it is a limit nothing reaches.
    """
    request.max_content_length = sys.maxsize


def init_api_request(app: Flask) -> None:
    app.request_class = ApiRequest

    @app.before_request
    def refuse_unstorable_query() -> None:
        refuse_unstorable(list(request.args.values()), "query string")
