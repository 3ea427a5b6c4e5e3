"""The formula tree: one frozen node type per construct.

Every node records `start` and `end`, its character span in the formula body (the text after the leading "="),
so a check can quote exactly what the author wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

from .references import Reference


@dataclass(frozen=True, slots=True)
class Number:
    start: int
    end: int
    value: float
    text: str


@dataclass(frozen=True, slots=True)
class Text:
    start: int
    end: int
    value: str


@dataclass(frozen=True, slots=True)
class Boolean:
    start: int
    end: int
    value: bool


@dataclass(frozen=True, slots=True)
class ErrorValue:
    """An error literal such as #REF! (upper case), possibly sheet-qualified (Sheet1!#REF!)."""

    start: int
    end: int
    value: str


@dataclass(frozen=True, slots=True)
class Ref:
    start: int
    end: int
    ref: Reference


@dataclass(frozen=True, slots=True)
class StructuredRef:
    """A table reference such as Table1[Column], Table1[[#This Row],[Col]] or [@Col] (table None)."""

    start: int
    end: int
    text: str
    table: str | None


@dataclass(frozen=True, slots=True)
class Name:
    """A defined name, LET/LAMBDA variable or table name; `sheet`/`workbook` set when qualified (Sheet1!Rate)."""

    start: int
    end: int
    name: str
    sheet: str | None = None
    workbook: str | None = None


@dataclass(frozen=True, slots=True)
class Missing:
    """An empty argument, as the fourth one in VLOOKUP(A1,B:C,2,)."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Call:
    """A function call; `name` is canonical (upper case, `_xlfn.` stripped), `raw_name` as written."""

    start: int
    end: int
    name: str
    raw_name: str
    args: tuple


@dataclass(frozen=True, slots=True)
class Invoke:
    """A call of a computed function, as in LAMBDA(x,x+1)(2)."""

    start: int
    end: int
    callee: object
    args: tuple


@dataclass(frozen=True, slots=True)
class Unary:
    """A prefix operator: "-", "+" or "@" (implicit intersection)."""

    start: int
    end: int
    op: str
    operand: object


@dataclass(frozen=True, slots=True)
class Postfix:
    """A postfix operator: "%" or "#" (spilled range)."""

    start: int
    end: int
    op: str
    operand: object


@dataclass(frozen=True, slots=True)
class Binary:
    """An infix operator; `op` is one of : , (union) " " (intersection) ^ * / + - & = <> < <= > >=."""

    start: int
    end: int
    op: str
    left: object
    right: object


@dataclass(frozen=True, slots=True)
class ArrayConstant:
    """An array constant such as {1,2;3,4}: a tuple of rows, each a tuple of nodes."""

    start: int
    end: int
    rows: tuple


Node = (
    Number | Text | Boolean | ErrorValue | Ref | StructuredRef | Name | Missing | Call | Invoke | Unary | Postfix
    | Binary | ArrayConstant
)


def children(node: Node) -> tuple:
    """Return the direct sub-nodes of `node`, left to right."""
    match node:
        case Call(args=args):
            return args
        case Binary(left=left, right=right):
            return (left, right)
        case Unary(operand=operand) | Postfix(operand=operand):
            return (operand,)
        case Invoke(callee=callee, args=args):
            return (callee, *args)
        case ArrayConstant(rows=rows):
            return tuple(item for row in rows for item in row)
    return ()


def dump(node: Node) -> str:
    """Render `node` as a compact S-expression, for tests and debugging: (+ 1 (* 2 A1)), (SUM A1:A3 _).

    Recursive, so meant for trees of ordinary depth, not for the 4,000-deep chains a pathological formula makes.
    """
    match node:
        case Number(text=text):
            return text
        case Text(value=value):
            return '"' + value.replace('"', '""') + '"'
        case Boolean(value=value):
            return "TRUE" if value else "FALSE"
        case ErrorValue(value=value):
            return value
        case Ref(ref=ref):
            return ref.text
        case StructuredRef(text=text):
            return text
        case Name(name=name, sheet=sheet, workbook=workbook):
            qualifier = f"[{workbook}]" if workbook else ""
            qualifier += f"{sheet}!" if sheet else ("!" if workbook else "")
            return qualifier + name
        case Missing():
            return "_"
        case Call(name=name, args=args):
            return "(" + " ".join([name, *map(dump, args)]) + ")"
        case Invoke(callee=callee, args=args):
            return "(invoke " + " ".join([dump(callee), *map(dump, args)]) + ")"
        case Unary(op=op, operand=operand):
            return f"({op}u {dump(operand)})"
        case Postfix(op=op, operand=operand):
            return f"({op}p {dump(operand)})"
        case Binary(op=op, left=left, right=right):
            label = {" ": "isect", ",": "union"}.get(op, op)
            return f"({label} {dump(left)} {dump(right)})"
        case ArrayConstant(rows=rows):
            return "{" + ";".join(",".join(map(dump, row)) for row in rows) + "}"
    raise TypeError(f"not a formula node: {node!r}")
