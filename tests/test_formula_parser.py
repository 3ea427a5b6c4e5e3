"""The formula parser: tree shapes, references, numbers, syntax errors, and that it never raises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl.formula.tokenizer import Tokenizer

from formula_audit import audit_formula, parse_formula
from formula_audit.lexer import tokenize
from formula_audit.nodes import Call, Missing, Number, Ref, Text, dump
from formula_audit.references import MAX_COLUMN, MAX_ROW


@pytest.mark.parametrize(("formula", "tree"), [
    ("=-2^2", "(^ (-u 2) 2)"),  # Excel: negation binds tighter than ^, so this is 4
    ("=2^3^2", "(^ (^ 2 3) 2)"),  # left-associative: 64
    ("=1+2*3", "(+ 1 (* 2 3))"),
    ("=(1+2)*3", "(* (+ 1 2) 3)"),
    ("=1-2-3", "(- (- 1 2) 3)"),
    ("=2^50%", "(^ 2 (%p 50))"),  # % binds tighter than ^
    ("=-A1%", "(%p (-u A1))"),
    ("=A1&B1=C1", "(= (& A1 B1) C1)"),
    ("=A1+B1&C1", "(& (+ A1 B1) C1)"),
    ("=A1<>B1*2", "(<> A1 (* B1 2))"),
    ("=-A1:A3", "(-u A1:A3)"),  # the range operator binds tightest
    ("=A1:INDEX(B:B,3)", "(: A1 (INDEX B:B 3))"),
    ("=SUM(A1:B2 B1:C3)", "(SUM (isect A1:B2 B1:C3))"),
    ("=SUM((A1,B1),C1)", "(SUM (union A1 B1) C1)"),
    ("=VLOOKUP(A1,B:C,2,)", "(VLOOKUP A1 B:C 2 _)"),
    ("=IF(A1,,)", "(IF A1 _ _)"),
    ("=NOW()", "(NOW)"),
    ("={1,2;3,4}", "{1,2;3,4}"),
    ('="a""b"&"#REF!"', '(& "a""b" "#REF!")'),
    ("=Sheet1!A1:Sheet1!B2", "Sheet1!A1:Sheet1!B2"),
    ("=LAMBDA(x,x+1)(2)", "(invoke (LAMBDA x (+ x 1)) 2)"),
    ("=@A1:A3", "(@u A1:A3)"),
    ("=A1#", "(#p A1)"),
    ("=--A1", "(-u (-u A1))"),
    ("=SUM(IF(A1,B1,C1),D1)", "(SUM (IF A1 B1 C1) D1)"),
    ("=_xlfn.XLOOKUP(1,A:A,B:B)", "(XLOOKUP 1 A:A B:B)"),
    ("=Table1[[#This Row],[Col]]", "Table1[[#This Row],[Col]]"),
    ("=SUM(Sheet1:Sheet3!A1)", "(SUM Sheet1:Sheet3!A1)"),
    ("='SUM'!A1+IF!B2", "(+ 'SUM'!A1 IF!B2)"),
    ("=#REF!+1", "(+ #REF! 1)"),
    ("=A1 >= 2", "(>= A1 2)"),
])
def test_tree_shape(formula, tree):
    parsed = parse_formula(formula)
    assert parsed.ok, parsed.error
    assert dump(parsed.tree) == tree


def test_function_call_keeps_arguments_and_canonical_name():
    tree = parse_formula("=_xlfn.IFS(A1>0,1,TRUE,0)").tree
    assert isinstance(tree, Call)
    assert (tree.name, tree.raw_name, len(tree.args)) == ("IFS", "_xlfn.IFS", 4)


def test_empty_argument_is_a_missing_node():
    tree = parse_formula("=VLOOKUP(A1,B:C,2,)").tree
    assert isinstance(tree.args[3], Missing)


def test_string_value_unescapes_doubled_quotes():
    tree = parse_formula('="say ""hi"""').tree
    assert isinstance(tree, Text) and tree.value == 'say "hi"'


