"""Monthly audit quotas: counting audits against the plan, atomically, through increment_audit_usage()."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import psycopg

from errors import PaymentRequired
from queries import q


@dataclass(frozen=True, slots=True)
class Usage:
    month: date
    used: int
    limit: int | None  # None: unlimited
    resets_at: datetime

    def to_dict(self) -> dict:
        return {"month": self.month.strftime("%Y-%m"), "used": self.used, "limit": self.limit,
                "resets_at": self.resets_at.isoformat()}


def charge_audits(conn: psycopg.Connection, organization_id, count: int) -> Usage:
    """Count `count` audits for this month in the caller's transaction; they are uncounted if it rolls back.

    Raises PaymentRequired (402) naming the limit and the reset date when they do not fit in the plan's quota;
    then nothing is counted.
    """
    row = conn.execute(q.billing.increment_audit_usage, {"organization_id": organization_id, "count": count}).fetchone()
    usage = Usage(row["month_year"], row["used"], row["quota"], row["resets_at"])
    if not row["allowed"]:
        raise _over_quota(usage, count)
    return usage


def require_audits_left(conn: psycopg.Connection, organization_id, count: int) -> None:
    """Fail early, before any work, when `count` audits no longer fit this month; counts nothing.

    Only a courtesy: charge_audits decides, atomically, once the work is done. Raises PaymentRequired (402).
    """
    row = conn.execute(q.billing.get_audit_usage, {"organization_id": organization_id}).fetchone()
    usage = Usage(row["month_year"], row["used"], row["quota"], row["resets_at"])
    if usage.limit is not None and usage.used + count > usage.limit:
        raise _over_quota(usage, count)


def _over_quota(usage: Usage, count: int) -> PaymentRequired:
    left = max(0, (usage.limit or 0) - usage.used)
    return PaymentRequired(
        f"This audit needs {count} of the monthly quota of {usage.limit} audits and {left} are left; the quota "
        f"resets on {usage.resets_at.date().isoformat()}. Upgrade the plan for more.",
        details=usage.to_dict())
