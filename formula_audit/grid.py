"""Checks that need formulas with their cells: inconsistent formulas in a block, and circular chains.

INCONSISTENT_FORMULA compares formulas in relative R1C1 form (=A2*B2 in C2 and =A3*B3 in C3 are both
=RC[-2]*RC[-1]), the same fingerprint idea as Excel's "inconsistent formula" rule and ExceLint (Barowy et al.,
OOPSLA 2018): along each run of adjacent formula cells in a column or a row, a short stretch whose pattern
differs from the identical patterns on both sides of it is flagged. A different formula at the end of a run
(a total under a column of formulas) is not, since totals are meant to differ.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .findings import Finding, Severity
from .functions import canonical_function_name
from .lexer import Token
from .references import Reference, build_reference, format_address


@dataclass(frozen=True, slots=True)
class GridEntry:
    """A formula placed on the grid: its sheet (None for "the sheet"), row, column, relative fingerprint
    (None when it does not parse) and the references whose values it reads."""

    sheet: str | None
    row: int
    column: int
    fingerprint: str | None
    value_references: tuple[Reference, ...]


def _relative(prefix: str, number: int, origin: int, absolute: bool) -> str:
    return f"{prefix}{number}" if absolute else f"{prefix}[{number - origin}]"


def r1c1(ref: Reference, row: int, column: int) -> str:
    """Return `ref` in R1C1 notation relative to (row, column), e.g. A1 seen from C2 is R[-1]C[-2]."""
    if ref.kind == "columns":
        body = (_relative("C", ref.first_column, column, ref.first_column_absolute) + ":"
                + _relative("C", ref.last_column, column, ref.last_column_absolute))
    elif ref.kind == "rows":
        body = (_relative("R", ref.first_row, row, ref.first_row_absolute) + ":"
                + _relative("R", ref.last_row, row, ref.last_row_absolute))
    else:
        body = (_relative("R", ref.first_row, row, ref.first_row_absolute)
                + _relative("C", ref.first_column, column, ref.first_column_absolute))
        if ref.kind == "range":
            body += (":" + _relative("R", ref.last_row, row, ref.last_row_absolute)
                     + _relative("C", ref.last_column, column, ref.last_column_absolute))
    qualifier = ""
    if ref.workbook is not None:
        qualifier += f"[{ref.workbook}]"
    if ref.sheet is not None:
        qualifier += ref.sheet.upper() + (f":{ref.last_sheet.upper()}" if ref.last_sheet else "") + "!"
    return qualifier + body


def fingerprint(tokens: Sequence[Token], row: int, column: int,
                references: Mapping[int, Reference] | None = None) -> str:
    """Return the formula's relative R1C1 form from its tokens: equal for copies of one formula along a block.

    `references` (token start -> Reference, as ParsedFormula.references) saves parsing reference tokens again.
    """
    parts: list[str] = []
    known = references or {}
    for kind, text, start, _end, _spaced in tokens:
        if kind == "ref":
            ref = known.get(start)
            if ref is None:
                prefix, bang, body = text.rpartition("!")
                ref = build_reference(text, prefix if bang else None, body)
            parts.append(r1c1(ref, row, column) if ref is not None else text.upper())
        elif kind == "func":
            parts.append(canonical_function_name(text[:-1]) + "(")
        elif kind == "str":
            parts.append(text)
        else:
            parts.append(text.upper())
        parts.append(" ")
    return "".join(parts)


def inconsistent_findings(entries: Sequence[GridEntry], min_side: int = 1) -> dict[int, Finding]:
    """Return INCONSISTENT_FORMULA findings by entry index.

    A stretch of cells is flagged when it is shorter than the two stretches around it in its column (or row)
    run, those two share one pattern, the stretch's pattern differs, and each side has at least `min_side` cells.
    """
    findings: dict[int, Finding] = {}
    by_sheet: dict[str | None, dict[tuple[int, int], int]] = defaultdict(dict)
    for index, entry in enumerate(entries):
        by_sheet[entry.sheet][(entry.row, entry.column)] = index
    for positions in by_sheet.values():
        columns: dict[int, list[int]] = defaultdict(list)
        rows: dict[int, list[int]] = defaultdict(list)
        for row, column in positions:
            columns[column].append(row)
            rows[row].append(column)
        for column, column_rows in columns.items():
            column_rows.sort()
            line = [positions[(row, column)] for row in column_rows]
            _scan_line(entries, line, column_rows, "above", "below", min_side, findings)
        for row, row_columns in rows.items():
            row_columns.sort()
            line = [positions[(row, column)] for column in row_columns]
            _scan_line(entries, line, row_columns, "to the left", "to the right", min_side, findings)
    return findings


def _scan_line(entries, line: list[int], coordinates: list[int], before: str, after: str, min_side: int,
               findings: dict[int, Finding]) -> None:
    # Split the line into runs of adjacent cells, then each run into stretches of one pattern.
    start = 0
    count = len(line)
    while start < count:
        end = start + 1
        while end < count and coordinates[end] == coordinates[end - 1] + 1:
            end += 1
        if end - start >= 3:
            stretches: list[list[int]] = []
            for index in line[start:end]:
                if stretches and entries[stretches[-1][0]].fingerprint == entries[index].fingerprint:
                    stretches[-1].append(index)
                else:
                    stretches.append([index])
            for position in range(1, len(stretches) - 1):
                prev, middle, nxt = stretches[position - 1], stretches[position], stretches[position + 1]
                prev_fp = entries[prev[0]].fingerprint
                if (prev_fp != entries[nxt[0]].fingerprint or len(prev) < min_side or len(nxt) < min_side
                        or len(middle) >= len(prev) + len(nxt)):
                    continue
                neighbours = f"{_address(entries[prev[-1]])} {before} and {_address(entries[nxt[0]])} {after}"
                for index in middle:
                    if index in findings:
                        continue
                    findings[index] = Finding(
                        "INCONSISTENT_FORMULA", Severity.HIGH,
                        f"The formula in {_address(entries[index])} differs from the pattern shared by "
                        f"{neighbours} it; a copy-down that was edited by hand is a classic spreadsheet error.")
        start = end


def _address(entry: GridEntry) -> str:
    return format_address(entry.row, entry.column)


def circular_findings(entries: Sequence[GridEntry], sheet_order: Sequence[str] = ()) -> dict[int, Finding]:
    """Return SELF_REFERENCE findings for cells on a circular chain of two or more of the given formulas.

    Ranges are linked through a segment tree over each column's formula cells, so a formula reading a whole
    column costs O(log n) edges rather than one per cell, and the search stays linear-ish for 100,000 formulas.
    A cell reading only itself is reported by the single-formula check, not here.
    """
    graph = _DependencyGraph(entries, sheet_order)
    findings: dict[int, Finding] = {}
    for component in graph.cyclic_components():
        cells = sorted(component, key=lambda i: (entries[i].sheet or "", entries[i].row, entries[i].column))
        names = [_qualified(entries[i]) for i in cells]
        listed = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        for index in cells:
            findings[index] = Finding(
                "SELF_REFERENCE", Severity.CRITICAL,
                f"{_address(entries[index])} is part of a circular chain of {len(cells)} formulas ({listed}): "
                "each depends, through the others, on itself.")
    return findings


def _qualified(entry: GridEntry) -> str:
    return (f"{entry.sheet}!" if entry.sheet else "") + _address(entry)


class _DependencyGraph:
    """Formula cells plus segment-tree nodes per (sheet, column); edges point from a formula to what it reads."""

    def __init__(self, entries: Sequence[GridEntry], sheet_order: Sequence[str]) -> None:
        self.entries = entries
        self.sheet_order = tuple(sheet_order)
        self.size = len(entries)
        self.adjacency: list[list[int]] = [[] for _ in entries]
        # (sheet key, column) -> (sorted rows, entry ids in that order, tree size, first internal node id)
        self.columns: dict[tuple[str, int], tuple[list[int], list[int], int, int]] = {}
        self.sheet_columns: dict[str, list[int]] = {}
        self._build_columns()
        for index, entry in enumerate(entries):
            for ref in entry.value_references:
                self._link(index, entry, ref)

    def _sheet_key(self, sheet: str | None) -> str:
        return (sheet or "").casefold()

    def _build_columns(self) -> None:
        grouped: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
        for index, entry in enumerate(self.entries):
            grouped[(self._sheet_key(entry.sheet), entry.column)].append((entry.row, index))
        for key, cells in grouped.items():
            cells.sort()
            rows = [row for row, _ in cells]
            ids = [index for _, index in cells]
            tree_size = 1
            while tree_size < len(ids):
                tree_size *= 2
            base = len(self.adjacency)
            # internal node p (1 <= p < tree_size) gets id base + p - 1
            self.adjacency.extend([] for _ in range(tree_size - 1))
            for p in range(1, tree_size):
                for child in (2 * p, 2 * p + 1):
                    target = self._tree_node(child, tree_size, base, ids)
                    if target is not None:
                        self.adjacency[base + p - 1].append(target)
            self.columns[key] = (rows, ids, tree_size, base)
            self.sheet_columns.setdefault(key[0], []).append(key[1])
        for columns in self.sheet_columns.values():
            columns.sort()

    @staticmethod
    def _tree_node(p: int, tree_size: int, base: int, ids: list[int]) -> int | None:
        if p >= tree_size:
            leaf = p - tree_size
            return ids[leaf] if leaf < len(ids) else None
        return base + p - 1

    def _target_sheets(self, entry: GridEntry, ref: Reference) -> list[str]:
        if ref.workbook is not None:
            return []
        if ref.sheet is None:
            return [self._sheet_key(entry.sheet)]
        if ref.last_sheet is None:
            return [self._sheet_key(ref.sheet)]
        return [self._sheet_key(name) for name in self.sheet_order
                if ref.on_sheet(name, entry.sheet, self.sheet_order)]

    def _link(self, index: int, entry: GridEntry, ref: Reference) -> None:
        edges = self.adjacency[index]
        for sheet in self._target_sheets(entry, ref):
            columns = self.sheet_columns.get(sheet)
            if not columns:
                continue
            lo = bisect_left(columns, ref.first_column)
            hi = bisect_right(columns, ref.last_column)
            for column in columns[lo:hi]:
                rows, ids, tree_size, base = self.columns[(sheet, column)]
                left = bisect_left(rows, ref.first_row)
                right = bisect_right(rows, ref.last_row)
                # Standard bottom-up segment tree cover of leaves [left, right).
                left += tree_size
                right += tree_size
                while left < right:
                    if left & 1:
                        edges.append(self._tree_node(left, tree_size, base, ids))
                        left += 1
                    if right & 1:
                        right -= 1
                        edges.append(self._tree_node(right, tree_size, base, ids))
                    left //= 2
                    right //= 2

    def cyclic_components(self) -> list[list[int]]:
        """Return the strongly connected components holding two or more formula cells (iterative Tarjan)."""
        adjacency = self.adjacency
        count = len(adjacency)
        order = [0] * count  # 0 = unvisited, else discovery number + 1
        low = [0] * count
        on_stack = [False] * count
        stack: list[int] = []
        components: list[list[int]] = []
        counter = 1
        for root in range(self.size):
            if order[root]:
                continue
            work = [(root, 0)]
            order[root] = low[root] = counter
            counter += 1
            stack.append(root)
            on_stack[root] = True
            while work:
                node, edge = work[-1]
                successors = adjacency[node]
                if edge < len(successors):
                    work[-1] = (node, edge + 1)
                    nxt = successors[edge]
                    if not order[nxt]:
                        order[nxt] = low[nxt] = counter
                        counter += 1
                        stack.append(nxt)
                        on_stack[nxt] = True
                        work.append((nxt, 0))
                    elif on_stack[nxt] and order[nxt] < low[node]:
                        low[node] = order[nxt]
                    continue
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == order[node]:
                    members = []
                    while True:
                        member = stack.pop()
                        on_stack[member] = False
                        if member < self.size:
                            members.append(member)
                        if member == node:
                            break
                    if len(members) >= 2:
                        components.append(members)
        return components
