"""Grid-aware checks on formulas given with their cells: R1C1 fingerprints, inconsistent formulas, cycles."""

from __future__ import annotations

import time

import pytest

from formula_audit import InputError, audit_formulas, parse_formula
from formula_audit.grid import fingerprint, r1c1
from formula_audit.references import parse_address


def codes_by_cell(items, **options) -> dict[str, set[str]]:
    return {result.cell: {f.code for f in result.findings} for result in audit_formulas(items, **options)}


def column(letter: str, rows: range, template: str) -> list[dict]:
    return [{"cell": f"{letter}{r}", "formula": template.format(r=r, p=r - 1)} for r in rows]


@pytest.mark.parametrize(("reference", "cell", "expected"), [
    ("A1", "C2", "R[-1]C[-2]"),
    ("$A$1", "C2", "R1C1"),
    ("A$1", "C2", "R1C[-2]"),
    ("B2:B9", "C10", "R[-8]C[-1]:R[-1]C[-1]"),
    ("A:B", "C2", "C[-2]:C[-1]"),
    ("$3:$3", "C2", "R3:R3"),
    ("Data!C2", "C2", "DATA!R[0]C[0]"),
])
def test_r1c1_is_relative_to_the_formula_cell(reference, cell, expected):
    tree = parse_formula("=" + reference).tree
    assert r1c1(tree.ref, *parse_address(cell)) == expected


def _fingerprint(formula: str, cell: str) -> str:
    parsed = parse_formula(formula)
    return fingerprint(parsed.tokens, *parse_address(cell))


def test_copies_share_a_fingerprint_and_edits_do_not():
    assert _fingerprint("=A2*B2", "C2") == _fingerprint("=a3 * b3", "C3")
    assert _fingerprint("=A2*$F$1", "C2") == _fingerprint("=A9*$F$1", "C9")
    assert _fingerprint("=A2*B2", "C2") != _fingerprint("=A3*B3*1.1", "C3")
    assert _fingerprint("=SUM(B2:E2)", "F2") != _fingerprint("=SUM(B3:D3)", "F3")
    assert _fingerprint("=_xlfn.XLOOKUP(A2,B:B,C:C)", "D2") == _fingerprint("=XLOOKUP(A3,B:B,C:C)", "D3")


def test_an_edited_copy_in_a_column_block_is_inconsistent():
    items = column("C", range(2, 10), "=A{r}*B{r}")
    items[3] = {"cell": "C5", "formula": "=A5*B5*1.1"}
    codes = codes_by_cell(items)
    assert codes["C5"] == {"INCONSISTENT_FORMULA", "HARDCODED_CONSTANT"}
    assert all(codes[f"C{r}"] == set() for r in range(2, 10) if r != 5)


def test_message_names_the_neighbours():
    items = column("C", range(2, 7), "=A{r}*B{r}")
    items[2] = {"cell": "C4", "formula": "=A4+B4"}
    [finding] = [f for r in audit_formulas(items) for f in r.findings if f.code == "INCONSISTENT_FORMULA"]
    assert "C4" in finding.message and "C3" in finding.message and "C5" in finding.message


def test_two_adjacent_edited_cells_are_both_flagged():
    items = column("D", range(1, 12), "=B{r}-C{r}")
    items[4] = {"cell": "D5", "formula": "=C5-B5"}
    items[5] = {"cell": "D6", "formula": "=C6-B6"}
    codes = codes_by_cell(items)
    assert [cell for cell, found in codes.items() if "INCONSISTENT_FORMULA" in found] == ["D5", "D6"]


def test_a_total_at_the_end_of_a_formula_column_is_not_inconsistent():
    items = [*column("D", range(2, 8), "=B{r}*C{r}"), {"cell": "D8", "formula": "=SUM(D2:D7)"}]
    assert all("INCONSISTENT_FORMULA" not in found for found in codes_by_cell(items).values())


def test_an_edited_formula_in_a_row_block_is_inconsistent():
    items = [{"cell": f"{c}10", "formula": f"=SUM({c}2:{c}9)"} for c in "BCDEFG"]
    items[2] = {"cell": "D10", "formula": "=SUM(D2:D8)"}
    codes = codes_by_cell(items)
    assert codes["D10"] == {"INCONSISTENT_FORMULA"}
    assert sum("INCONSISTENT_FORMULA" in found for found in codes.values()) == 1


