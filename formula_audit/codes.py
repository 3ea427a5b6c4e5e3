"""The finding codes: each one's default severity and what it means, in one table."""

from __future__ import annotations

from .findings import Severity

# code -> (default severity, one-line meaning). Where a code's severity depends on the case (e.g. an omitted
# VLOOKUP argument is worse than an explicit TRUE) the check picks it and this is the usual one.
CODES: dict[str, tuple[Severity, str]] = {
    "SYNTAX_ERROR": (Severity.CRITICAL, "the formula does not parse (unbalanced parentheses, missing operand...)"),
    "ERROR_LITERAL": (Severity.HIGH, "an error value such as #REF! or #DIV/0! written into the formula"),
    "UNKNOWN_FUNCTION": (Severity.HIGH, "a function neither Excel nor Google Sheets knows (#NAME? when calculated)"),
    "SELF_REFERENCE": (Severity.CRITICAL, "the formula reads its own cell, directly or through a circular chain"),
    "EXTERNAL_REFERENCE": (Severity.HIGH, "a link to another workbook or an import of outside data"),
    "APPROXIMATE_LOOKUP": (Severity.HIGH, "VLOOKUP/HLOOKUP/MATCH without exact match, or LOOKUP"),
    "DIVISION_UNGUARDED": (Severity.MEDIUM, "division by a cell or total that may be zero, with no zero test"),
    "INCONSISTENT_FORMULA": (Severity.HIGH, "the formula differs from the matching formulas on both sides of it"),
    "RANGE_OMITS_ADJACENT": (Severity.HIGH, "a SUM-like range stops one cell short of adjacent numbers"),
    "ERROR_MASKING": (Severity.MEDIUM, "IFERROR/ISERROR/IFNA hide errors instead of fixing them"),
    "HARDCODED_CONSTANT": (Severity.MEDIUM, "a number typed into the formula instead of an input cell"),
    "VOLATILE_FUNCTION": (Severity.LOW, "a function recalculated on every change (TODAY, OFFSET, INDIRECT...)"),
    "NESTED_IF": (Severity.MEDIUM, "IFs nested deeper than the configured limit"),
    "NON_PORTABLE_FUNCTION": (Severity.MEDIUM, "a function the other platform (Excel / Google Sheets) lacks"),
    "WHOLE_COLUMN_REFERENCE": (Severity.LOW, "a whole column or row (A:A, 1:1), slow and prone to pick up stray data"),
    "LONG_FORMULA": (Severity.LOW, "more operations and calls than the configured limit"),
    "MANY_REFERENCES": (Severity.LOW, "more distinct references than the configured limit"),
    "NOT_A_FORMULA": (Severity.INFO, "text without '=' that is a plain value, so there is nothing to audit"),
    "POLICY_VIOLATION": (Severity.HIGH, "breaks a rule of an organization policy"),
}
