"""One walk over a formula tree that collects the facts every check and policy rule reads.

The walk is iterative: a chain like 1+1+...+1 in an 8,000-character formula is thousands of levels deep, more than
Python's recursion limit allows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .functions import (
    RANGE_AGGREGATE_FUNCTIONS,
    REFERENCE_ONLY_FUNCTIONS,
    ZERO_CAPABLE_FUNCTIONS,
    is_structural_argument,
)
from .nodes import (
    ArrayConstant,
    Binary,
    Boolean,
    Call,
    ErrorValue,
    Invoke,
    Missing,
    Name,
    Node,
    Number,
    Postfix,
    Ref,
    StructuredRef,
    Text,
    Unary,
)
from .parser import ParsedFormula
from .references import Reference

_COMPARISONS = frozenset({"=", "<>", "<", "<=", ">", ">="})
_NO_GUARDS: frozenset[str] = frozenset()
_MASKED = frozenset({"*"})  # inside IFERROR/IFNA every error, #DIV/0! included, is caught
_MAX_DIVISOR_DEPTH = 12


@dataclass(frozen=True, slots=True)
class Lookup:
    """How a lookup call matches: `mode` is "omitted" (default approximate), "approximate" (explicit),
    "indeterminate" (comes from a reference or expression), "always" (LOOKUP) or "next" (XLOOKUP/XMATCH ±1)."""

    function: str
    mode: str
    argument: str | None


@dataclass(slots=True)
class FormulaFacts:
    """Everything the checks need to know about one parsed formula."""

    body: str
    calls: list[Call] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    value_references: list[Reference] = field(default_factory=list)
    names: list[Name] = field(default_factory=list)
    structured: list[StructuredRef] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    constants: list[tuple[str, float]] = field(default_factory=list)
    unguarded_divisors: list[str] = field(default_factory=list)
    zero_divisions: int = 0
    lookups: list[Lookup] = field(default_factory=list)
    aggregate_ranges: list[Reference] = field(default_factory=list)
    bound_names: set[str] = field(default_factory=set)
    if_depth: int = 0
    operations: int = 0

    def distinct_reference_count(self) -> int:
        """Count distinct references: cells/ranges (ignoring $), named ranges and table references."""
        keys = {ref.text.replace("$", "").upper() for ref in self.references}
        keys.update(
            ("name", name.name.upper()) for name in self.names if name.name.upper() not in self.bound_names
        )
        keys.update(("table", struct.text.upper()) for struct in self.structured)
        return len(keys)


def source_key(body: str, node: Node) -> str:
    """Return a comparable form of `node`'s source: upper case, without whitespace or $ anchors."""
    return "".join(body[node.start:node.end].split()).replace("$", "").upper()


def literal_number(node: Node) -> float | None:
    """Return the value of a literal number, signed number, percentage or boolean; None for anything else."""
    sign = 1.0
    while isinstance(node, Unary) and node.op in "-+":
        if node.op == "-":
            sign = -sign
        node = node.operand
    percents = 0
    while isinstance(node, Postfix) and node.op == "%":
        percents += 1
        node = node.operand
    if isinstance(node, Number):
        value = node.value
    elif isinstance(node, Boolean):
        value = float(node.value)
    else:
        return None
    for _ in range(percents):
        value /= 100  # division, not * 0.01, so 7% equals the literal 0.07 exactly
    return sign * value


def analyze(parsed: ParsedFormula) -> FormulaFacts:
    """Collect the facts of a formula that parsed (`parsed.tree` must not be None)."""
    body = parsed.body
    facts = FormulaFacts(body)
    constants = facts.constants
    calls = facts.calls
    # (node, IF nesting so far, inside a structural argument, inside a position-only function, zero guards)
    stack: list[tuple] = [(parsed.tree, 0, False, False, _NO_GUARDS)]
    pop, push = stack.pop, stack.append
    while stack:
        node, if_depth, structural, position_only, guards = pop()
        kind = type(node)
        if kind is Ref:
            facts.references.append(node.ref)
            if not position_only:
                facts.value_references.append(node.ref)
        elif kind is Number:
            if not structural:
                constants.append((node.text, node.value))
        elif kind is Call:
            facts.operations += 1
            calls.append(node)
            _visit_call(facts, node, if_depth, structural, position_only, guards, push)
        elif kind is Binary:
            facts.operations += 1
            if node.op == "/" and "*" not in guards:
                _check_division(facts, body, node.right, guards)
            push((node.right, if_depth, structural, position_only, guards))
            push((node.left, if_depth, structural, position_only, guards))
        elif kind is Unary or kind is Postfix:
            facts.operations += 1
            value = literal_number(node)
            if value is not None and isinstance(_innermost(node), Number):
                if not structural:
                    constants.append((body[node.start:node.end], value))
                continue
            push((node.operand, if_depth, structural, position_only, guards))
        elif kind is Name:
            facts.names.append(node)
        elif kind is StructuredRef:
            facts.structured.append(node)
        elif kind is ErrorValue:
            facts.errors.append(node.value)
        elif kind is ArrayConstant:
            for row in node.rows:
                for item in row:
                    push((item, if_depth, structural, position_only, guards))
        elif kind is Invoke:
            push((node.callee, if_depth, structural, position_only, guards))
            for arg in node.args:
                push((arg, if_depth, structural, position_only, guards))
    return facts


def _innermost(node: Node) -> Node:
    while isinstance(node, Unary | Postfix):
        node = node.operand
    return node


