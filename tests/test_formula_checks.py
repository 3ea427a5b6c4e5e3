"""The single-formula checks: exact codes for a table of formulas, messages, severities, config, risk score."""

from __future__ import annotations

import pytest

from formula_audit import (
    CODES,
    AuditConfig,
    Finding,
    InputError,
    Severity,
    audit_formula,
    risk_score,
    worst_severity,
)
from tests.formula_cases import CASES, PLATFORM_CASES


def codes_of(formula: str, **options) -> set[str]:
    return {finding.code for finding in audit_formula(formula, **options)}


def test_the_case_table_is_large_and_covers_every_single_formula_code():
    assert len(CASES) >= 150
    covered = set().union(*(expected for _, expected, _ in CASES))
    grid_only = {"SELF_REFERENCE", "INCONSISTENT_FORMULA", "RANGE_OMITS_ADJACENT", "POLICY_VIOLATION"}
    assert covered == set(CODES) - grid_only


@pytest.mark.parametrize(("formula", "expected", "why"), CASES, ids=[f"{i}:{c[0][:40]}" for i, c in enumerate(CASES)])
def test_formula_yields_exactly_the_expected_codes(formula, expected, why):
    assert codes_of(formula) == expected, why


@pytest.mark.parametrize(("formula", "platform", "expected"), PLATFORM_CASES)
def test_portability_depends_on_the_platform(formula, platform, expected):
    assert codes_of(formula, platform=platform) == expected


@pytest.mark.parametrize(("formula", "code", "named"), [
    ("=A1*1.07", "HARDCODED_CONSTANT", "1.07"),
    ("=A1*20%", "HARDCODED_CONSTANT", "20%"),
    ("=A1*-0.15", "HARDCODED_CONSTANT", "-0.15"),
    ("=TODAY()-A1", "VOLATILE_FUNCTION", "TODAY"),
    ("=SUMM(A1:A3)", "UNKNOWN_FUNCTION", "SUMM"),
    ("=A1/B7", "DIVISION_UNGUARDED", "B7"),
    ("=A1/SUM(C:C)", "DIVISION_UNGUARDED", "SUM(C:C)"),
    ("=VLOOKUP(A1,D2:F9,3)", "APPROXIMATE_LOOKUP", "VLOOKUP"),
    ("=MATCH(A1,D2:D9,1)", "APPROXIMATE_LOOKUP", "MATCH"),
    ("=[Book.xlsx]Sheet1!A1", "EXTERNAL_REFERENCE", "Book.xlsx"),
    ("=SUM(A1,#DIV/0!)", "ERROR_LITERAL", "#DIV/0!"),
    ("=IFERROR(A1,0)", "ERROR_MASKING", "IFERROR"),
    ("=SUM(Data!B:B)", "WHOLE_COLUMN_REFERENCE", "Data!B:B"),
    ("=QUERY(A1:B9,\"select A\")", "NON_PORTABLE_FUNCTION", "QUERY"),
    ("=IF(A1,IF(A2,IF(A3,IF(A4,\"x\",\"\"),\"\"),\"\"),\"\")", "NESTED_IF", "4 deep"),
    ("=SUM(A1", "SYNTAX_ERROR", "never closed"),
])
def test_messages_name_what_is_wrong(formula, code, named):
    messages = [finding.message for finding in audit_formula(formula) if finding.code == code]
    assert messages and named in messages[0]


@pytest.mark.parametrize(("formula", "severity"), [
    ("=VLOOKUP(A1,D2:F9,3)", Severity.HIGH),  # omitted: silently approximate
    ("=VLOOKUP(A1,D2:F9,3,TRUE)", Severity.MEDIUM),  # explicit: probably a bracket table
    ("=VLOOKUP(A1,D2:F9,3,G1)", Severity.LOW),  # cannot tell
    ("=XLOOKUP(A1,D2:D9,F2:F9,,1)", Severity.INFO),  # deliberate next-larger match
])
def test_lookup_severity_follows_how_risky_the_match_mode_is(formula, severity):
    [finding] = [f for f in audit_formula(formula) if f.code == "APPROXIMATE_LOOKUP"]
    assert finding.severity == severity


def test_findings_come_worst_first_with_builtin_policy_none():
    findings = audit_formula("=IFERROR(VLOOKUP(A1,Rates!A:B,2)*1.2,0)+#REF!")
    severities = [finding.severity for finding in findings]
    assert severities == sorted(severities, reverse=True)
    assert all(finding.policy is None for finding in findings)


def test_finding_to_dict_is_json_ready():
    finding = audit_formula("=A1*1.07")[0]
    assert finding.to_dict() == {"code": "HARDCODED_CONSTANT", "severity": "medium", "message": finding.message,
                                 "policy": None, "rule": None}


def test_severities_are_ordered_and_parse_from_labels():
    assert Severity.INFO < Severity.LOW < Severity.MEDIUM < Severity.HIGH < Severity.CRITICAL
    assert Severity.parse("High") is Severity.HIGH
    assert [s.label for s in Severity] == ["info", "low", "medium", "high", "critical"]
    with pytest.raises(ValueError, match="unknown severity"):
        Severity.parse("severe")


