"""The public entry points for formulas given as text: one formula, or a list of formulas with their cells.

Text without a leading "=" is audited as a formula too ("SUM(A1:A3)"), except a bare value — a number, a quoted
string, TRUE/FALSE or a single word — which yields one NOT_A_FORMULA finding (severity info) and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .analysis import FormulaFacts, analyze
from .checks import builtin_findings, self_reference_findings, syntax_finding
from .config import DEFAULT_CONFIG, AuditConfig, check_platform
from .errors import InputError
from .findings import Finding, FormulaResult, Severity
from .grid import GridEntry, circular_findings, fingerprint, inconsistent_findings
from .nodes import Boolean, Name, Number, Text
from .parser import ParsedFormula, parse_formula
from .policy import Policy, policy_findings
from .references import parse_address

_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Analysis:
    """A formula's parse, its facts (None when it does not parse) and its position-independent findings."""

    parsed: ParsedFormula
    facts: FormulaFacts | None
    findings: tuple[Finding, ...]


def coerce_policies(policies: Iterable[Policy | Mapping]) -> tuple[Policy, ...]:
    """Return `policies` as Policy objects; a mapping needs "id", "title" and "rules".

    Raises PolicyError for invalid rules and InputError for a mapping missing a key (both ValueErrors).
    """
    result = []
    for policy in policies:
        if isinstance(policy, Policy):
            result.append(policy)
        elif isinstance(policy, Mapping):
            missing = {"id", "title", "rules"} - set(policy)
            if missing:
                raise InputError(f"a policy needs id, title and rules; missing {', '.join(sorted(missing))}")
            result.append(Policy(policy["id"], str(policy["title"]), policy["rules"]))
        else:
            raise InputError(f"a policy must be a Policy or a mapping, not {type(policy).__name__}")
    return tuple(result)


def _is_bare_value(parsed: ParsedFormula) -> bool:
    return not parsed.had_equals and isinstance(parsed.tree, Number | Text | Boolean | Name)


