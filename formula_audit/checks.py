"""The built-in single-formula checks: facts in, findings out."""

from __future__ import annotations

from collections.abc import Iterable

from .analysis import FormulaFacts
from .codes import CODES
from .config import AuditConfig
from .findings import Finding, Severity
from .functions import (
    ALL_FUNCTIONS,
    ERROR_MASKING_FUNCTIONS,
    EXCEL_ONLY_FUNCTIONS,
    EXTERNAL_DATA_FUNCTIONS,
    SHEETS_ONLY_FUNCTIONS,
    USER_DEFINED_PREFIX,
    VOLATILE_FUNCTIONS,
)
from .parser import ParsedFormula
from .references import format_address

_ERROR_SEVERITY = {"#REF!": Severity.HIGH, "#N/A": Severity.LOW}
_ERROR_MEANING = {
    "#REF!": "a reference to deleted cells",
    "#DIV/0!": "a division by zero",
    "#NAME?": "an unrecognised name",
    "#N/A": "a 'not available' value",
    "#VALUE!": "a wrong type of value",
    "#NUM!": "an invalid number",
    "#NULL!": "an empty intersection",
    "#SPILL!": "a blocked spill range",
    "#CALC!": "a calculation error",
    "#GETTING_DATA": "data still loading",
}
_LOOKUP_SEVERITY = {
    "omitted": Severity.HIGH,
    "approximate": Severity.MEDIUM,
    "always": Severity.MEDIUM,
    "indeterminate": Severity.LOW,
    "next": Severity.INFO,
}
MAX_LISTED = 5


def join_names(items: Iterable[str]) -> str:
    """Return "A", "A and B" or "A, B and C" (at most MAX_LISTED items, then "and N more")."""
    items = list(dict.fromkeys(items))
    if len(items) > MAX_LISTED:
        items = [*items[:MAX_LISTED], f"{len(items) - MAX_LISTED} more"]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def is_allowed_constant(value: float, allowed: frozenset[float]) -> bool:
    """Tell whether `value` (compared by absolute value) is in `allowed`."""
    return abs(value) in allowed


def syntax_finding(parsed: ParsedFormula) -> Finding:
    """Return the SYNTAX_ERROR finding of a formula that did not parse."""
    position = parsed.error_position or 0
    # Report a 1-based position in the formula as typed, "=" included, which is what a user sees.
    shown = position + 1 + (1 if parsed.had_equals else 0)
    return Finding("SYNTAX_ERROR", Severity.CRITICAL, f"The formula does not parse: {parsed.error} (at character {shown}).")


def builtin_findings(
    parsed: ParsedFormula,
    facts: FormulaFacts,
    *,
    platform: str,
    config: AuditConfig,
    known_names: frozenset[str] = frozenset(),
) -> list[Finding]:
    """Run every built-in check that does not depend on the formula's position and return its findings.

    `known_names` are workbook-defined names (LAMBDA functions are called by name). The position-dependent
    check is `self_reference_findings`.
    """
    findings: list[Finding] = []
    add = findings.append
    called = list(dict.fromkeys(call.name for call in facts.calls))

    for code in dict.fromkeys(facts.errors):
        meaning = _ERROR_MEANING.get(code, "an error value")
        add(Finding("ERROR_LITERAL", _ERROR_SEVERITY.get(code, Severity.MEDIUM),
                    f"The formula contains the error value {code} ({meaning}); it will propagate to every cell "
                    "that uses this one."))

    unknown = [
        call.raw_name for call in facts.calls
        if call.raw_name.upper().startswith(USER_DEFINED_PREFIX)
        or (call.name not in ALL_FUNCTIONS and call.name not in facts.bound_names and call.name not in known_names)
    ]
    if unknown:
        add(Finding("UNKNOWN_FUNCTION", Severity.HIGH,
                    f"{join_names(dict.fromkeys(unknown))} is not an Excel or Google Sheets function "
                    "(misspelt, or an add-in / user-defined function); the cell will show #NAME?."))

    volatile = [name for name in called if name in VOLATILE_FUNCTIONS]
    if volatile:
        fragile = [name for name in volatile if name in ("OFFSET", "INDIRECT")]
        severity = Severity.MEDIUM if fragile else Severity.LOW
        extra = " and builds references from values, which breaks silently when rows or sheets move" if fragile else ""
        add(Finding("VOLATILE_FUNCTION", severity,
                    f"{join_names(volatile)} is volatile: it recalculates on every change in the workbook{extra}."))

    _constant_findings(facts, config, add)
    _lookup_findings(facts, add)

    whole = [ref.text for ref in facts.references if ref.kind in ("columns", "rows")]
    if whole:
        add(Finding("WHOLE_COLUMN_REFERENCE", Severity.LOW,
                    f"{join_names(whole)} refers to a whole column or row (over a million cells): slow to "
                    "calculate and silently includes anything typed below or beside the data."))

    masking = [name for name in called if name in ERROR_MASKING_FUNCTIONS]
    if masking:
        severity = Severity.LOW if masking == ["IFNA"] else Severity.MEDIUM
        add(Finding("ERROR_MASKING", severity,
                    f"{join_names(masking)} hides errors: a broken reference or a bad input produces a "
                    "plausible-looking value instead of an error."))

    if facts.if_depth > config.max_if_depth:
        add(Finding("NESTED_IF", Severity.MEDIUM,
                    f"IF functions are nested {facts.if_depth} deep (limit {config.max_if_depth}); use IFS, "
                    "a lookup table or SWITCH instead."))

    if facts.operations > config.max_operations:
        add(Finding("LONG_FORMULA", Severity.LOW,
                    f"The formula has {facts.operations} operations and function calls (limit "
                    f"{config.max_operations}); split it into helper cells so each step can be checked."))

    reference_count = facts.distinct_reference_count()
    if reference_count > config.max_references:
        add(Finding("MANY_REFERENCES", Severity.LOW,
                    f"The formula uses {reference_count} distinct references (limit {config.max_references}); "
                    "consider a range or a helper column."))

    _external_findings(facts, called, add)
    _division_findings(facts, add)
    _portability_findings(called, platform, add)

    if config.disabled_codes:
        findings = [finding for finding in findings if finding.code not in config.disabled_codes]
    return findings


