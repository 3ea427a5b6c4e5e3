"""Benchmark the formula audit engine.

1. Formulas audited per second on one core, against openpyxl's formula Tokenizer alone on the same formulas (the
   floor: any engine built on it costs at least that much).
2. Time and peak memory to audit a generated workbook of 100,000 formulas: wall time, the peak RSS of a fresh
   process doing only that audit, and tracemalloc's peak on a smaller workbook (tracing slows Python ~4x).

Run: .venv/bin/python bench/bench_formula_engine.py [--formulas N] — bounded to well under two minutes.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from openpyxl import Workbook
from openpyxl.formula.tokenizer import Tokenizer

from formula_audit.audit import FormulaAuditor
from formula_audit.lexer import tokenize
from formula_audit.parser import parse_formula
from formula_audit.workbook import audit_workbook

TEMPLATES = [
    "=SUM(B{r}:E{r})",
    "=F{r}*0.2",
    "=VLOOKUP($A{r},Rates!$A$2:$C$40,3,FALSE)",
    "=IFERROR(INDEX(Data!B:B,MATCH(A{r},Data!A:A,0)),\"\")",
    "=IF(B{r}=0,0,C{r}/B{r})",
    "=ROUND(D{r}*(1+$H$1)^(YEAR(TODAY())-2020),2)",
    "=IF(AND(B{r}>100,C{r}<50),\"Review\",IF(B{r}>50,\"Watch\",\"OK\"))",
    "=SUMIFS(Sales!$D:$D,Sales!$A:$A,$A{r},Sales!$B:$B,\">=\"&$B$1)",
    "=A{r}&\" - \"&TEXT(B{r},\"0.0%\")",
    "='Q1 Budget'!C{r}+'Q2 Budget'!C{r}-[Forecast.xlsx]Plan!C{r}",
    "=XLOOKUP(A{r},Table1[Key],Table1[Value],\"missing\")",
    "=-B{r}^2+SQRT(ABS(C{r}))/COUNT($B$2:$B$500)",
]


def make_formulas(count: int, seed: int = 7) -> list[str]:
    """Return `count` distinct formulas (a realistic mix; row numbers keep them distinct)."""
    rng = random.Random(seed)
    return [rng.choice(TEMPLATES).format(r=index + 2) for index in range(count)]


def rate(function, formulas: list[str], repeat: int = 3) -> float:
    """Return the best formulas-per-second of `repeat` runs of `function` over `formulas`."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for formula in formulas:
            function(formula)
        best = min(best, time.perf_counter() - start)
    return len(formulas) / best


_AUDITOR = FormulaAuditor()


def audit_uncached(formula: str) -> None:
    # A fresh analysis each time: the per-text cache would otherwise make repeated runs free.
    _AUDITOR._cache.clear()
    _AUDITOR.audit_at(formula, 5, 7, "Sheet1")


def write_workbook(path: str, formulas: int) -> None:
    """Write a workbook with `formulas` formula cells (4 per row) beside 4 columns of numbers."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Data")
    rows = formulas // 4
    for r in range(2, rows + 2):
        sheet.append([
            r * 1.5, r % 97, r % 13 + 1, r * 0.25,
            f"=SUM(A{r}:D{r})", f"=IF(C{r}=0,0,A{r}/C{r})", f"=E{r}*$J$1", f"=VLOOKUP(B{r},$K$2:$L$98,2,FALSE)",
        ])
    book.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formulas", type=int, default=100_000, help="formula cells in the generated workbook")
    parser.add_argument("--sample", type=int, default=20_000, help="distinct formulas for the throughput test")
    parser.add_argument("--traced", type=int, default=10_000, help="formulas in the workbook traced by tracemalloc")
    args = parser.parse_args()

    formulas = make_formulas(args.sample)
    floor = rate(Tokenizer, formulas)
    lexer = rate(lambda f: tokenize(f[1:]), formulas)
    parsed = rate(parse_formula, formulas)
    audited = rate(audit_uncached, formulas)
    print(f"Throughput on {len(formulas):,} distinct formulas (one core, best of 3):")
    print(f"  openpyxl Tokenizer alone (floor) {floor:>10,.0f} formulas/s")
    print(f"  formula_audit lexer              {lexer:>10,.0f} formulas/s  ({lexer / floor:.2f}x the floor's speed)")
    print(f"  formula_audit parse to tree      {parsed:>10,.0f} formulas/s  ({parsed / floor:.2f}x)")
    print(f"  formula_audit full audit         {audited:>10,.0f} formulas/s  ({audited / floor:.2f}x; "
          f"costs {floor / audited:.2f}x tokenizing alone)")

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "bench.xlsx")
        start = time.perf_counter()
        write_workbook(path, args.formulas)
        written = time.perf_counter() - start
        size = os.path.getsize(path) / 1e6
        print(f"\nWorkbook: {args.formulas:,} formulas, {size:.1f} MB, generated in {written:.1f} s")

        start = time.perf_counter()
        results = audit_workbook(path)
        elapsed = time.perf_counter() - start
        findings = sum(len(result.findings) for result in results)
        print(f"  audit_workbook: {elapsed:.1f} s ({len(results) / elapsed:,.0f} formulas/s), "
              f"{len(results):,} results, {findings:,} findings")
        del results
        baseline, peak = peak_rss_of_audit(path)
        print(f"  peak RSS of a fresh process auditing it: {peak:.0f} MB "
              f"({peak - baseline:.0f} MB above the {baseline:.0f} MB after imports)")

        small = os.path.join(folder, "small.xlsx")
        write_workbook(small, args.traced)
        tracemalloc.start()
        audit_workbook(small)
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"  tracemalloc peak auditing {args.traced:,} formulas: {traced_peak / 1e6:.1f} MB "
              f"({traced_peak / args.traced:,.0f} bytes per formula, results included)")


_CHILD = """
import sys
sys.path.insert(0, {root!r})
from formula_audit.workbook import audit_workbook

def high_water_mb():
    # VmHWM belongs to this process's own address space; ru_maxrss would carry over the parent's peak
    # across exec on Linux.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

before = high_water_mb()
results = audit_workbook({path!r})
print(before, high_water_mb())
"""


def peak_rss_of_audit(path: str) -> tuple[float, float]:
    """Audit `path` in a fresh interpreter; return its peak RSS after imports and at the end, in MB."""
    root = str(Path(__file__).resolve().parent.parent)
    output = subprocess.run([sys.executable, "-c", _CHILD.format(root=root, path=path)],
                            check=True, capture_output=True, text=True).stdout
    before, after = (float(value) for value in output.split())
    return before, after


if __name__ == "__main__":
    main()
