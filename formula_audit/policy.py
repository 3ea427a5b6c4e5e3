"""Organization policies: the rule schema, its validation, and POLICY_VIOLATION findings.

A policy's rules are a dict such as {"forbid_functions": ["INDIRECT"], "max_if_depth": 3}. `RULES` below is the
single definition of which rules exist and what values they take; `validate_rules` enforces it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .analysis import FormulaFacts
from .checks import is_allowed_constant, join_names
from .config import AuditConfig
from .errors import PolicyError
from .findings import Finding, PolicyRef, Severity
from .functions import (
    ALL_FUNCTIONS,
    ERROR_MASKING_FUNCTIONS,
    EXTERNAL_DATA_FUNCTIONS,
    VOLATILE_FUNCTIONS,
    canonical_function_name,
)
from .parser import ParsedFormula


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One policy rule: its value type ("bool", "functions", "count" or "constants") and what it enforces."""

    name: str
    kind: str
    description: str


RULES: dict[str, RuleSpec] = {
    spec.name: spec
    for spec in (
        RuleSpec("forbid_functions", "functions", "these functions must not be used (list of function names)"),
        RuleSpec("require_exact_lookup", "bool", "VLOOKUP/HLOOKUP/MATCH/XLOOKUP must use exact match"),
        RuleSpec("forbid_volatile", "bool", "no volatile functions (NOW, TODAY, RAND, OFFSET, INDIRECT...)"),
        RuleSpec("forbid_external_references", "bool", "no links to other workbooks or imports of outside data"),
        RuleSpec("forbid_hardcoded_constants", "constants",
                 'no numbers typed into formulas: true, false, or {"allow": [numbers that are fine]}'),
        RuleSpec("max_if_depth", "count", "IFs may nest at most this deep"),
        RuleSpec("max_formula_length", "count", "formulas may be at most this many characters, '=' included"),
        RuleSpec("max_references", "count", "formulas may use at most this many distinct references"),
        RuleSpec("forbid_error_masking", "bool", "no IFERROR, IFNA, ISERROR or ISERR"),
    )
}


def _normalize_functions(rule: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise PolicyError(f"rule {rule!r} must be a list of function names, got {value!r}", rule)
    names: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise PolicyError(f"rule {rule!r} must list function names as strings, got {item!r}", rule)
        name = canonical_function_name(item.strip().removesuffix("()"))
        if name not in ALL_FUNCTIONS:
            raise PolicyError(f"rule {rule!r} names {item!r}, which is not an Excel or Google Sheets function", rule)
        if name not in names:
            names.append(name)
    return names


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _normalize_constants(rule: str, value: Any) -> bool | dict:
    if isinstance(value, bool):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"allow"}
        if unknown:
            raise PolicyError(f"rule {rule!r} accepts only the key 'allow', not {sorted(unknown)}", rule)
        allow = value.get("allow", [])
        if isinstance(allow, str) or not isinstance(allow, list | tuple) or not all(map(_is_number, allow)):
            raise PolicyError(f"rule {rule!r}: 'allow' must be a list of numbers, got {allow!r}", rule)
        return {"allow": sorted(set(allow))}
    raise PolicyError(f'rule {rule!r} must be true, false or {{"allow": [numbers]}}, got {value!r}', rule)


def validate_rules(rules: Mapping[str, Any]) -> dict[str, Any]:
    """Check `rules` against RULES and return them normalized.

    Normalized: function names upper case without `_xlfn.` and de-duplicated; `allow` lists sorted; other values
    unchanged. Raises PolicyError naming the rule for an unknown rule, a value of the wrong type, a negative or
    zero limit, or a function name that is not a real Excel / Google Sheets function.
    """
    if not isinstance(rules, Mapping):
        raise PolicyError(f"policy rules must be an object mapping rule names to values, got {type(rules).__name__}")
    normalized: dict[str, Any] = {}
    for rule, value in rules.items():
        spec = RULES.get(rule)
        if spec is None:
            raise PolicyError(f"unknown rule {rule!r}; known rules: {', '.join(RULES)}", rule)
        if spec.kind == "bool":
            if not isinstance(value, bool):
                raise PolicyError(f"rule {rule!r} must be true or false, got {value!r}", rule)
            normalized[rule] = value
        elif spec.kind == "count":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PolicyError(f"rule {rule!r} must be a positive integer, got {value!r}", rule)
            normalized[rule] = value
        elif spec.kind == "functions":
            normalized[rule] = _normalize_functions(rule, value)
        else:
            normalized[rule] = _normalize_constants(rule, value)
    return normalized


