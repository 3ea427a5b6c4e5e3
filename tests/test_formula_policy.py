"""Organization policies: rule validation, POLICY_VIOLATION findings, and reading rules from prose."""

from __future__ import annotations

import pytest

from formula_audit import (
    RULES,
    AuditConfig,
    Policy,
    PolicyError,
    PolicyRef,
    audit_formula,
    merge_rules,
    rules_from_prose,
    validate_rules,
)


def test_validate_rules_normalizes():
    rules = validate_rules({
        "forbid_functions": ["indirect", "_xlfn.XLOOKUP", "INDIRECT", "offset()"],
        "forbid_hardcoded_constants": {"allow": [100, 0, 1, 0]},
        "max_if_depth": 3,
        "require_exact_lookup": True,
    })
    assert rules == {"forbid_functions": ["INDIRECT", "XLOOKUP", "OFFSET"],
                     "forbid_hardcoded_constants": {"allow": [0, 1, 100]},
                     "max_if_depth": 3, "require_exact_lookup": True}
    assert validate_rules({}) == {}


@pytest.mark.parametrize(("rules", "rule", "message"), [
    ({"max_ifs": 3}, "max_ifs", "unknown rule 'max_ifs'"),
    ({"forbid_functions": "INDIRECT"}, "forbid_functions", "list of function names"),
    ({"forbid_functions": ["INDIRECT", "FOO"]}, "forbid_functions", "'FOO', which is not"),
    ({"forbid_functions": [3]}, "forbid_functions", "as strings"),
    ({"require_exact_lookup": "yes"}, "require_exact_lookup", "true or false"),
    ({"forbid_volatile": 1}, "forbid_volatile", "true or false"),
    ({"max_if_depth": 0}, "max_if_depth", "positive integer"),
    ({"max_formula_length": 2.5}, "max_formula_length", "positive integer"),
    ({"max_references": True}, "max_references", "positive integer"),
    ({"forbid_hardcoded_constants": "no"}, "forbid_hardcoded_constants", "true, false or"),
    ({"forbid_hardcoded_constants": {"allow": ["one"]}}, "forbid_hardcoded_constants", "list of numbers"),
    ({"forbid_hardcoded_constants": {"deny": [1]}}, "forbid_hardcoded_constants", "only the key 'allow'"),
])
def test_invalid_rules_raise_naming_the_rule(rules, rule, message):
    with pytest.raises(PolicyError, match=message) as caught:
        validate_rules(rules)
    assert caught.value.rule == rule
    assert isinstance(caught.value, ValueError)  # the API maps ValueErrors to 422


def test_rules_must_be_a_mapping():
    with pytest.raises(PolicyError, match="object"):
        validate_rules(["forbid_volatile"])


def test_policy_validates_on_construction():
    with pytest.raises(PolicyError):
        Policy(1, "Bad", {"nope": True})
    policy = Policy(7, "Finance", {"forbid_functions": ["indirect"]})
    assert policy.rules == {"forbid_functions": ["INDIRECT"]} and policy.ref == PolicyRef(7, "Finance")


def test_every_rule_is_described():
    assert set(RULES) == {"forbid_functions", "require_exact_lookup", "forbid_volatile",
                          "forbid_external_references", "forbid_hardcoded_constants", "max_if_depth",
                          "max_formula_length", "max_references", "forbid_error_masking"}
    assert all(spec.description for spec in RULES.values())


