"""Write samples/quarterly_budget.xlsx: a small, realistic budget with a spread of deliberate formula problems.

Run with `.venv/bin/python samples/make_sample_workbook.py [OUTPUT]`. The problems planted (and what the audit
engine reports for them):

- Budget!F5 sums Q1:Q3 only while its neighbours sum Q1:Q4      -> INCONSISTENT_FORMULA, RANGE_OMITS_ADJACENT
- Budget!B10 totals rows 2-7 and misses row 8 just above        -> RANGE_OMITS_ADJACENT
- Budget!G10 multiplies by a typed-in 0.2 tax rate               -> HARDCODED_CONSTANT
- Summary!B2 uses TODAY()                                         -> VOLATILE_FUNCTION
- Summary!B3 links to another workbook                            -> EXTERNAL_REFERENCE
- Summary!B4 looks up a rate without FALSE over whole columns    -> APPROXIMATE_LOOKUP, WHOLE_COLUMN_REFERENCE
- Summary!B5 hides a division error with IFERROR                  -> ERROR_MASKING
- Summary!B6 divides by a cell with no zero test                  -> DIVISION_UNGUARDED
- Summary!B7 nests four IFs with typed-in thresholds              -> NESTED_IF, HARDCODED_CONSTANT
- Summary!B8 adds itself; Summary!B9/B10 refer to each other     -> SELF_REFERENCE
- Summary!B11 misspells SUM, Summary!B12 keeps a #REF!           -> UNKNOWN_FUNCTION, ERROR_LITERAL
Summary!B13 and B14 are clean formulas, as most formulas are.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font

OUTPUT = Path(__file__).with_name("quarterly_budget.xlsx")

LINE_ITEMS = [
    ("Salaries", 120_000, 122_500, 125_000, 127_500),
    ("Rent", 18_000, 18_000, 18_000, 18_500),
    ("Software", 6_400, 6_900, 7_100, 7_300),
    ("Travel", 4_200, 3_100, 5_800, 2_900),
    ("Marketing", 15_000, 22_000, 18_500, 30_000),
    ("Training", 2_500, 1_800, 2_200, 3_000),
    ("Utilities", 2_100, 1_950, 1_800, 2_250),
]
REGIONS = [("Central", 0.02), ("North", 0.035), ("South", 0.05), ("West", 0.065)]


def build_workbook() -> Workbook:
    """Return the sample workbook (not yet saved)."""
    book = Workbook()
    budget = book.active
    budget.title = "Budget"
    budget.append(["Item", "Q1", "Q2", "Q3", "Q4", "Total", "Tax"])
    for cell in budget[1]:
        cell.font = Font(bold=True)
    for offset, (item, *quarters) in enumerate(LINE_ITEMS):
        row = offset + 2
        budget.append([item, *quarters, f"=SUM(B{row}:E{row})"])
    budget["F5"] = "=SUM(B5:D5)"  # an edited copy-down: Q4 left out
    last = len(LINE_ITEMS) + 1  # row 8
    budget.append([])  # row 9 stays empty between the items and the totals
    totals = ["Total", *(f"=SUM({letter}2:{letter}{last})" for letter in "BCDEF"), "=F10*0.2"]
    budget.append(totals)  # row 10
    budget["B10"] = f"=SUM(B2:B{last - 1})"  # stops one row short of the data
    budget["A10"].font = Font(bold=True)

    rates = book.create_sheet("Rates")
    rates.append(["Region", "Rate"])
    for region, rate in REGIONS:
        rates.append([region, rate])

    summary = book.create_sheet("Summary")
    rows = [
        ("Report date", "=TODAY()"),
        ("Forecast total", "='[Forecast 2025.xlsx]Summary'!B4"),
        ("Regional rate", "=VLOOKUP(C2,Rates!A:B,2)"),
        ("Q4 growth", "=IFERROR((Budget!E10-Budget!B10)/Budget!B10,0)"),
        ("Cost per head", "=Budget!F10/C3"),
        ("Band", ('=IF(Budget!F10>400000,"A",IF(Budget!F10>300000,"B",IF(Budget!F10>200000,"C",'
                  'IF(Budget!F10>100000,"D","E"))))')),
        ("Contingency", "=Budget!F10*C4+B8"),
        ("Reserve", "=B10/2"),
        ("Buffer", "=B9+C5"),
        ("Check total", "=SUMM(Budget!F2:F8)"),
        ("Old link", "=#REF!*2"),
        ("Average item", "=AVERAGE(Budget!F2:F8)"),
        ("Largest item", "=INDEX(Budget!A2:A8,MATCH(MAX(Budget!F2:F8),Budget!F2:F8,0))"),
    ]
    summary.append(["Measure", "Value", "Input"])
    for label, formula in rows:
        summary.append([label, formula])
    summary["C2"], summary["C3"], summary["C4"], summary["C5"] = "North", 42, 0.05, 10
    book.properties.creator = "formula_audit sample"
    fixed = datetime.datetime(2025, 1, 1)
    book.properties.created = book.properties.modified = fixed
    return book


def main(argv: list[str]) -> None:
    output = Path(argv[1]) if len(argv) > 1 else OUTPUT
    build_workbook().save(output)
    print(f"wrote {output}")


if __name__ == "__main__":
    main(sys.argv)