@dataclass(frozen=True, slots=True)
class Policy:
    """An organization policy: its id and title (reported on each violation) and its validated rules.

    Raises PolicyError on construction when `rules` do not follow the schema.
    """

    id: object
    title: str
    rules: Mapping[str, Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", validate_rules(self.rules))

    @property
    def ref(self) -> PolicyRef:
        return PolicyRef(self.id, self.title)


def policy_findings(
    parsed: ParsedFormula, facts: FormulaFacts | None, policies: tuple[Policy, ...], config: AuditConfig
) -> list[Finding]:
    """Return a POLICY_VIOLATION finding for every rule of every policy the formula breaks.

    `facts` is None for a formula that did not parse: then only max_formula_length can be judged.
    """
    findings: list[Finding] = []
    length = len(parsed.body) + 1
    for policy in policies:
        ref = policy.ref

        def breach(rule: str, what: str, *, policy=policy, ref=ref) -> None:
            findings.append(Finding("POLICY_VIOLATION", Severity.HIGH,
                                    f"Breaks policy '{policy.title}' (rule {rule}): {what}.", ref, rule))

        rules = policy.rules
        limit = rules.get("max_formula_length")
        if limit is not None and length > limit:
            breach("max_formula_length", f"the formula is {length} characters long, over the limit of {limit}")
        if facts is None:
            continue
        called = list(dict.fromkeys(call.name for call in facts.calls))
        forbidden = [name for name in called if name in rules.get("forbid_functions", ())]
        if forbidden:
            breach("forbid_functions", f"{join_names(forbidden)} must not be used")
        if rules.get("require_exact_lookup"):
            for lookup in facts.lookups:
                breach("require_exact_lookup", f"{lookup.function} does not use an exact match")
        if rules.get("forbid_volatile"):
            volatile = [name for name in called if name in VOLATILE_FUNCTIONS]
            if volatile:
                breach("forbid_volatile", f"volatile function {join_names(volatile)} is used")
        if rules.get("forbid_external_references"):
            sources = [ref.workbook for ref in facts.references if ref.workbook is not None]
            sources += [name.workbook for name in facts.names if name.workbook is not None]
            sources += [name for name in called if name in EXTERNAL_DATA_FUNCTIONS]
            if sources:
                breach("forbid_external_references", f"the formula reads from outside the workbook ({join_names(sources)})")
        constants_rule = rules.get("forbid_hardcoded_constants")
        if constants_rule:
            allowed = (frozenset(float(n) for n in constants_rule["allow"]) if isinstance(constants_rule, dict)
                       else config.allowed_constants)
            numbers = [text for text, value in facts.constants if not is_allowed_constant(value, allowed)]
            if numbers:
                breach("forbid_hardcoded_constants", f"hard-coded {join_names(numbers)}")
        limit = rules.get("max_if_depth")
        if limit is not None and facts.if_depth > limit:
            breach("max_if_depth", f"IFs nest {facts.if_depth} deep, over the limit of {limit}")
        limit = rules.get("max_references")
        if limit is not None:
            count = facts.distinct_reference_count()
            if count > limit:
                breach("max_references", f"{count} distinct references, over the limit of {limit}")
        if rules.get("forbid_error_masking"):
            masking = [name for name in called if name in ERROR_MASKING_FUNCTIONS]
            if masking:
                breach("forbid_error_masking", f"{join_names(masking)} hides errors")
    return findings
