"""Auditing whole .xlsx workbooks: findings by sheet and cell, grid checks, and bad files."""

from __future__ import annotations

import importlib.util
import io
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.formula import ArrayFormula

from formula_audit import TooManyFormulas, WorkbookError, audit_workbook

ROOT = Path(__file__).resolve().parent.parent


def save(book: Workbook, folder: Path, name: str = "book.xlsx") -> Path:
    path = folder / name
    book.save(path)
    return path


def codes_by_cell(results) -> dict[tuple[str, str], set[str]]:
    return {(r.sheet, r.cell): {f.code for f in r.findings} for r in results}


def test_every_formula_on_every_sheet_is_audited_in_order(tmp_path):
    book = Workbook()
    first = book.active
    first.title = "Inputs"
    first["A1"], first["A2"], first["B1"] = 5, "=A1*1.07", "text, not a formula"
    second = book.create_sheet("Calc")
    second["C3"], second["A1"] = "=Inputs!A1/Inputs!A2", "=TODAY()"
    results = audit_workbook(save(book, tmp_path))
    assert [(r.sheet, r.cell, r.formula) for r in results] == [
        ("Inputs", "A2", "=A1*1.07"), ("Calc", "A1", "=TODAY()"), ("Calc", "C3", "=Inputs!A1/Inputs!A2")]
    assert codes_by_cell(results) == {("Inputs", "A2"): {"HARDCODED_CONSTANT"}, ("Calc", "A1"): {"VOLATILE_FUNCTION"},
                                      ("Calc", "C3"): {"DIVISION_UNGUARDED"}}


def test_binary_file_objects_work(tmp_path):
    book = Workbook()
    book.active["A1"] = "=SUM(B:B)"
    stream = io.BytesIO()
    book.save(stream)
    stream.seek(0)
    [result] = audit_workbook(stream)
    assert (result.sheet, result.cell, {f.code for f in result.findings}) == ("Sheet", "A1", {"WHOLE_COLUMN_REFERENCE"})


def test_inconsistent_formula_in_a_workbook(tmp_path):
    book = Workbook()
    sheet = book.active
    for r in range(1, 9):
        sheet.append([r, r * 2, f"=A{r}+B{r}"])
    sheet["C4"] = "=A4-B4"
    codes = codes_by_cell(audit_workbook(save(book, tmp_path)))
    assert codes[("Sheet", "C4")] == {"INCONSISTENT_FORMULA"}
    assert sum("INCONSISTENT_FORMULA" in found for found in codes.values()) == 1


def test_range_omitting_the_adjacent_last_row(tmp_path):
    book = Workbook()
    sheet = book.active
    sheet.append(["Item", "Amount"])
    for r in range(2, 8):
        sheet.append([f"item {r}", r * 10])
    sheet["B9"] = "=SUM(B2:B6)"  # B7 holds a number right below the range
    sheet["C9"] = "=SUM(B2:B7)"  # complete
    codes = codes_by_cell(audit_workbook(save(book, tmp_path)))
    assert codes[("Sheet", "B9")] == {"RANGE_OMITS_ADJACENT"}
    assert codes[("Sheet", "C9")] == set()


def test_range_omitting_adjacent_cells_in_a_row_and_the_total_cell_itself(tmp_path):
    book = Workbook()
    sheet = book.active
    sheet.append([1, 2, 3, 4, "=SUM(A1:C1)"])  # D1 left out
    sheet.append([1, 2, 3, 4, "=SUM(A2:D2)"])  # the formula itself is next to the range: fine
    sheet.append([2024, 5, 6, 7])
    sheet["F3"] = "=SUM(B3:D3)"  # A3 (a lone number such as a year) just before the start is not enough
    results = audit_workbook(save(book, tmp_path))
    codes = codes_by_cell(results)
    assert codes == {("Sheet", "E1"): {"RANGE_OMITS_ADJACENT"}, ("Sheet", "E2"): set(), ("Sheet", "F3"): set()}
    [message] = [f.message for r in results for f in r.findings if r.cell == "E1"]
    assert "A1:C1" in message and "D1" in message


def test_range_omitting_data_before_its_start(tmp_path):
    book = Workbook()
    sheet = book.active
    for r in range(1, 9):
        sheet.append([r * 3])
    sheet["A10"] = "=SUM(A4:A8)"  # A1:A3 hold data too
    codes = codes_by_cell(audit_workbook(save(book, tmp_path)))
    assert codes[("Sheet", "A10")] == {"RANGE_OMITS_ADJACENT"}


def test_self_reference_and_cycles_across_sheets(tmp_path):
    book = Workbook()
    one = book.active
    one.title = "One"
    two = book.create_sheet("Two Words")
    one["A1"] = "='Two Words'!B2+1"
    two["B2"] = "=One!A1*2"
    one["B1"] = "=SUM(B:B)"
    one["C1"] = "=ROW(C1)"  # reads its own position, not its value
    codes = codes_by_cell(audit_workbook(save(book, tmp_path)))
    assert codes[("One", "A1")] == {"SELF_REFERENCE"}
    assert codes[("Two Words", "B2")] == {"SELF_REFERENCE"}
    assert codes[("One", "B1")] == {"SELF_REFERENCE", "WHOLE_COLUMN_REFERENCE"}
    assert codes[("One", "C1")] == set()