def test_short_runs_and_gaps_are_not_judged():
    assert codes_by_cell([{"cell": "A1", "formula": "=B1"}, {"cell": "A2", "formula": "=C2*5"}]) == {
        "A1": set(), "A2": {"HARDCODED_CONSTANT"}}
    items = [{"cell": "A1", "formula": "=B1"}, {"cell": "A3", "formula": "=B3+C3"}, {"cell": "A5", "formula": "=B5"}]
    assert all(not found for found in codes_by_cell(items).values())


def test_formulas_on_different_sheets_are_separate_blocks():
    items = [
        {"cell": "A1", "formula": "=B1", "sheet": "One"},
        {"cell": "A2", "formula": "=C2", "sheet": "Two"},
        {"cell": "A3", "formula": "=B3", "sheet": "One"},
        {"cell": "A2", "formula": "=B2", "sheet": "One"},
    ]
    assert all(not found for found in codes_by_cell(items).values())


def test_direct_self_reference_in_a_list():
    assert codes_by_cell([{"cell": "C5", "formula": "=C5+1"}])["C5"] == {"SELF_REFERENCE"}


def test_circular_chain_of_two_cells():
    results = audit_formulas([{"cell": "A1", "formula": "=B1+1"}, {"cell": "B1", "formula": "=A1*2"},
                              {"cell": "C1", "formula": "=A1"}])
    codes = {r.cell: {f.code for f in r.findings} for r in results}
    assert codes == {"A1": {"SELF_REFERENCE"}, "B1": {"SELF_REFERENCE"}, "C1": set()}
    assert "circular chain of 2" in results[0].findings[0].message


def test_circular_chain_through_a_range_and_three_cells():
    items = [
        {"cell": "A1", "formula": "=SUM(B1:B3)"},
        {"cell": "B2", "formula": "=C1/2"},
        {"cell": "C1", "formula": "=A1-1"},
        {"cell": "B3", "formula": "=D1"},
    ]
    codes = codes_by_cell(items)
    assert {cell for cell, found in codes.items() if "SELF_REFERENCE" in found} == {"A1", "B2", "C1"}


def test_cycle_across_sheets():
    items = [
        {"cell": "A1", "formula": "=Two!A1", "sheet": "One"},
        {"cell": "A1", "formula": "='One'!A1+1", "sheet": "Two"},
    ]
    assert all(found == {"SELF_REFERENCE"} for found in codes_by_cell(items).values())


def test_references_without_a_cycle_are_fine():
    items = [
        {"cell": "A1", "formula": "=B1+C1"},
        {"cell": "B1", "formula": "=C1*2"},
        {"cell": "C1", "formula": "=ROW(A1)"},  # position only: no dependency on A1's value
    ]
    assert all(not found for found in codes_by_cell(items).values())


def test_cumulative_ranges_stay_fast():
    # Each formula reads the whole column above it: a naive dependency graph would be quadratic.
    items = [{"cell": f"A{r}", "formula": f"=MAX(A$1:A{r - 1})+B{r}"} for r in range(2, 4002)]
    start = time.perf_counter()
    results = audit_formulas(items)
    assert time.perf_counter() - start < 10
    assert all(not result.findings for result in results)


def test_items_may_mix_plain_strings_and_cells():
    results = audit_formulas(["=A1*1.07", {"cell": "B2", "formula": "=SUM(A1:A3)"}])
    assert [(r.cell, r.formula) for r in results] == [(None, "=A1*1.07"), ("B2", "=SUM(A1:A3)")]
    assert results[0].to_dict()["findings"][0]["code"] == "HARDCODED_CONSTANT"
    assert results[1].to_dict() == {"sheet": None, "cell": "B2", "formula": "=SUM(A1:A3)", "risk_score": 0,
                                    "findings": []}


def test_default_sheet_applies_to_items():
    [result] = audit_formulas([{"cell": "A1", "formula": "=Data!A1"}], sheet="Data")
    assert result.sheet == "Data" and {f.code for f in result.findings} == {"SELF_REFERENCE"}


@pytest.mark.parametrize("items", [
    [{"cell": "A1", "formula": "=1"}, {"cell": "a1", "formula": "=2"}],
    [{"formula": 5}],
    [{"cell": 5, "formula": "=1"}],
    [{"cell": "nowhere", "formula": "=1"}],
    [7],
])
def test_malformed_items_raise_input_error(items):
    with pytest.raises(InputError):
        audit_formulas(items)