@pytest.mark.parametrize(("rules", "formula", "breached"), [
    ({"forbid_functions": ["INDIRECT", "OFFSET"]}, "=SUM(INDIRECT(\"A1:A3\"))", True),
    ({"forbid_functions": ["INDIRECT"]}, "=SUM(A1:A3)", False),
    ({"forbid_functions": ["XLOOKUP"]}, "=_xlfn.XLOOKUP(A1,B:B,C:C)", True),
    ({"require_exact_lookup": True}, "=VLOOKUP(A1,B2:C9,2)", True),
    ({"require_exact_lookup": True}, "=VLOOKUP(A1,B2:C9,2,FALSE)", False),
    ({"require_exact_lookup": True}, "=XLOOKUP(A1,B2:B9,C2:C9,,-1)", True),
    ({"require_exact_lookup": False}, "=VLOOKUP(A1,B2:C9,2)", False),
    ({"forbid_volatile": True}, "=TODAY()", True),
    ({"forbid_volatile": True}, "=A1+1", False),
    ({"forbid_external_references": True}, "=[Book.xlsx]S!A1", True),
    ({"forbid_external_references": True}, "=IMPORTRANGE(\"k\",\"A1\")", True),
    ({"forbid_external_references": True}, "=Sheet2!A1", False),
    ({"forbid_hardcoded_constants": True}, "=A1*1.07", True),
    ({"forbid_hardcoded_constants": True}, "=A1*12", False),  # the engine's allow-list applies
    ({"forbid_hardcoded_constants": {"allow": [1.07]}}, "=A1*1.07", False),
    ({"forbid_hardcoded_constants": {"allow": [0]}}, "=A1*12", True),  # the policy's own allow-list
    ({"max_if_depth": 2}, "=IF(A1,IF(A2,IF(A3,\"a\",\"b\"),\"c\"),\"d\")", True),
    ({"max_if_depth": 3}, "=IF(A1,IF(A2,IF(A3,\"a\",\"b\"),\"c\"),\"d\")", False),
    ({"max_formula_length": 10}, "=SUM(A1:A100)", True),  # 13 characters
    ({"max_formula_length": 13}, "=SUM(A1:A100)", False),
    ({"max_formula_length": 5}, "=SUM(A1", True),  # judged even when the formula does not parse
    ({"max_references": 2}, "=A1+B1+C1", True),
    ({"max_references": 3}, "=A1+B1+C1", False),
    ({"forbid_error_masking": True}, "=IFERROR(A1/B1,0)", True),
    ({"forbid_error_masking": True}, "=IFNA(A1,0)", True),
    ({"forbid_error_masking": True}, "=ISNUMBER(A1)", False),
])
def test_each_rule_is_enforced(rules, formula, breached):
    policy = Policy("p-1", "Finance modelling standard", rules)
    violations = [f for f in audit_formula(formula, policies=[policy]) if f.code == "POLICY_VIOLATION"]
    assert bool(violations) == breached
    for finding in violations:
        assert finding.policy == PolicyRef("p-1", "Finance modelling standard")
        assert finding.rule in rules
        assert "Finance modelling standard" in finding.message and finding.rule in finding.message
        assert finding.to_dict()["policy"] == {"id": "p-1", "title": "Finance modelling standard"}


def test_several_policies_report_separately_and_builtin_findings_have_no_policy():
    policies = [Policy(1, "A", {"forbid_volatile": True}), {"id": 2, "title": "B", "rules": {"forbid_volatile": True}}]
    findings = audit_formula("=TODAY()", policies=policies)
    assert sorted((f.policy.id, f.rule) for f in findings if f.policy) == [(1, "forbid_volatile"), (2, "forbid_volatile")]
    assert [f.code for f in findings if f.policy is None] == ["VOLATILE_FUNCTION"]


def test_policy_mapping_missing_keys_raises():
    with pytest.raises(ValueError, match="id, title and rules"):
        audit_formula("=1", policies=[{"id": 1, "rules": {}}])


def test_policy_allow_list_is_independent_of_config():
    policy = Policy(1, "P", {"forbid_hardcoded_constants": True})
    config = AuditConfig(allowed_constants={0, 1, 1.07})
    assert [f.code for f in audit_formula("=A1*1.07", policies=[policy], config=config)] == []