def test_allowed_constants_are_configurable():
    config = AuditConfig(allowed_constants={0, 1, 0.2})
    assert codes_of("=A1*0.2", config=config) == set()
    assert codes_of("=A1*12", config=config) == {"HARDCODED_CONSTANT"}  # no longer in the allow-list


def test_thresholds_are_configurable():
    assert codes_of("=IF(A1,IF(A2,\"a\",\"b\"),\"c\")", config=AuditConfig(max_if_depth=1)) == {"NESTED_IF"}
    assert codes_of("=A1+B1+C1", config=AuditConfig(max_operations=1)) == {"LONG_FORMULA"}
    assert codes_of("=A1+B1+C1", config=AuditConfig(max_operations=2)) == set()  # two operations is the limit
    assert codes_of("=A1+B1+C1", config=AuditConfig(max_references=2)) == {"MANY_REFERENCES"}
    assert codes_of("=A1+A1+$A$1", config=AuditConfig(max_references=1)) == set()  # one distinct cell


def test_codes_can_be_disabled():
    config = AuditConfig(disabled_codes={"HARDCODED_CONSTANT", "SYNTAX_ERROR"})
    assert codes_of("=A1*1.07/B1", config=config) == {"DIVISION_UNGUARDED"}
    assert codes_of("=SUM(", config=config) == set()


@pytest.mark.parametrize("bad", [{"max_if_depth": -1}, {"max_operations": "many"}, {"max_references": True}])
def test_invalid_config_values_raise_input_error(bad):
    with pytest.raises(InputError):
        AuditConfig(**bad)


@pytest.mark.parametrize(("formula", "cell", "sheet", "expected"), [
    ("=SUM(C1:C10)", "C5", None, True),
    ("=C5+1", "C5", None, True),
    ("=SUM(C:C)", "C5", None, True),
    ("=SUM(C1:C4)", "C5", None, False),
    ("=SUM(C1:C10)", "D5", None, False),
    ("=ROW(C5)", "C5", None, False),  # position only, no cycle
    ("=COLUMNS(A5:Z5)", "C5", None, False),
    ("=Sheet2!C5", "C5", "Sheet1", False),
    ("=Sheet2!C5", "C5", "Sheet2", True),
    ("=sheet2!C5", "C5", "Sheet2", True),  # sheet names compare without case
    ("=Sheet2!C5", "C5", None, False),  # own sheet unknown: cannot tell
    ("=[Book.xlsx]Sheet1!C5", "C5", "Sheet1", False),
    ("=$C$5*2", "$C$5", None, True),
])
def test_self_reference_needs_the_cell(formula, cell, sheet, expected):
    codes = codes_of(formula, cell=cell, sheet=sheet)
    assert ("SELF_REFERENCE" in codes) == expected
    assert "SELF_REFERENCE" not in codes_of(formula)


@pytest.mark.parametrize("cell", ["C", "5C", "XFE1", "A0", "A1:B2", ""])
def test_bad_cell_raises_input_error(cell):
    with pytest.raises(InputError, match="cell address|outside"):
        audit_formula("=A1", cell=cell)


def test_bad_platform_raises_input_error():
    with pytest.raises(InputError, match="platform"):
        audit_formula("=A1", platform="numbers")
    assert codes_of("=ARRAYFORMULA(A1:A3)", platform=" Sheets ") == set()


def test_formula_must_be_text():
    with pytest.raises(InputError):
        audit_formula(42)


def test_not_a_formula_is_only_information():
    [finding] = audit_formula("1234.5")
    assert (finding.code, finding.severity) == ("NOT_A_FORMULA", Severity.INFO)
    assert risk_score([finding]) == 0


def _finding(severity: Severity) -> Finding:
    return Finding("X", severity, "x")


def test_risk_score_formula():
    assert risk_score([]) == 0
    assert risk_score([_finding(Severity.CRITICAL)]) == 60
    assert risk_score([_finding(Severity.HIGH)] * 2) == round(100 * (1 - 0.65 ** 2))
    assert risk_score([_finding(Severity.CRITICAL)] * 50) == 100
    assert risk_score([_finding(Severity.INFO)] * 10) == 0


def test_risk_score_never_decreases_when_a_finding_is_added():
    findings: list[Finding] = []
    previous = 0
    for severity in [Severity.LOW, Severity.INFO, Severity.MEDIUM, Severity.HIGH, Severity.LOW, Severity.CRITICAL]:
        findings.append(_finding(severity))
        score = risk_score(findings)
        assert previous <= score <= 100
        previous = score


def test_worst_severity():
    assert worst_severity([]) is None
    assert worst_severity(audit_formula("=A1/B1+#REF!")) == Severity.HIGH


def test_every_code_has_a_default_severity_and_meaning():
    for code, (severity, meaning) in CODES.items():
        assert code.isupper() and isinstance(severity, Severity) and meaning


def test_percent_literals_compare_exactly_with_the_allow_list():
    for percent in ("7%", "15%", "2.5%"):
        value = float(percent[:-1]) / 100
        assert codes_of(f"=A1*{percent}", config=AuditConfig(allowed_constants={value})) == set()
        assert codes_of(f"=A1*{percent}") == {"HARDCODED_CONSTANT"}