class FormulaAuditor:
    """Audits formulas one at a time with fixed settings; caches per formula text, which pays off in workbooks
    where the same formula (absolute references, TODAY()...) is repeated.

    Raises InputError for an unknown platform and PolicyError for invalid policy rules (both ValueErrors).
    """

    def __init__(self, *, platform: str = "excel", config: AuditConfig | None = None,
                 policies: Iterable[Policy | Mapping] = (), known_names: Iterable[str] = ()) -> None:
        self.platform = check_platform(platform)
        self.config = config or DEFAULT_CONFIG
        self.policies = coerce_policies(policies)
        self.known_names = frozenset(name.upper() for name in known_names)
        self._cache: dict[str, Analysis] = {}

    def analyse(self, formula: str) -> Analysis:
        """Parse and check `formula` without regard to its position."""
        cached = self._cache.get(formula)
        if cached is not None:
            return cached
        parsed = parse_formula(formula)
        if parsed.tree is None:
            facts = None
            findings = [syntax_finding(parsed)]
            if "SYNTAX_ERROR" in self.config.disabled_codes:
                findings = []
        elif _is_bare_value(parsed):
            facts = None
            findings = [] if "NOT_A_FORMULA" in self.config.disabled_codes else [Finding(
                "NOT_A_FORMULA", Severity.INFO,
                f"{formula.strip()!r} is a plain value, not a formula (no leading '='); nothing to audit.")]
        else:
            facts = analyze(parsed)
            findings = builtin_findings(parsed, facts, platform=self.platform, config=self.config,
                                        known_names=self.known_names)
        if self.policies and not _is_bare_value(parsed):
            findings += policy_findings(parsed, facts, self.policies, self.config)
        analysis = Analysis(parsed, facts, tuple(findings))
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[formula] = analysis
        return analysis

    def audit_at(self, formula: str, row: int | None, column: int | None, sheet: str | None
                 ) -> tuple[Analysis, list[Finding]]:
        """Audit `formula` placed at (row, column) of `sheet`: the position-independent findings plus the
        direct self-reference check."""
        analysis = self.analyse(formula)
        findings = list(analysis.findings)
        if row is not None and analysis.facts is not None and "SELF_REFERENCE" not in self.config.disabled_codes:
            findings += self_reference_findings(analysis.facts, (row, column), sheet)
        return analysis, findings


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Return `findings` worst first; ties keep their order."""
    return sorted(findings, key=lambda finding: -finding.severity)


def audit_formula(
    formula: str,
    *,
    cell: str | None = None,
    sheet: str | None = None,
    platform: str = "excel",
    config: AuditConfig | None = None,
    policies: Iterable[Policy | Mapping] = (),
) -> list[Finding]:
    """Audit one formula and return its findings, worst first.

    `cell` ("C5") enables the self-reference check; `platform` is "excel" or "sheets"; `policies` are Policy
    objects (or mappings with id, title, rules). Never raises for any formula text — a formula that does not
    parse yields a SYNTAX_ERROR finding. Raises InputError for a bad `cell` or `platform`, PolicyError for a
    bad policy (both ValueErrors).
    """
    if not isinstance(formula, str):
        raise InputError(f"a formula must be a string, not {type(formula).__name__}")
    auditor = FormulaAuditor(platform=platform, config=config, policies=policies)
    row = column = None
    if cell is not None:
        row, column = parse_address(cell)
    _, findings = auditor.audit_at(formula, row, column, sheet)
    return sort_findings(findings)


def _coerce_item(item: str | Mapping, default_sheet: str | None) -> tuple[str, str | None, str | None]:
    if isinstance(item, str):
        return item, None, default_sheet
    if isinstance(item, Mapping):
        formula = item.get("formula")
        if not isinstance(formula, str):
            raise InputError(f"each item needs a 'formula' string, got {item!r}")
        cell = item.get("cell")
        if cell is not None and not isinstance(cell, str):
            raise InputError(f"'cell' must be an address such as 'C5', got {cell!r}")
        sheet = item.get("sheet", default_sheet)
        if sheet is not None and not isinstance(sheet, str):
            raise InputError(f"'sheet' must be a sheet name, got {sheet!r}")
        return formula, cell, sheet
    raise InputError(f"each item must be a formula string or {{'cell', 'formula'}}, not {type(item).__name__}")


def audit_formulas(
    items: Sequence[str | Mapping],
    *,
    platform: str = "excel",
    config: AuditConfig | None = None,
    policies: Iterable[Policy | Mapping] = (),
    sheet: str | None = None,
) -> list[FormulaResult]:
    """Audit several formulas, in order; one FormulaResult per item (findings worst first).

    An item is a formula string or a mapping {"cell": "C5", "formula": "=...", "sheet": optional}. Items with a
    cell also get the grid checks across all given cells: SELF_REFERENCE (a formula reading its own cell, or a
    circular chain among the cells) and INCONSISTENT_FORMULA. `sheet` is the default sheet of the items.
    Raises InputError for a malformed item, a bad or repeated cell address or a bad platform, PolicyError for a
    bad policy (both ValueErrors).
    """
    auditor = FormulaAuditor(platform=platform, config=config, policies=policies)
    results: list[list[Finding]] = []
    placed: list[tuple[str, str | None, str | None]] = []
    entries: list[GridEntry] = []
    entry_items: list[int] = []
    seen: set[tuple[str, int, int]] = set()
    for position, item in enumerate(items):
        formula, cell, item_sheet = _coerce_item(item, sheet)
        row = column = None
        if cell is not None:
            row, column = parse_address(cell)
            key = ((item_sheet or "").casefold(), row, column)
            if key in seen:
                raise InputError(f"cell {cell} is given more than once")
            seen.add(key)
        analysis, findings = auditor.audit_at(formula, row, column, item_sheet)
        results.append(findings)
        placed.append((formula, cell.upper().replace("$", "") if cell else None, item_sheet))
        if row is not None:
            facts = analysis.facts
            fp = fingerprint(analysis.parsed.tokens, row, column, analysis.parsed.references) if facts is not None else None
            refs = tuple(facts.value_references) if facts is not None else ()
            entries.append(GridEntry(item_sheet, row, column, fp, refs))
            entry_items.append(position)
    add_grid_findings(entries, entry_items, results, auditor.config)
    return [
        FormulaResult(formula, tuple(sort_findings(findings)), cell, item_sheet)
        for (formula, cell, item_sheet), findings in zip(placed, results, strict=True)
    ]


def add_grid_findings(entries: Sequence[GridEntry], entry_items: Sequence[int], results: list[list[Finding]],
                      config: AuditConfig, sheet_order: Sequence[str] = ()) -> None:
    """Append INCONSISTENT_FORMULA and circular-chain SELF_REFERENCE findings to `results` (by item index)."""
    if not entries:
        return
    disabled = config.disabled_codes
    if "INCONSISTENT_FORMULA" not in disabled:
        for index, finding in inconsistent_findings(entries).items():
            results[entry_items[index]].append(finding)
    if "SELF_REFERENCE" not in disabled:
        for index, finding in circular_findings(entries, sheet_order).items():
            target = results[entry_items[index]]
            if not any(existing.code == "SELF_REFERENCE" for existing in target):
                target.append(finding)
