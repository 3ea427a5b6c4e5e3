"""JSON responses with ISO 8601 times, not Flask's default HTTP-date format, which frontends cannot sort."""
from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from flask.json.provider import DefaultJSONProvider


class IsoJsonProvider(DefaultJSONProvider):
    @staticmethod
    def default(value):
        if isinstance(value, (datetime, date)):
            return value.isoformat()
        if isinstance(value, UUID):
            return str(value)
        return DefaultJSONProvider.default(value)
