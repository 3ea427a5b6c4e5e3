"""A1-style cell references: parsing their text into coordinates, sheets and workbooks, and back."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from .errors import InputError

MAX_ROW = 1_048_576
MAX_COLUMN = 16_384

_CELL_OR_RANGE = re.compile(r"(\$?)([A-Za-z]{1,3})(\$?)([0-9]+)(?::(\$?)([A-Za-z]{1,3})(\$?)([0-9]+))?")
_COLUMN = re.compile(r"(\$?)([A-Za-z]{1,3})")
_ROW = re.compile(r"(\$?)([0-9]+)")
_ADDRESS = re.compile(r"\$?([A-Za-z]{1,3})\$?([0-9]+)")


@dataclass(frozen=True, slots=True)
class Reference:
    """A cell, a rectangular range, whole columns or whole rows, possibly on another sheet or workbook.

    Coordinates are 1-based and inclusive; `kind` is "cell", "range", "columns" or "rows" (whole columns span
    rows 1..MAX_ROW, whole rows span columns 1..MAX_COLUMN). The `*_absolute` flags record `$` anchors.
    `sheet` is None when the reference is on the formula's own sheet; `last_sheet` is set for 3-D references
    (Sheet1:Sheet3!A1); `workbook` is set for external references ([Book.xlsx], [1], C:\\path\\x.xlsx).
    """

    text: str
    kind: str
    first_row: int
    first_column: int
    last_row: int
    last_column: int
    first_row_absolute: bool = False
    first_column_absolute: bool = False
    last_row_absolute: bool = False
    last_column_absolute: bool = False
    sheet: str | None = None
    last_sheet: str | None = None
    workbook: str | None = None

    @property
    def is_external(self) -> bool:
        return self.workbook is not None

    @property
    def is_whole_column(self) -> bool:
        return self.kind == "columns"

    @property
    def is_whole_row(self) -> bool:
        return self.kind == "rows"

    @property
    def cell_count(self) -> int:
        return (self.last_row - self.first_row + 1) * (self.last_column - self.first_column + 1)

    def contains(self, row: int, column: int) -> bool:
        """Tell whether (row, column) lies inside this reference, whatever its sheet."""
        return self.first_row <= row <= self.last_row and self.first_column <= column <= self.last_column

    def on_sheet(self, sheet: str | None, own_sheet: str | None, sheet_order: tuple[str, ...] = ()) -> bool:
        """Tell whether this reference reaches `sheet`, the formula being on `own_sheet`.

        Sheet names compare case-insensitively, as Excel does; a 3-D reference covers the sheets between its
        ends in `sheet_order`. External references never reach a sheet of the audited workbook.
        """
        if self.workbook is not None:
            return False
        target = (sheet or "").casefold()
        if self.sheet is None:
            return (own_sheet or "").casefold() == target
        if self.last_sheet is None:
            return self.sheet.casefold() == target
        folded = [name.casefold() for name in sheet_order]
        try:
            start, end = folded.index(self.sheet.casefold()), folded.index(self.last_sheet.casefold())
            position = folded.index(target)
        except ValueError:
            return target in (self.sheet.casefold(), self.last_sheet.casefold())
        return min(start, end) <= position <= max(start, end)


@functools.cache
def column_number(letters: str) -> int:
    """Return the 1-based column number of column `letters` ("A" -> 1, "XFD" -> 16384)."""
    number = 0
    for char in letters.upper():
        number = number * 26 + ord(char) - 64
    return number


def column_letters(number: int) -> str:
    """Return the letters of 1-based column `number` (28 -> "AB")."""
    letters = ""
    while number > 0:
        number, remainder = divmod(number - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def parse_address(address: str) -> tuple[int, int]:
    """Return (row, column) of a single-cell A1 address such as "C5" or "$C$5".

    Raises InputError (a ValueError) when `address` is not a cell address inside Excel's grid.
    """
    if not isinstance(address, str):
        raise InputError(f"a cell address must be a string like 'C5', not {address!r}")
    match = _ADDRESS.fullmatch(address.strip())
    if match is None:
        raise InputError(f"{address!r} is not a cell address like 'C5'")
    row, column = int(match.group(2)), column_number(match.group(1))
    if not (1 <= row <= MAX_ROW and 1 <= column <= MAX_COLUMN):
        raise InputError(f"{address!r} is outside the sheet (max XFD1048576)")
    return row, column


def format_address(row: int, column: int) -> str:
    """Return the A1 address of (row, column)."""
    return f"{column_letters(column)}{row}"


def split_prefix(prefix: str) -> tuple[str | None, str | None, str | None]:
    """Split a reference prefix (the text before '!', quotes included) into (workbook, sheet, last_sheet).

    Handles 'My Sheet', 'Bob''s', Sheet1:Sheet3, [Book.xlsx]Sheet1, [1]Sheet1 and 'C:\\path\\[x.xlsx]S'.
    An empty sheet part (as in [1]!Name) gives sheet None.
    """
    if prefix.startswith("'") and prefix.endswith("'") and len(prefix) >= 2:
        prefix = prefix[1:-1].replace("''", "'")
    workbook = None
    close = prefix.rfind("]")
    if close != -1 and "[" in prefix[:close]:
        open_ = prefix.rfind("[", 0, close)
        workbook = prefix[:open_] + prefix[open_ + 1:close]
        prefix = prefix[close + 1:]
    elif prefix.endswith((".xlsx", ".xlsm", ".xls", ".xlsb")):
        # Book.xlsx!Name: a workbook-level name in another workbook.
        return prefix, None, None
    if not prefix:
        return workbook, None, None
    first, _, last = prefix.partition(":")
    return workbook, first, (last or None)


def parse_reference_body(body: str) -> tuple | None:
    """Parse the part of a reference after the '!' (A1, $A$1:B2, A:C, 1:3).

    Returns (kind, first_row, first_column, last_row, last_column, four absolute flags) or None when the text
    is not a reference inside Excel's grid (for example a name such as "XFE1" or "LOG10").
    """
    cells = _CELL_OR_RANGE.fullmatch(body)
    if cells:
        dollar_c1, letters1, dollar_r1, digits1, dollar_c2, letters2, dollar_r2, digits2 = cells.groups()
        r1, c1 = int(digits1), column_number(letters1)
        if digits2 is None:
            if not (1 <= r1 <= MAX_ROW and c1 <= MAX_COLUMN):
                return None
            return "cell", r1, c1, r1, c1, bool(dollar_r1), bool(dollar_c1), bool(dollar_r1), bool(dollar_c1)
        r2, c2 = int(digits2), column_number(letters2)
        if not (1 <= min(r1, r2) and max(r1, r2) <= MAX_ROW and max(c1, c2) <= MAX_COLUMN):
            return None
        abs_r1, abs_c1, abs_r2, abs_c2 = bool(dollar_r1), bool(dollar_c1), bool(dollar_r2), bool(dollar_c2)
        if r1 > r2:
            r1, r2, abs_r1, abs_r2 = r2, r1, abs_r2, abs_r1
        if c1 > c2:
            c1, c2, abs_c1, abs_c2 = c2, c1, abs_c2, abs_c1
        return "range", r1, c1, r2, c2, abs_r1, abs_c1, abs_r2, abs_c2
    first, sep, second = body.partition(":")
    if not sep:
        return None
    col1, col2 = _COLUMN.fullmatch(first), _COLUMN.fullmatch(second)
    if col1 and col2:
        c1, c2 = column_number(col1.group(2)), column_number(col2.group(2))
        if max(c1, c2) > MAX_COLUMN:
            return None
        a1, a2 = bool(col1.group(1)), bool(col2.group(1))
        if c1 > c2:
            c1, c2, a1, a2 = c2, c1, a2, a1
        return "columns", 1, c1, MAX_ROW, c2, True, a1, True, a2
    row1, row2 = _ROW.fullmatch(first), _ROW.fullmatch(second)
    if row1 and row2:
        r1, r2 = int(row1.group(2)), int(row2.group(2))
        if not (1 <= min(r1, r2) and max(r1, r2) <= MAX_ROW):
            return None
        a1, a2 = bool(row1.group(1)), bool(row2.group(1))
        if r1 > r2:
            r1, r2, a1, a2 = r2, r1, a2, a1
        return "rows", r1, 1, r2, MAX_COLUMN, a1, True, a2, True
    return None


_BUILT: dict[tuple[str, str | None, str], Reference | None] = {}
_BUILT_LIMIT = 65_536


def build_reference(text: str, prefix: str | None, body: str) -> Reference | None:
    """Make a Reference from its full `text`, its prefix (text before '!', or None) and its body.

    Returns None when `body` is not a valid reference (the caller then treats the text as a name). Results are
    memoized: formulas copied along a row repeat the same references, and a Reference is immutable.
    """
    key = (text, prefix, body)
    try:
        return _BUILT[key]
    except KeyError:
        pass
    if len(_BUILT) >= _BUILT_LIMIT:
        _BUILT.clear()
    reference = _BUILT[key] = _build_reference(text, prefix, body)
    return reference


def _build_reference(text: str, prefix: str | None, body: str) -> Reference | None:
    parsed = parse_reference_body(body)
    if parsed is None:
        return None
    workbook = sheet = last_sheet = None
    if prefix is not None:
        workbook, sheet, last_sheet = split_prefix(prefix)
    kind, r1, c1, r2, c2, ar1, ac1, ar2, ac2 = parsed
    return Reference(text, kind, r1, c1, r2, c2, ar1, ac1, ar2, ac2, sheet, last_sheet, workbook)


def bounding_reference(text: str, left: Reference, right: Reference) -> Reference | None:
    """Return the range spanned by `left:right` when both are on the same sheet (Sheet1!A1:Sheet1!B2), else None."""
    if right.sheet is not None and (left.workbook, left.sheet, left.last_sheet) != (
            right.workbook, right.sheet, right.last_sheet):
        return None
    if left.kind != "cell" or right.kind != "cell":
        return None
    r1, r2 = sorted((left.first_row, right.first_row))
    c1, c2 = sorted((left.first_column, right.first_column))
    return Reference(
        text, "range", r1, c1, r2, c2,
        left.first_row_absolute, left.first_column_absolute, right.first_row_absolute, right.first_column_absolute,
        left.sheet, left.last_sheet, left.workbook,
    )
