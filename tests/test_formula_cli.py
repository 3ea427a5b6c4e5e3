"""The `audit` click group, through click's CliRunner (no Flask app needed)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from openpyxl import Workbook

from formula_audit.cli import audit

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "quarterly_budget.xlsx"
JSON_KEYS = {"sheet", "cell", "formula", "code", "severity", "message"}


def run(*args: str):
    return CliRunner().invoke(audit, list(args), catch_exceptions=False)


def test_audit_is_a_plain_click_group_without_flask():
    assert isinstance(audit, click.Group) and audit.name == "audit"
    assert set(audit.commands) == {"formula", "workbook"}
    for source in (ROOT / "formula_audit").glob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert "import flask" not in text and "from flask" not in text, source.name


def test_formula_command_prints_a_table_and_exits_zero_with_findings():
    result = run("formula", "=VLOOKUP(A1,B:C,2)*1.07")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["Severity", "Code", "Message"]
    assert any(line.startswith("high") and "APPROXIMATE_LOOKUP" in line for line in lines)
    assert "HARDCODED_CONSTANT" in result.output and "Risk score:" in lines[-1]


def test_formula_command_without_findings():
    result = run("formula", "=SUM(A1:A3)")
    assert (result.exit_code, result.output) == (0, "No findings.\nRisk score: 0/100\n")


def test_formula_command_json_and_options():
    result = run("formula", "=C5+ARRAYFORMULA(A1:A3)", "--cell", "c5", "--platform", "sheets", "--json")
    rows = json.loads(result.output)
    assert result.exit_code == 0
    assert {row["code"] for row in rows} == {"SELF_REFERENCE"}  # ARRAYFORMULA is native in Sheets
    assert all(set(row) == JSON_KEYS and row["cell"] == "C5" for row in rows)


def test_formula_command_rejects_a_bad_cell():
    result = run("formula", "=A1", "--cell", "nowhere")
    assert result.exit_code != 0 and "cell address" in result.output


def test_workbook_command_json_lists_findings(tmp_path):
    result = run("workbook", str(SAMPLE), "--json")
    rows = json.loads(result.output)
    assert result.exit_code == 0 and rows
    assert all(set(row) == JSON_KEYS for row in rows)
    assert {"sheet": "Budget", "cell": "F5", "code": "INCONSISTENT_FORMULA"}.items() <= next(
        row for row in rows if row["code"] == "INCONSISTENT_FORMULA").items()


def test_workbook_command_table_and_summary():
    result = run("workbook", str(SAMPLE))
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["Sheet", "Cell", "Severity", "Code", "Formula", "Message"]
    assert lines[-1].startswith("26 formulas audited,") and "critical" in lines[-1]


def test_min_severity_filters(tmp_path):
    everything = json.loads(run("workbook", str(SAMPLE), "--json").output)
    serious = json.loads(run("workbook", str(SAMPLE), "--json", "--min-severity", "high").output)
    assert serious and len(serious) < len(everything)
    assert {row["severity"] for row in serious} <= {"high", "critical"}


def test_workbook_command_with_a_policy_file(tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"id": 9, "title": "Volatility", "rules": {"forbid_volatile": True}}))
    rows = json.loads(run("workbook", str(SAMPLE), "--json", "--policy", str(policy)).output)
    assert [(row["sheet"], row["cell"]) for row in rows if row["code"] == "POLICY_VIOLATION"] == [("Summary", "B2")]


@pytest.mark.parametrize("content", ['{"id": 1, "title": "x", "rules": {"nope": true}}', "not json", "[1]"])
def test_invalid_policy_file_fails_cleanly(tmp_path, content):
    policy = tmp_path / "policy.json"
    policy.write_text(content)
    result = run("formula", "=A1", "--policy", str(policy))
    assert result.exit_code == 1 and "policy file" in result.output


def test_unreadable_workbook_exits_non_zero(tmp_path):
    bad = tmp_path / "bad.xlsx"
    bad.write_text("this is not a workbook")
    result = run("workbook", str(bad))
    assert result.exit_code == 1 and "not a readable .xlsx workbook" in result.output
    missing = run("workbook", str(tmp_path / "missing.xlsx"))
    assert missing.exit_code == 1 and "no such file" in missing.output


def test_workbook_without_formulas(tmp_path):
    book = Workbook()
    book.active["A1"] = 1
    path = tmp_path / "plain.xlsx"
    book.save(path)
    result = run("workbook", str(path))
    assert (result.exit_code, result.output) == (0, "0 formulas audited, 0 findings.\n")
