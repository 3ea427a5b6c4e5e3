"""Named SQL queries loaded from `sql/<area>/*.sql`.

A file holds one or more queries, each introduced by a `-- name: verb_object` line and a doc comment:

    -- name: get_policy_by_id
    -- One policy of the current organization, or no row.
    SELECT ... WHERE organization_id = %(organization_id)s AND id = %(id)s;

Callers pass their own connection, so they own the transaction: `conn.execute(q.policies.get_policy_by_id, params)`.
Each query text starts with a comment naming it and its file, which makes pg_stat_statements and slow-query logs
readable. Everything is loaded once at import: a duplicated or missing name fails at start-up, not mid-request.
"""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

SQL_ROOT = Path(__file__).resolve().parent / "sql"
# Migrations and function definitions are applied by migrations.py, not called by name.
NOT_QUERY_AREAS = {"migrations", "functions"}
_NAME_LINE = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


class Query(str):
    """The SQL text of one named query; `name` and `doc` say which one it is."""

    name: str
    doc: str

    def __new__(cls, text: str, name: str, doc: str) -> Query:
        query = super().__new__(cls, text)
        query.name = name
        query.doc = doc
        return query


def parse_query_file(path: Path, label: str) -> dict[str, Query]:
    """Split one .sql file into its named queries; raises ValueError on a nameless or duplicated query."""
    text = path.read_text()
    matches = list(_NAME_LINE.finditer(text))
    if not matches or text[: matches[0].start()].strip("\n -\t").strip():
        raise ValueError(f"{label}: every query must start with a '-- name:' line")
    queries: dict[str, Query] = {}
    for index, match in enumerate(matches):
        name = match.group(1)
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        body = text[match.end() : end].strip()
        doc_lines = []
        for line in body.splitlines():
            if not line.startswith("--"):
                break
            doc_lines.append(line.lstrip("- ").strip())
        if name in queries:
            raise ValueError(f"{label}: query {name!r} is defined twice")
        if not body or all(line.startswith("--") for line in body.splitlines()):
            raise ValueError(f"{label}: query {name!r} has no SQL")
        queries[name] = Query(f"-- {name} ({label})\n{body}", name, " ".join(doc_lines))
    return queries


def load_queries(root: Path = SQL_ROOT) -> SimpleNamespace:
    """Load every area under `root` as `namespace.<area>.<query_name>`."""
    areas = {}
    for area_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in NOT_QUERY_AREAS):
        area: dict[str, Query] = {}
        for path in sorted(area_dir.glob("*.sql")):
            for name, query in parse_query_file(path, f"sql/{area_dir.name}/{path.name}").items():
                if name in area:
                    raise ValueError(f"sql/{area_dir.name}: query {name!r} is defined in two files")
                area[name] = query
        areas[area_dir.name] = SimpleNamespace(**area)
    return SimpleNamespace(**areas)


q = load_queries()
