"""The `audit` command group (click only): `audit formula "=..."` and `audit workbook FILE.xlsx`.

The Flask app registers it with `app.cli.add_command(audit)`, giving `flask audit formula` and
`flask audit workbook`. Exit status 0 when the audit ran, findings or not; 1 when the input cannot be read
(missing or invalid workbook, invalid policy file).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

import click

from .audit import audit_formula
from .errors import PolicyError, WorkbookError
from .findings import FormulaResult, Severity, risk_score
from .policy import Policy
from .workbook import audit_workbook

_JSON_KEYS = ("sheet", "cell", "formula", "code", "severity", "message")
_FORMULA_WIDTH = 40

_platform_option = click.option(
    "--platform", type=click.Choice(["excel", "sheets"]), default="excel", show_default=True,
    help="Spreadsheet the formulas are written for (decides which functions are non-portable).")
_json_option = click.option("--json", "as_json", is_flag=True, help="Print findings as a JSON array.")
_policy_option = click.option(
    "--policy", "policy_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
    help='JSON file with a policy {"id", "title", "rules"} (or a list of them); repeatable.')
_severity_option = click.option(
    "--min-severity", type=click.Choice([s.label for s in Severity]), default="info", show_default=True,
    help="Leave out findings below this severity.")


def _load_policies(paths: Sequence[str]) -> list[Policy]:
    policies: list[Policy] = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            for item in data if isinstance(data, list) else [data]:
                if not isinstance(item, dict) or not {"id", "title", "rules"} <= set(item):
                    raise PolicyError('a policy file holds {"id", "title", "rules"} or a list of them')
                policies.append(Policy(item["id"], str(item["title"]), item["rules"]))
        except (OSError, ValueError) as exc:  # json.JSONDecodeError and PolicyError are ValueErrors
            raise click.ClickException(f"policy file {path}: {exc}") from exc
    return policies


def _rows(results: Sequence[FormulaResult], minimum: Severity) -> list[dict]:
    return [
        {key: row[key] for key in _JSON_KEYS}
        for result in results
        for row in result.flat_findings()
        if Severity.parse(row["severity"]) >= minimum
    ]


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(rows: list[dict], columns: Sequence[str]) -> str:
    """Render rows as an aligned plain-text table; the last column is not padded."""
    headers = [column.capitalize() for column in columns]
    cells = [[("" if row[c] is None else str(row[c])) for c in columns] for row in rows]
    widths = [max(len(headers[i]), *(len(line[i]) for line in cells)) for i in range(len(columns))]
    lines = []
    for line in [headers, *cells]:
        padded = [value.ljust(widths[i]) for i, value in enumerate(line[:-1])]
        lines.append("  ".join([*padded, line[-1]]).rstrip())
    return "\n".join(lines)


def _summary(rows: list[dict], formulas: int) -> str:
    counts = Counter(row["severity"] for row in rows)
    parts = [f"{counts[s.label]} {s.label}" for s in sorted(Severity, reverse=True) if counts[s.label]]
    detail = f" ({', '.join(parts)})" if parts else ""
    noun = "formula" if formulas == 1 else "formulas"
    return f"{formulas} {noun} audited, {len(rows)} finding{'s' if len(rows) != 1 else ''}{detail}."


@click.group(name="audit")
def audit() -> None:
    """Audit spreadsheet formulas for risks and policy breaches."""


@audit.command("formula")
@click.argument("formula")
@click.option("--cell", help="The formula's cell (e.g. C5), which enables the self-reference check.")
@_platform_option
@_json_option
@_policy_option
@_severity_option
def audit_formula_command(formula: str, cell: str | None, platform: str, as_json: bool,
                          policy_files: Sequence[str], min_severity: str) -> None:
    """Audit one FORMULA, e.g.  audit formula "=VLOOKUP(A2,Prices!A:B,2)"."""
    policies = _load_policies(policy_files)
    try:
        findings = audit_formula(formula, cell=cell, platform=platform, policies=policies)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    result = FormulaResult(formula, tuple(findings), cell.upper() if cell else None)
    rows = _rows([result], Severity.parse(min_severity))
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if rows:
        click.echo(_table(rows, ("severity", "code", "message")))
    else:
        click.echo("No findings.")
    click.echo(f"Risk score: {risk_score(findings)}/100")


@audit.command("workbook")
@click.argument("path", type=click.Path(dir_okay=False))
@_platform_option
@_json_option
@_policy_option
@_severity_option
def audit_workbook_command(path: str, platform: str, as_json: bool, policy_files: Sequence[str],
                           min_severity: str) -> None:
    """Audit every formula on every sheet of the workbook at PATH (.xlsx or .xlsm)."""
    policies = _load_policies(policy_files)
    try:
        results = audit_workbook(path, platform=platform, policies=policies)
    except WorkbookError as exc:
        raise click.ClickException(f"{path}: {exc}") from exc
    rows = _rows(results, Severity.parse(min_severity))
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if rows:
        shown = [{**row, "formula": _shorten(row["formula"], _FORMULA_WIDTH)} for row in rows]
        click.echo(_table(shown, ("sheet", "cell", "severity", "code", "formula", "message")))
        click.echo()
    click.echo(_summary(rows, len(results)))
