"""Parse a formula into a tree with Excel's operator precedence; a bad formula gives an error, never an exception.

Precedence, tightest first: `:` (range), space (intersection), `,` (union, only inside parentheses), prefix
`-`/`+`/`@`, postfix `%`, `^`, `*` `/`, `+` `-`, `&`, comparisons. Negation binds tighter than `^`, so -2^2 is
(-2)^2 = 4, as in Excel. All binary operators associate to the left (2^3^2 = 64 in Excel).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .functions import canonical_function_name
from .lexer import LexError, Token, tokenize
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
from .references import Reference, bounding_reference, build_reference, split_prefix

# Excel allows 64 levels of nesting; the margin keeps far-fetched input from exhausting Python's stack.
MAX_NESTING = 100

_INFIX_POWER = {
    ":": 80, " ": 70, ",": 60,
    "^": 40, "*": 30, "/": 30, "+": 20, "-": 20, "&": 15,
    "=": 10, "<>": 10, "<": 10, "<=": 10, ">": 10, ">=": 10,
}
_PREFIX_POWER = 50
_POSTFIX_POWER = {"%": 45, "#": 85}
_OPERAND_START = frozenset({"num", "str", "bool", "err", "ref", "referr", "qname", "func", "struct", "name", "(", "{"})
_REFERENCE_OPERATORS = frozenset({":", " ", ","})


@dataclass(frozen=True, slots=True)
class ParsedFormula:
    """The outcome of parsing one formula.

    `body` is the formula without its leading "=" (node spans index into it); `tree` is None exactly when
    `error` says why the formula does not parse, `error_position` being an index into `body`.
    `had_equals` records whether the text started with "=". `references` maps the start offset of each
    reference token to its parsed Reference (used to fingerprint the formula without re-parsing them).
    """

    text: str
    body: str
    tree: Node | None
    error: str | None
    error_position: int | None
    tokens: tuple[Token, ...]
    had_equals: bool
    references: dict[int, Reference] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.tree is not None


class _Failure(Exception):
    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


def split_formula(text: str) -> tuple[str, bool]:
    """Return (body, had_equals): `text` without surrounding whitespace, array braces {=...} and its leading "="."""
    stripped = text.strip()
    if stripped.startswith("{=") and stripped.endswith("}"):
        stripped = stripped[1:-1]
    if stripped.startswith("="):
        return stripped[1:], True
    return stripped, False


def parse_formula(text: str) -> ParsedFormula:
    """Parse `text` ("=SUM(A1:A3)", or leniently "SUM(A1:A3)") into a ParsedFormula.

    Never raises for any string: unbalanced parentheses, a missing operand, a trailing operator or an empty
    formula all come back as `error`.
    """
    body, had_equals = split_formula(text)
    try:
        tokens = tokenize(body)
    except LexError as exc:
        return ParsedFormula(text, body, None, exc.message, exc.position, (), had_equals)
    if not tokens:
        return ParsedFormula(text, body, None, "the formula is empty", 0, (), had_equals)
    parser = _Parser(tokens, len(body))
    try:
        tree = parser.parse()
    except _Failure as exc:
        return ParsedFormula(text, body, None, exc.message, exc.position, tuple(tokens), had_equals)
    return ParsedFormula(text, body, tree, None, None, tuple(tokens), had_equals, parser.references)


def _is_reference_like(node: Node) -> bool:
    match node:
        case Ref() | Name() | StructuredRef() | Call() | Invoke():
            return True
        case Binary(op=op):
            return op in _REFERENCE_OPERATORS
        case Postfix(op="#"):
            return True
    return False


def _describe(token: Token | None) -> str:
    if token is None:
        return "the end of the formula"
    return repr(token[1])


class _Parser:
    __slots__ = ("count", "depth", "index", "length", "references", "tokens")

    def __init__(self, tokens: list[Token], length: int) -> None:
        self.tokens = tokens
        self.index = 0
        self.count = len(tokens)
        self.depth = 0
        self.length = length
        self.references: dict[int, Reference] = {}

    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < self.count else None

    def fail(self, message: str, token: Token | None = None) -> _Failure:
        position = token[2] if token is not None else self.length
        return _Failure(message, position)

    def expect(self, kind: str, what: str) -> Token:
        token = self.peek()
        if token is None or token[0] != kind:
            raise self.fail(f"expected {what} but found {_describe(token)}", token)
        self.index += 1
        return token

    def parse(self) -> Node:
        tree = self.expression(0, union=False)
        token = self.peek()
        if token is not None:
            if token[0] == ")":
                raise self.fail("unbalanced parentheses: a ')' has no matching '('", token)
            if token[0] == ",":
                raise self.fail("unexpected ',' outside a function's arguments", token)
            raise self.fail(f"unexpected {_describe(token)}", token)
        return tree

    def expression(self, power: int, union: bool) -> Node:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.fail(f"nested more than {MAX_NESTING} levels deep", self.peek())
        left = self.prefix(union)
        while True:
            token = self.peek()
            if token is None:
                break
            kind, text = token[0], token[1]
            if kind == "op":
                if text in _POSTFIX_POWER:
                    if _POSTFIX_POWER[text] <= power:
                        break
                    self.index += 1
                    left = Postfix(left.start, token[3], text, left)
                    continue
                if text == "@":
                    raise self.fail("'@' can only start an operand", token)
                op_power = _INFIX_POWER[text]
                if op_power <= power:
                    break
                self.index += 1
                right = self.expression(op_power, union)
                left = self.combine(text, left, right)
                continue
            if kind == "," and union:
                if _INFIX_POWER[","] <= power:
                    break
                self.index += 1
                right = self.expression(_INFIX_POWER[","], union)
                left = Binary(left.start, right.end, ",", left, right)
                continue
            if kind == "(" and not token[4] and isinstance(left, Call | Invoke):
                self.index += 1
                args, end = self.arguments()
                left = Invoke(left.start, end, left, args)
                continue
            if kind in _OPERAND_START:
                if token[4] and _is_reference_like(left):
                    if _INFIX_POWER[" "] <= power:
                        break
                    right = self.expression(_INFIX_POWER[" "], union)
                    if not _is_reference_like(right):
                        raise self.fail("a space between operands intersects ranges; both must be references", token)
                    left = Binary(left.start, right.end, " ", left, right)
                    continue
                raise self.fail(f"missing operator before {_describe(token)}", token)
            break
        self.depth -= 1
        return left

    def combine(self, op: str, left: Node, right: Node) -> Node:
        if op == ":" and isinstance(left, Ref) and isinstance(right, Ref):
            merged = bounding_reference(f"{left.ref.text}:{right.ref.text}", left.ref, right.ref)
            if merged is not None:
                return Ref(left.start, right.end, merged)
        return Binary(left.start, right.end, op, left, right)

    def prefix(self, union: bool) -> Node:
        token = self.peek()
        if token is None:
            raise self.fail("missing operand at the end of the formula")
        self.index += 1
        kind, text, start, end = token[0], token[1], token[2], token[3]
        if kind == "num":
            return Number(start, end, float(text), text)
        if kind == "ref":
            return self.reference(text, start, end)
        if kind == "func":
            return self.call(text[:-1], start)
        if kind == "str":
            return Text(start, end, text[1:-1].replace('""', '"'))
        if kind == "bool":
            return Boolean(start, end, text.upper() == "TRUE")
        if kind == "err":
            return ErrorValue(start, end, text.upper())
        if kind == "referr":
            return ErrorValue(start, end, "#REF!")
        if kind == "name":
            return Name(start, end, _strip_parameter_prefix(text))
        if kind == "qname":
            prefix, _, name = text.rpartition("!")
            workbook, sheet, _ = split_prefix(prefix)
            return Name(start, end, name, sheet, workbook)
        if kind == "struct":
            bracket = text.find("[")
            return StructuredRef(start, end, text, text[:bracket] or None)
        if kind == "op":
            if text in ("-", "+", "@"):
                operand = self.expression(_PREFIX_POWER, union)
                return Unary(start, operand.end, text, operand)
            raise self.fail(f"missing operand before {text!r}", token)
        if kind == "(":
            if self.peek() is not None and self.peek()[0] == ")":
                raise self.fail("empty parentheses", self.peek())
            inner = self.expression(0, union=True)
            close = self.peek()
            if close is None:
                raise self.fail("unbalanced parentheses: a '(' is never closed")
            if close[0] != ")":
                raise self.fail(f"expected ')' but found {_describe(close)}", close)
            self.index += 1
            return inner
        if kind == "{":
            return self.array(start)
        if kind == ")":
            raise self.fail("unbalanced parentheses or a missing operand before ')'", token)
        raise self.fail(f"missing operand before {_describe(token)}", token)

    def reference(self, text: str, start: int, end: int) -> Node:
        prefix, bang, body = text.rpartition("!")
        ref = build_reference(text, prefix if bang else None, body)
        if ref is None:
            # Looked like a reference but lies outside the grid (e.g. XFE1): Excel reads it as a name.
            if bang:
                workbook, sheet, _ = split_prefix(prefix)
                return Name(start, end, body, sheet, workbook)
            return Name(start, end, text)
        self.references[start] = ref
        return Ref(start, end, ref)

    def arguments(self) -> tuple[tuple, int]:
        """Parse arguments after an opening parenthesis up to and including the closing one."""
        args: list[Node] = []
        token = self.peek()
        if token is not None and token[0] == ")":
            self.index += 1
            return (), token[3]
        while True:
            token = self.peek()
            if token is None:
                raise self.fail("unbalanced parentheses: a function's '(' is never closed")
            if token[0] in (",", ")"):
                args.append(Missing(token[2], token[2]))
            else:
                args.append(self.expression(0, union=False))
            token = self.peek()
            if token is None:
                raise self.fail("unbalanced parentheses: a function's '(' is never closed")
            if token[0] == ",":
                self.index += 1
                continue
            if token[0] == ")":
                self.index += 1
                return tuple(args), token[3]
            raise self.fail(f"expected ',' or ')' in the arguments but found {_describe(token)}", token)

    def call(self, raw_name: str, start: int) -> Node:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.fail(f"nested more than {MAX_NESTING} levels deep", self.peek())
        args, end = self.arguments()
        self.depth -= 1
        return Call(start, end, canonical_function_name(raw_name), raw_name, args)

    def array(self, start: int) -> Node:
        rows: list[tuple] = []
        row: list[Node] = []
        while True:
            token = self.peek()
            if token is None:
                raise self.fail("an array constant '{' is never closed")
            if token[0] in (",", ";", "}"):
                raise self.fail("empty element in an array constant", token)
            row.append(self.expression(0, union=False))
            token = self.peek()
            if token is None:
                raise self.fail("an array constant '{' is never closed")
            self.index += 1
            if token[0] == ",":
                continue
            if token[0] == ";":
                rows.append(tuple(row))
                row = []
                continue
            if token[0] == "}":
                rows.append(tuple(row))
                return ArrayConstant(start, token[3], tuple(rows))
            raise self.fail(f"expected ',', ';' or '}}' in an array constant but found {_describe(token)}", token)


def _strip_parameter_prefix(name: str) -> str:
    # Excel stores LAMBDA/LET parameter names as _xlpm.x.
    if name[:6].lower() == "_xlpm.":
        return name[6:]
    return name