def _constant_findings(facts: FormulaFacts, config: AuditConfig, add) -> None:
    flagged = [text for text, value in facts.constants if not is_allowed_constant(value, config.allowed_constants)]
    if not flagged:
        return
    flagged = list(dict.fromkeys(flagged))
    noun = "number" if len(flagged) == 1 else "numbers"
    add(Finding("HARDCODED_CONSTANT", CODES["HARDCODED_CONSTANT"][0],
                f"Hard-coded {noun} {join_names(flagged)} in the formula: put assumptions such as rates and "
                "thresholds in a labelled input cell and refer to it."))


def _lookup_findings(facts: FormulaFacts, add) -> None:
    for lookup in facts.lookups:
        name, mode = lookup.function, lookup.mode
        if mode == "omitted":
            which = "third" if name == "MATCH" else "fourth"
            default = "match_type" if name == "MATCH" else "range_lookup"
            exact = "0" if name == "MATCH" else "FALSE"
            message = (f"{name} has no {which} argument ({default}), so it defaults to an approximate match that "
                       f"returns a wrong row when the key is missing or the data unsorted; pass {exact}.")
        elif mode == "approximate":
            message = (f"{name} uses approximate match ({lookup.argument}); it is right only for sorted "
                       "bracket tables — use exact match otherwise.")
        elif mode == "always":
            message = "LOOKUP always uses approximate match on sorted data; use XLOOKUP or INDEX/MATCH with exact match."
        elif mode == "indeterminate":
            message = (f"{name}'s match mode comes from {lookup.argument}, so whether it matches exactly cannot be "
                       "verified; use FALSE / 0.")
        else:
            message = (f"{name} matches the next smaller or larger item ({lookup.argument}) when there is no "
                       "exact match; make sure that is intended.")
        add(Finding("APPROXIMATE_LOOKUP", _LOOKUP_SEVERITY[mode], message))


def _external_findings(facts: FormulaFacts, called: list[str], add) -> None:
    workbooks = [ref.workbook for ref in facts.references if ref.workbook is not None]
    workbooks += [name.workbook for name in facts.names if name.workbook is not None]
    if workbooks:
        add(Finding("EXTERNAL_REFERENCE", Severity.HIGH,
                    f"The formula links to another workbook ({join_names(workbooks)}); the link breaks when that "
                    "file moves and its values go stale when it is closed."))
    importers = [name for name in called if name in EXTERNAL_DATA_FUNCTIONS]
    if importers:
        severity = Severity.HIGH if "IMPORTRANGE" in importers else Severity.MEDIUM
        add(Finding("EXTERNAL_REFERENCE", severity,
                    f"{join_names(importers)} pulls data from outside this workbook; results depend on a source "
                    "you do not control."))


def _division_findings(facts: FormulaFacts, add) -> None:
    if facts.zero_divisions:
        add(Finding("DIVISION_UNGUARDED", Severity.HIGH, "The formula divides by a literal zero (#DIV/0!)."))
    if facts.unguarded_divisors:
        divisors = join_names(facts.unguarded_divisors)
        add(Finding("DIVISION_UNGUARDED", Severity.MEDIUM,
                    f"Division by {divisors} with no zero check: a zero or blank gives #DIV/0!; test it first, "
                    f"e.g. IF({facts.unguarded_divisors[0]}=0, 0, ...)."))


def _portability_findings(called: list[str], platform: str, add) -> None:
    if platform == "excel":
        missing = [name for name in called if name in SHEETS_ONLY_FUNCTIONS]
        where = "Google Sheets only; Excel shows #NAME?"
    else:
        missing = [name for name in called if name in EXCEL_ONLY_FUNCTIONS]
        where = "Excel only; Google Sheets cannot calculate it"
    if missing:
        add(Finding("NON_PORTABLE_FUNCTION", Severity.MEDIUM, f"{join_names(missing)} is {where}."))


def self_reference_findings(facts: FormulaFacts, cell: tuple[int, int], sheet: str | None) -> list[Finding]:
    """Return a SELF_REFERENCE finding when a formula at `cell` (row, column) of `sheet` reads its own cell.

    References to another sheet count only when `sheet` is known and matches; position-only uses such as
    ROW(C5) do not count.
    """
    row, column = cell
    for ref in facts.value_references:
        if ref.workbook is not None or ref.last_sheet is not None:
            continue
        if ref.sheet is not None and (sheet is None or ref.sheet.casefold() != sheet.casefold()):
            continue
        if ref.contains(row, column):
            address = format_address(row, column)
            how = "directly" if ref.kind == "cell" else f"through the range {ref.text}"
            return [Finding("SELF_REFERENCE", Severity.CRITICAL,
                            f"The formula in {address} refers to its own cell {how}: a circular reference.")]
    return []