def test_three_d_reference_reaches_the_sheets_between(tmp_path):
    book = Workbook()
    names = ["Jan", "Feb", "Mar", "Total"]
    book.active.title = names[0]
    for name in names[1:]:
        book.create_sheet(name)
    book["Feb"]["A1"] = "=Total!A1"
    book["Total"]["A1"] = "=SUM(Jan:Mar!A1)"
    codes = codes_by_cell(audit_workbook(save(book, tmp_path)))
    assert codes[("Total", "A1")] == {"SELF_REFERENCE"} and codes[("Feb", "A1")] == {"SELF_REFERENCE"}


def test_array_formulas_and_defined_lambda_names(tmp_path):
    book = Workbook()
    sheet = book.active
    sheet["A1"] = ArrayFormula("A1:A3", "=B1:B3*1.07")
    sheet["C1"] = "=DOUBLE(B1)"
    sheet["C2"] = "=TRIPLE(B2)"
    book.defined_names["DOUBLE"] = DefinedName("DOUBLE", attr_text="LAMBDA(x,x*2)")
    codes = codes_by_cell(audit_workbook(save(book, tmp_path)))
    assert codes[("Sheet", "A1")] == {"HARDCODED_CONSTANT"}
    assert codes[("Sheet", "C1")] == set()  # a workbook-defined function
    assert codes[("Sheet", "C2")] == {"UNKNOWN_FUNCTION"}


def test_policies_apply_to_workbooks(tmp_path):
    book = Workbook()
    book.active["A1"] = "=INDIRECT(\"B1\")"
    [result] = audit_workbook(save(book, tmp_path), policies=[{"id": 3, "title": "No indirection",
                                                                 "rules": {"forbid_functions": ["INDIRECT"]}}])
    [violation] = [f for f in result.findings if f.code == "POLICY_VIOLATION"]
    assert violation.policy.id == 3 and violation.rule == "forbid_functions"


def test_a_workbook_without_formulas_gives_no_results(tmp_path):
    book = Workbook()
    book.active["A1"] = 3
    assert audit_workbook(save(book, tmp_path)) == []


def _zip_without_workbook() -> bytes:
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    return stream.getvalue()


@pytest.mark.parametrize("content", [b"", b"just some text", b"PK\x03\x04 truncated zip", _zip_without_workbook()])
def test_invalid_files_raise_workbook_error_only(tmp_path, content):
    path = tmp_path / "bad.xlsx"
    path.write_bytes(content)
    with pytest.raises(WorkbookError):
        audit_workbook(path)
    with pytest.raises(WorkbookError):
        audit_workbook(io.BytesIO(content))


def test_missing_file_raises_workbook_error(tmp_path):
    with pytest.raises(WorkbookError, match="no such file"):
        audit_workbook(tmp_path / "missing.xlsx")


def test_corrupt_sheet_xml_raises_workbook_error(tmp_path):
    book = Workbook()
    book.active["A1"] = "=1+1"
    good = save(book, tmp_path)
    broken = tmp_path / "broken.xlsx"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data[: len(data) // 2]
            target.writestr(item, data)
    with pytest.raises(WorkbookError):
        audit_workbook(broken)


def _load_sample_module():
    spec = importlib.util.spec_from_file_location("make_sample_workbook", ROOT / "samples" / "make_sample_workbook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_sample_workbook_shows_every_planted_problem(tmp_path):
    path = save(_load_sample_module().build_workbook(), tmp_path, "sample.xlsx")
    codes = codes_by_cell(audit_workbook(path))
    planted = {
        ("Budget", "F5"): {"INCONSISTENT_FORMULA", "RANGE_OMITS_ADJACENT"},
        ("Budget", "B10"): {"RANGE_OMITS_ADJACENT"},
        ("Budget", "G10"): {"HARDCODED_CONSTANT"},
        ("Summary", "B2"): {"VOLATILE_FUNCTION"},
        ("Summary", "B3"): {"EXTERNAL_REFERENCE"},
        ("Summary", "B4"): {"APPROXIMATE_LOOKUP", "WHOLE_COLUMN_REFERENCE"},
        ("Summary", "B5"): {"ERROR_MASKING"},
        ("Summary", "B6"): {"DIVISION_UNGUARDED"},
        ("Summary", "B7"): {"NESTED_IF", "HARDCODED_CONSTANT"},
        ("Summary", "B8"): {"SELF_REFERENCE"},
        ("Summary", "B9"): {"SELF_REFERENCE"},
        ("Summary", "B10"): {"SELF_REFERENCE"},
        ("Summary", "B11"): {"UNKNOWN_FUNCTION"},
        ("Summary", "B12"): {"ERROR_LITERAL"},
    }
    for cell, expected in planted.items():
        assert codes[cell] == expected, cell
    assert all(not found for cell, found in codes.items() if cell not in planted)


def test_the_checked_in_sample_matches_its_generator(tmp_path):
    fresh = save(_load_sample_module().build_workbook(), tmp_path, "sample.xlsx")
    assert codes_by_cell(audit_workbook(ROOT / "samples" / "quarterly_budget.xlsx")) == codes_by_cell(
        audit_workbook(fresh))


def test_audit_stops_at_the_first_formula_past_the_limit(tmp_path):
    book = Workbook()
    for row in range(1, 12):
        book.active.cell(row, 1, f"=B{row}*2")
    path = tmp_path / "many.xlsx"
    book.save(path)
    assert len(audit_workbook(path, max_formulas=11)) == 11
    with pytest.raises(TooManyFormulas):
        audit_workbook(path, max_formulas=10)