@pytest.mark.parametrize(("formula", "value"), [
    ("=1.5E+3", 1500.0), ("=.5", 0.5), ("=1E-3", 0.001), ("=42", 42.0), ("=0.25", 0.25), ("=3e2", 300.0),
])
def test_numbers_are_locale_free(formula, value):
    tree = parse_formula(formula).tree
    assert isinstance(tree, Number) and tree.value == value


@pytest.mark.parametrize(("formula", "expected"), [
    ("='Bob''s'!A1", {"sheet": "Bob's", "workbook": None, "kind": "cell"}),
    ("='My Sheet'!$B$2", {"sheet": "My Sheet", "first_row_absolute": True, "first_column_absolute": True}),
    ("=Sheet1:Sheet3!A1", {"sheet": "Sheet1", "last_sheet": "Sheet3"}),
    ("='Jan 2024:Dec 2024'!A1", {"sheet": "Jan 2024", "last_sheet": "Dec 2024"}),
    ("=[Book.xlsx]Sheet1!A1", {"workbook": "Book.xlsx", "sheet": "Sheet1"}),
    ("='[Other Book.xlsx]Data'!A1", {"workbook": "Other Book.xlsx", "sheet": "Data"}),
    ("=[1]Sheet1!A1", {"workbook": "1", "sheet": "Sheet1"}),
    ("='C:\\path\\[x.xlsx]S'!A1", {"workbook": "C:\\path\\x.xlsx", "sheet": "S"}),
    ("=A:A", {"kind": "columns", "first_column": 1, "last_column": 1, "first_row": 1, "last_row": MAX_ROW}),
    ("=$A:$C", {"kind": "columns", "first_column": 1, "last_column": 3, "first_column_absolute": True}),
    ("=1:1", {"kind": "rows", "first_row": 1, "last_row": 1, "last_column": MAX_COLUMN}),
    ("=B3:A1", {"kind": "range", "first_row": 1, "first_column": 1, "last_row": 3, "last_column": 2}),
    ("=$A1", {"first_column_absolute": True, "first_row_absolute": False}),
    ("=A$1", {"first_column_absolute": False, "first_row_absolute": True}),
    ("=XFD1048576", {"first_column": MAX_COLUMN, "first_row": MAX_ROW}),
    ("='Ünïcode Шит'!B2", {"sheet": "Ünïcode Шит", "first_row": 2, "first_column": 2}),
])
def test_reference_fields(formula, expected):
    tree = parse_formula(formula).tree
    assert isinstance(tree, Ref)
    for field, value in expected.items():
        assert getattr(tree.ref, field) == value, field


@pytest.mark.parametrize("formula", ["=XFE1", "=ABCD1", "=A0", "=R1C1"])
def test_outside_the_grid_is_a_name_not_a_reference(formula):
    parsed = parse_formula(formula)
    assert parsed.ok and not isinstance(parsed.tree, Ref)


@pytest.mark.parametrize(("formula", "message"), [
    ("=SUM(A1", "never closed"),
    ("=SUM(A1))", "no matching '('"),
    ("=(1))", "no matching '('"),
    ("=1+", "missing operand"),
    ("=*2", "missing operand"),
    ("=", "empty"),
    ("=1 2", "missing operator"),
    ('="abc', "unterminated string"),
    ("={1,,2}", "empty element"),
    ("=A1,B1", "outside a function"),
])
def test_syntax_errors_explain_themselves(formula, message):
    parsed = parse_formula(formula)
    assert not parsed.ok and parsed.tree is None
    assert message in parsed.error
    assert 0 <= parsed.error_position <= len(parsed.body)


def test_deep_nesting_is_a_syntax_error_not_a_recursion_error():
    parsed = parse_formula("=" + "(" * 1000 + "1" + ")" * 1000)
    assert not parsed.ok and "nested" in parsed.error
    codes = {finding.code for finding in audit_formula("=" + "SUM(" * 500 + "1" + ")" * 500)}
    assert codes == {"SYNTAX_ERROR"}


def test_very_long_operator_chains_are_audited_without_recursion():
    formula = "=" + "+".join(["A1"] * 4000) + "/B1"
    codes = {finding.code for finding in audit_formula(formula)}
    assert {"LONG_FORMULA", "DIVISION_UNGUARDED"} <= codes