def _visit_call(facts: FormulaFacts, node: Call, if_depth: int, structural: bool, position_only: bool,
                guards: frozenset[str], push) -> None:
    name, args = node.name, node.args
    if name == "IF":
        if_depth += 1
        facts.if_depth = max(facts.if_depth, if_depth)
    elif name in ("LET", "LAMBDA"):
        _bind_names(facts, name, args)
    elif name in ("VLOOKUP", "HLOOKUP", "MATCH", "LOOKUP", "XLOOKUP", "XMATCH"):
        lookup = _lookup_mode(facts.body, name, args)
        if lookup is not None:
            facts.lookups.append(lookup)
    elif name in RANGE_AGGREGATE_FUNCTIONS:
        facts.aggregate_ranges.extend(arg.ref for arg in args if type(arg) is Ref and arg.ref.kind == "range")
    inner_position_only = position_only or name in REFERENCE_ONLY_FUNCTIONS
    guarded_args = _guards_for_arguments(facts.body, name, args, guards)
    for position in range(len(args) - 1, -1, -1):
        arg = args[position]
        if type(arg) is Missing:
            continue
        arg_structural = structural or is_structural_argument(name, position)
        push((arg, if_depth, arg_structural, inner_position_only, guarded_args[position]))


def _bind_names(facts: FormulaFacts, name: str, args: tuple) -> None:
    # LET(name1, value1, ..., result): names at even positions; LAMBDA(param..., body): all but the last.
    positions = range(0, len(args) - 1, 2) if name == "LET" else range(len(args) - 1)
    for position in positions:
        arg = args[position]
        if isinstance(arg, Name):
            facts.bound_names.add(arg.name.upper())


def _guards_for_arguments(body: str, name: str, args: tuple, guards: frozenset[str]) -> list[frozenset[str]]:
    """Return the zero guards in force for each argument of call `name`."""
    count = len(args)
    if name in ("IFERROR", "IFNA") and count:
        # IFNA catches only #N/A, so a #DIV/0! inside it is still unguarded.
        first = _MASKED if name == "IFERROR" else guards
        return [first, *([guards] * (count - 1))]
    if name == "IF" and count >= 2:
        condition_guards = guards | _condition_guards(body, args[0])
        return [guards, *([condition_guards] * (count - 1))]
    if name == "IFS" and count >= 2:
        # IFS tries its conditions in order, so every earlier condition also guards a later value.
        result = [guards] * count
        accumulated = guards
        for position in range(0, count - 1, 2):
            accumulated = accumulated | _condition_guards(body, args[position])
            result[position + 1] = accumulated
        return result
    return [guards] * count


def _condition_guards(body: str, condition: Node) -> frozenset[str]:
    """Return the keys of expressions an IF condition compares with a constant (B1=0, B1<>0, B1>0, B1="")."""
    keys: set[str] = set()
    pending = [condition]
    while pending:
        node = pending.pop()
        if isinstance(node, Binary) and node.op in _COMPARISONS:
            for side, other in ((node.left, node.right), (node.right, node.left)):
                if isinstance(other, Number | Text | Boolean | Missing) or literal_number(other) is not None:
                    keys.add(source_key(body, side))
        elif isinstance(node, Call) and node.name in ("AND", "OR", "NOT"):
            pending.extend(node.args)
        elif isinstance(node, Ref | Name | StructuredRef | Call):
            keys.add(source_key(body, node))  # IF(B1, A1/B1, 0): a non-zero B1 is true
    return frozenset(keys)


def _check_division(facts: FormulaFacts, body: str, divisor: Node, guards: frozenset[str]) -> None:
    while isinstance(divisor, Unary) and divisor.op == "+":
        divisor = divisor.operand
    value = literal_number(divisor)
    if value is not None:
        if value == 0:
            facts.zero_divisions += 1
        return
    if not _may_be_zero(divisor, 0):
        return
    if source_key(body, divisor) in guards:
        return
    facts.unguarded_divisors.append(body[divisor.start:divisor.end].strip())


def _may_be_zero(node: Node, depth: int) -> bool:
    """Tell whether `node` can plausibly evaluate to zero or blank (references, counts, differences...)."""
    if depth > _MAX_DIVISOR_DEPTH:
        return False
    kind = type(node)
    if kind is Ref or kind is Name or kind is StructuredRef:
        return True
    if kind is Call:
        if node.name == "MAX" and any((literal_number(arg) or 0) > 0 for arg in node.args):
            return False  # MAX(B1, 1) is at least 1
        return node.name in ZERO_CAPABLE_FUNCTIONS
    if kind is Unary or kind is Postfix:
        return _may_be_zero(node.operand, depth + 1)
    if kind is Binary:
        op = node.op
        if op == "*":
            return _may_be_zero(node.left, depth + 1) or _may_be_zero(node.right, depth + 1)
        if op in ("/", "^"):
            return _may_be_zero(node.left, depth + 1)
        if op in ("+", "-"):
            return literal_number(node.left) is None or literal_number(node.right) is None
        if op in (":", " ", ","):
            return True
    return False


def _lookup_mode(body: str, name: str, args: tuple) -> Lookup | None:
    """Classify how a lookup call matches; None when it is an exact match."""
    if name == "LOOKUP":
        return Lookup(name, "always", None)
    if name in ("VLOOKUP", "HLOOKUP", "MATCH"):
        position = 2 if name == "MATCH" else 3
        if len(args) <= position:
            return Lookup(name, "omitted", None)
        arg = args[position]
        if isinstance(arg, Missing):
            return None  # an empty argument is FALSE / 0 in Excel: exact match
        value = literal_number(arg)
        text = body[arg.start:arg.end].strip()
        if value is None:
            return Lookup(name, "indeterminate", text)
        return None if value == 0 else Lookup(name, "approximate", text)
    position = 4 if name == "XLOOKUP" else 2
    if len(args) > position:
        value = literal_number(args[position])
        if value in (1.0, -1.0):
            return Lookup(name, "next", body[args[position].start:args[position].end].strip())
    return None
