"""Audit every formula of an .xlsx workbook, streaming it with openpyxl's read-only reader.

Memory stays proportional to the number of formulas, not cells: each formula is checked as it is read, and what
the grid checks need afterwards is kept compactly (its fingerprint, the references it reads, the ranges it
aggregates); numbers are remembered as one bit per cell in per-column bitmaps.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import IO

from openpyxl import load_workbook
from openpyxl.worksheet.formula import ArrayFormula, DataTableFormula

from .audit import FormulaAuditor, add_grid_findings, sort_findings
from .config import AuditConfig
from .errors import TooManyFormulas, WorkbookError
from .findings import Finding, FormulaResult, Severity
from .grid import GridEntry, fingerprint
from .policy import Policy
from .references import Reference, format_address


class _Bitmap:
    """One bit per cell, by column: which cells of a sheet hold a number or a formula."""

    __slots__ = ("columns",)

    def __init__(self) -> None:
        self.columns: dict[int, bytearray] = {}

    def add(self, row: int, column: int) -> None:
        bits = self.columns.get(column)
        if bits is None:
            bits = self.columns[column] = bytearray()
        byte = row >> 3
        if byte >= len(bits):
            bits.extend(bytes(byte - len(bits) + 64))
        bits[byte] |= 1 << (row & 7)

    def __contains__(self, cell: tuple[int, int]) -> bool:
        row, column = cell
        bits = self.columns.get(column)
        if bits is None or row < 1:
            return False
        byte = row >> 3
        return byte < len(bits) and bool(bits[byte] & (1 << (row & 7)))


def _open(source: str | os.PathLike | IO[bytes]):
    try:
        return load_workbook(source, read_only=True, data_only=False, keep_links=False)
    except FileNotFoundError as exc:
        raise WorkbookError(f"no such file: {exc.filename}") from exc
    except Exception as exc:
        # openpyxl reports bad input through many types (BadZipFile, KeyError, InvalidFileException, XML
        # errors, ValueError...); callers need exactly one.
        raise WorkbookError(f"not a readable .xlsx workbook: {exc}") from exc


def _formula_text(value) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, ArrayFormula):
        return value.text
    if isinstance(value, DataTableFormula):
        return None  # a what-if data table {=TABLE(...)}: no formula text to audit
    return None


def audit_workbook(
    source: str | os.PathLike | IO[bytes],
    *,
    platform: str = "excel",
    config: AuditConfig | None = None,
    policies: Iterable[Policy | Mapping] = (),
    max_formulas: int | None = None,
) -> list[FormulaResult]:
    """Audit every formula cell on every worksheet of the workbook at path `source` (or binary file object).

    Returns one FormulaResult per formula cell, sheet by sheet in workbook order, row by row; each has `sheet`
    and `cell` set and its findings worst first (possibly none). Besides the single-formula checks, runs
    SELF_REFERENCE (cells reading themselves and circular chains across sheets), INCONSISTENT_FORMULA and
    RANGE_OMITS_ADJACENT. Names defined in the workbook count as known (for LAMBDA functions called by name).

    Raises WorkbookError when `source` is missing or not a valid .xlsx/.xlsm; TooManyFormulas (a WorkbookError) as
    soon as formula number `max_formulas` + 1 is met, before auditing further; InputError / PolicyError
    (ValueErrors) for a bad platform or policy.
    """
    book = _open(source)
    try:
        known_names = _defined_names(book)
        auditor = FormulaAuditor(platform=platform, config=config, policies=policies, known_names=known_names)
        return _audit_open_book(book, auditor, max_formulas)
    finally:
        book.close()


def _defined_names(book) -> list[str]:
    names = list(getattr(book, "defined_names", {}) or {})
    for sheet in book.worksheets:
        names.extend(getattr(sheet, "defined_names", {}) or {})
    return names


def _audit_open_book(book, auditor: FormulaAuditor, max_formulas: int | None = None) -> list[FormulaResult]:
    results: list[list[Finding]] = []
    placed: list[tuple[str, str, str]] = []
    entries: list[GridEntry] = []
    aggregates: list[tuple[int, tuple[Reference, ...]]] = []
    numbers: dict[str, _Bitmap] = {}
    sheet_order = [sheet.title for sheet in book.worksheets]
    for sheet in book.worksheets:
        title = sheet.title
        bitmap = numbers[title.casefold()] = _Bitmap()
        for row in _rows(sheet):
            for cell in row:
                data_type = cell.data_type
                if data_type == "n":
                    if cell.value is not None:
                        bitmap.add(cell.row, cell.column)
                    continue
                if data_type != "f":
                    continue
                formula = _formula_text(cell.value)
                if formula is None:
                    continue
                if max_formulas is not None and len(results) == max_formulas:
                    raise TooManyFormulas(max_formulas)
                row_number, column = cell.row, cell.column
                bitmap.add(row_number, column)
                analysis, findings = auditor.audit_at(formula, row_number, column, title)
                facts = analysis.facts
                if facts is not None:
                    entries.append(GridEntry(title, row_number, column,
                                             fingerprint(analysis.parsed.tokens, row_number, column,
                                                         analysis.parsed.references),
                                             tuple(facts.value_references)))
                    if facts.aggregate_ranges:
                        aggregates.append((len(results), tuple(facts.aggregate_ranges)))
                else:
                    entries.append(GridEntry(title, row_number, column, None, ()))
                results.append(findings)
                placed.append((formula, format_address(row_number, column), title))
    add_grid_findings(entries, range(len(entries)), results, auditor.config, sheet_order)
    if "RANGE_OMITS_ADJACENT" not in auditor.config.disabled_codes:
        for index, ranges in aggregates:
            entry = entries[index]
            finding = omitted_adjacent_finding(entry.sheet, entry.row, entry.column, ranges, numbers)
            if finding is not None:
                results[index].append(finding)
    return [
        FormulaResult(formula, tuple(sort_findings(findings)), cell, title)
        for (formula, cell, title), findings in zip(placed, results, strict=True)
    ]


def _rows(sheet) -> Iterator[tuple]:
    """Yield a read-only sheet's rows, not trusting its stored dimensions (some writers get them wrong).

    Raises WorkbookError when the sheet's XML turns out to be corrupt, which only shows while streaming it.
    """
    sheet.reset_dimensions()
    rows = sheet.iter_rows()
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except Exception as exc:
            # Same reasoning as in _open: openpyxl and the XML parser raise many types for a bad part.
            raise WorkbookError(f"sheet {sheet.title!r} cannot be read: {exc}") from exc
        yield row


def omitted_adjacent_finding(sheet: str, row: int, column: int, ranges: Iterable[Reference],
                             numbers: Mapping[str, _Bitmap]) -> Finding | None:
    """Return RANGE_OMITS_ADJACENT when a one-column or one-row aggregated range stops one cell short of a
    number (or formula) that continues it, like Excel's "formula omits adjacent cells" check.

    The cell just past the end counts when it holds a number and is not the formula's own cell; the cell just
    before the start counts only when the two cells before it both hold numbers, so a numeric header such as a
    year above the data does not trigger it.
    """
    for ref in ranges:
        if ref.workbook is not None or ref.last_sheet is not None:
            continue
        bitmap = numbers.get((ref.sheet or sheet).casefold())
        if bitmap is None:
            continue
        same_sheet = ref.sheet is None or ref.sheet.casefold() == sheet.casefold()
        if ref.first_column == ref.last_column and ref.last_row > ref.first_row:
            after = (ref.last_row + 1, ref.first_column)
            before, before2 = (ref.first_row - 1, ref.first_column), (ref.first_row - 2, ref.first_column)
        elif ref.first_row == ref.last_row and ref.last_column > ref.first_column:
            after = (ref.first_row, ref.last_column + 1)
            before, before2 = (ref.first_row, ref.first_column - 1), (ref.first_row, ref.first_column - 2)
        else:
            continue
        own = same_sheet and after == (row, column)
        if not own and after in bitmap:
            missed = format_address(*after)
        elif before in bitmap and before2 in bitmap and not (same_sheet and before == (row, column)):
            missed = format_address(*before)
        else:
            continue
        return Finding("RANGE_OMITS_ADJACENT", Severity.HIGH,
                       f"The range {ref.text} stops next to {missed}, which holds a number; the total probably "
                       f"omits it — extend the range or leave a gap if the exclusion is deliberate.")
    return None