def test_leading_equals_and_array_braces_are_optional():
    assert dump(parse_formula("SUM(A1:A3)").tree) == dump(parse_formula("{=SUM(A1:A3)}").tree) == "(SUM A1:A3)"
    assert parse_formula("SUM(A1)").had_equals is False


FORMULA_CHARS = "=+-*/^&%:(),;{}\"'!$#[]@ <>._\nABCXYZabcxyz0123456789ÉШ"


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80))
def test_parser_never_raises_on_any_text(text):
    parsed = parse_formula(text)
    assert (parsed.tree is None) == (parsed.error is not None)


@settings(max_examples=600, deadline=None)
@given(st.text(alphabet=FORMULA_CHARS, max_size=60))
def test_audit_never_raises_and_flags_unparseable_text(text):
    parsed = parse_formula(text)
    codes = {finding.code for finding in audit_formula(text)}
    assert ("SYNTAX_ERROR" in codes) == (not parsed.ok)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["A1", "$B$2", "SUM(", ")", "+", "*", "-", "2", ",", "(", "'S x'!C3", "1:1",
                                 "IF(", "\"t\"", "^", "%", " ", "Table1[Col]", "{1,2}", "#REF!", "&"]),
                max_size=25))
def test_audit_never_raises_on_formula_like_token_soup(parts):
    text = "=" + "".join(parts)
    findings = audit_formula(text)
    assert all(finding.message for finding in findings)


# Ordinary formulas on which openpyxl's Tokenizer is right: our lexer must find the same operands and functions.
AGREEMENT_CORPUS = [
    "=SUM(A1:A10)",
    "=VLOOKUP($A2,'Price List'!$A:$C,3,FALSE)",
    "=IFERROR(INDEX(Data!B:B,MATCH(A2,Data!A:A,0)),\"\")",
    "=IF(B2=0,0,A2/B2)*1.07",
    "=ROUND(D5*(1+$H$1)^2,2)",
    "=A1&\" - \"&TEXT(B1,\"0.0%\")",
    "=[Book.xlsx]Sheet1!A1+'[Other Book.xlsx]Data'!B2",
    "=SUM(Table1[Amount])/COUNT(Table1[Amount])",
    "={1,2;3,4}",
    "=-B2^2+SQRT(ABS(C2))",
    "=SUMIFS(Sales!$D:$D,Sales!$A:$A,$A3,Sales!$B:$B,\">=\"&$B$1)",
    "=_xlfn.XLOOKUP(E1,A2:A50,B2:B50)",
    "=#REF!+1",
    "=Sheet1:Sheet3!A1*2.5E+3",
]


def _openpyxl_view(formula: str) -> tuple[list[str], list[str], list[str]]:
    items = Tokenizer(formula).items
    operands = [t.value for t in items if t.type == "OPERAND" and t.subtype in ("RANGE", "ERROR")]
    numbers = [t.value for t in items if t.type == "OPERAND" and t.subtype == "NUMBER"]
    functions = [t.value for t in items if t.type == "FUNC" and t.subtype == "OPEN"]
    return operands, numbers, functions


def _our_view(formula: str) -> tuple[list[str], list[str], list[str]]:
    tokens = tokenize(formula[1:])
    operands = [t[1] for t in tokens if t[0] in ("ref", "struct", "qname", "name", "err", "referr")]
    numbers = [t[1] for t in tokens if t[0] == "num"]
    functions = [t[1] for t in tokens if t[0] == "func"]
    return operands, numbers, functions


@pytest.mark.parametrize("formula", AGREEMENT_CORPUS)
def test_lexer_agrees_with_openpyxl_tokenizer_on_ordinary_formulas(formula):
    assert _our_view(formula) == _openpyxl_view(formula)


@pytest.mark.parametrize("formula", ["=(1))", "=A1#"])
def test_inputs_openpyxl_tokenizer_raises_on_still_parse_or_fail_cleanly(formula):
    parsed = parse_formula(formula)
    assert parsed.ok == (formula == "=A1#")


def test_call_on_a_range_end_is_a_range_operator_not_one_function_token():
    # openpyxl's Tokenizer reads "A1:INDEX(" as a single function name.
    assert [t[0] for t in tokenize("A1:INDEX(B:B,3)")][:3] == ["ref", "op", "func"]
