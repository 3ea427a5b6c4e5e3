"""Formula audit engine: finds risky spreadsheet formulas (Excel and Google Sheets) and policy breaches.

Pure Python, deterministic and offline. The public API:

    audit_formula(formula, *, cell=None, sheet=None, platform="excel", config=None, policies=()) -> list[Finding]
    audit_formulas(items, *, platform="excel", config=None, policies=(), sheet=None) -> list[FormulaResult]
    audit_workbook(path_or_file, *, platform="excel", config=None, policies=()) -> list[FormulaResult]
    rules_from_prose(text) -> list[ExtractedRule];  merge_rules(extracted) -> dict
    validate_rules(rules) -> dict;  Policy(id, title, rules)
    risk_score(findings) -> int (0-100)
    parse_formula(text) -> ParsedFormula (the tree, for callers that want it)

Errors (all FormulaAuditError): InputError for bad arguments and PolicyError for bad policy rules, both also
ValueErrors; WorkbookError for a file that is not a readable workbook. Formula text itself never raises: it
yields findings.
"""

from .audit import audit_formula, audit_formulas
from .codes import CODES
from .config import DEFAULT_ALLOWED_CONSTANTS, AuditConfig
from .errors import FormulaAuditError, InputError, PolicyError, TooManyFormulas, WorkbookError
from .findings import (
    Finding,
    FormulaResult,
    PolicyRef,
    Severity,
    risk_score,
    worst_severity,
)
from .parser import ParsedFormula, parse_formula
from .policy import RULES, Policy, validate_rules
from .prose import ExtractedRule, merge_rules, rules_from_prose
from .workbook import audit_workbook

__all__ = [
    "CODES",
    "DEFAULT_ALLOWED_CONSTANTS",
    "RULES",
    "AuditConfig",
    "ExtractedRule",
    "Finding",
    "FormulaAuditError",
    "FormulaResult",
    "InputError",
    "ParsedFormula",
    "Policy",
    "PolicyError",
    "PolicyRef",
    "Severity",
    "TooManyFormulas",
    "WorkbookError",
    "audit_formula",
    "audit_formulas",
    "audit_workbook",
    "merge_rules",
    "parse_formula",
    "risk_score",
    "rules_from_prose",
    "validate_rules",
    "worst_severity",
]