# ---- prose -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("Do not use INDIRECT or OFFSET.", [("forbid_functions", ["INDIRECT", "OFFSET"])]),
    ("INDIRECT and OFFSET are forbidden.", [("forbid_functions", ["INDIRECT", "OFFSET"])]),
    ("Use XLOOKUP instead of VLOOKUP.", [("forbid_functions", ["VLOOKUP"])]),
    ("Do not use today() in models.", [("forbid_functions", ["TODAY"])]),
    ("Lookups must use exact match.", [("require_exact_lookup", True)]),
    ("Approximate matches are not allowed in lookups.", [("require_exact_lookup", True)]),
    ("VLOOKUP must always use FALSE as the last argument.", [("require_exact_lookup", True)]),
    ("No hard-coded numbers.", [("forbid_hardcoded_constants", True)]),
    ("No hard-coded numbers except 0, 1 and 100.", [("forbid_hardcoded_constants", {"allow": [0, 1, 100]})]),
    ("Avoid magic numbers in formulas.", [("forbid_hardcoded_constants", True)]),
    ("No links to other workbooks.", [("forbid_external_references", True)]),
    ("Formulas must not reference external files.", [("forbid_external_references", True)]),
    ("No more than 3 nested IFs.", [("max_if_depth", 3)]),
    ("IF statements must not be nested more than four levels deep.", [("max_if_depth", 4)]),
    ("Do not nest IFs.", [("max_if_depth", 1)]),
    ("Formulas must not exceed 500 characters.", [("max_formula_length", 500)]),
    ("Keep formulas under 300 characters.", [("max_formula_length", 299)]),
    ("A formula may use at most 12 cell references.", [("max_references", 12)]),
    ("Avoid volatile functions.", [("forbid_volatile", True)]),
    ("Volatile functions must not be used.", [("forbid_volatile", True)]),
    ("Do not hide errors with IFERROR.", [("forbid_error_masking", True)]),
    ("Avoid IFERROR.", [("forbid_functions", ["IFERROR"])]),
])
def test_prose_rules(text, expected):
    extracted = rules_from_prose(text)
    assert [(rule.rule, rule.value) for rule in extracted] == expected
    assert all(rule.sentence == text.rstrip() for rule in extracted)


@pytest.mark.parametrize("text", [
    "",
    "Be nice to colleagues.",
    "There is no restriction on volatile functions.",
    "You may use INDIRECT when needed.",
    "Lookups need not use exact match.",
    "Do NOT use FOO or BAR.",  # not real functions
    "Do not use IF if possible, AND keep it simple.",  # IF and AND are English here
    "Formulas should be readable.",
    "Keep nesting shallow.",  # no number, no prohibition of IFs
    "Volatile functions are useful sometimes.",
])
def test_prose_it_cannot_read_yields_no_rule(text):
    assert rules_from_prose(text) == []


def test_prose_reports_the_sentence_and_its_offsets():
    text = ("Our modelling standard.\n- Do not use TODAY()\n- Never link to external workbooks\n"
            "- IF statements must not be nested more than four levels deep; formulas must not exceed 400 characters.")
    extracted = rules_from_prose(text)
    assert [(e.rule, e.value) for e in extracted] == [
        ("forbid_functions", ["TODAY"]), ("forbid_external_references", True), ("max_if_depth", 4),
        ("max_formula_length", 400)]
    for item in extracted:
        assert text[item.start:item.end] == item.sentence
    assert extracted[0].sentence == "Do not use TODAY()"
    assert extracted[0].to_dict()["sentence"] == "Do not use TODAY()"


def test_prose_is_deterministic_and_merges_into_valid_rules():
    text = ("Do not use INDIRECT. Avoid OFFSET and INDIRECT. No more than 4 nested IFs. Never nest IFs more than "
            "2 deep. No hard-coded numbers except 0 and 1. No hard-coded numbers other than 100.")
    assert rules_from_prose(text) == rules_from_prose(text)
    merged = merge_rules(rules_from_prose(text))
    assert merged == {"forbid_functions": ["INDIRECT", "OFFSET"], "max_if_depth": 2,
                      "forbid_hardcoded_constants": {"allow": [0, 1, 100]}}
    assert validate_rules(merged) == merged
    Policy("from-prose", "From prose", merged)  # usable as a policy as it stands


def test_prose_covered_functions_are_not_repeated_as_forbidden():
    extracted = rules_from_prose("Avoid volatile functions such as INDIRECT and OFFSET, and never use WEBSERVICE.")
    assert [(e.rule, e.value) for e in extracted] == [("forbid_volatile", True), ("forbid_functions", ["WEBSERVICE"])]
