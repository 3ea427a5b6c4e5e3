"""Read policy rules out of a policy's prose, deterministically, so the author sees what the text will enforce.

Each sentence is matched against fixed patterns; a sentence none of them understands yields nothing — this reader
never guesses. Function names count only when written in capitals (INDIRECT) or with parentheses (indirect()),
and only when they are real Excel / Google Sheets functions. A prohibition is a cue ("do not", "avoid", "no",
"never", "must not", "instead of"...) before the subject, or a passive one after it ("... are forbidden",
"... must not be used").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .functions import (
    ALL_FUNCTIONS,
    ERROR_MASKING_FUNCTIONS,
    LOOKUP_FUNCTIONS,
    VOLATILE_FUNCTIONS,
    canonical_function_name,
)
from .policy import validate_rules


@dataclass(frozen=True, slots=True)
class ExtractedRule:
    """A rule read from prose: its name and value (as `validate_rules` accepts them) and the sentence it came
    from, with that sentence's [start, end) offsets in the text."""

    rule: str
    value: Any
    sentence: str
    start: int
    end: int

    def to_dict(self) -> dict:
        return {"rule": self.rule, "value": self.value, "sentence": self.sentence,
                "start": self.start, "end": self.end}


_I = re.IGNORECASE
_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "fifty": 50,
}
_N = r"(\d+|" + "|".join(_NUMBER_WORDS) + r")"

_CUE = re.compile(
    r"\b(?:do\s+not|don'?t|does\s+not|doesn'?t|must\s+not|mustn'?t|should\s+not|shouldn'?t|shall\s+not|cannot|"
    r"can'?t|may\s+not|never|avoid(?:ing)?|no|not|ban|forbid|prohibit|disallow|eliminate|instead\s+of|"
    r"rather\s+than|refrain\s+from|stop\s+using)\b", _I)
_PASSIVE = re.compile(
    r"\b(?:(?:is|are|be)\s+(?:not\s+(?:allowed|permitted|acceptable)|forbidden|prohibited|banned|disallowed)|"
    r"(?:must|should|shall|may)\s+not\s+be\s+used|(?:must|should|are\s+to)\s+be\s+avoided|"
    r"(?:is|are)\s+not\s+to\s+be\s+used|never\s+be\s+used|not\s+allowed)\b", _I)
# Words between a cue and its subject that turn the cue into something else: "no restriction on volatile".
_BLOCKERS = re.compile(r"\b(?:restrictions?|limits?|need|reason|problems?|issues?|requirements?|matter|"
                       r"exceptions?|but|unless|however|except)\b", _I)
_CLAUSE_BREAK = re.compile(r"\b(?:but|however|unless|although|whereas)\b|[,:]\s+(?:but|use|prefer)\b", _I)
_MAX_GAP_WORDS = 5

_FUNCTION_TOKEN = re.compile(r"(?<![\w.])([A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z0-9]+)*)(\(\))?(?![\w(])")
# Function names that are also everyday words in capitals ("must NOT", "IF possible", "AND").
_ENGLISH_FUNCTIONS = frozenset({"NOT", "AND", "OR", "IF", "N", "T", "TRUE", "FALSE", "NA", "NO", "DAYS", "TYPE",
                                "CELL", "INFO", "TEXT", "VALUE", "SIGN", "MODE", "RANK", "DATE", "TIME", "ROW",
                                "ROWS", "YEAR", "DAY", "HOUR", "MONTH", "SECOND", "MINUTE", "SHEET", "SHEETS"})

_LOOKUP_WORD = re.compile(r"\blook-?ups?\b|\b(?:VLOOKUP|HLOOKUP|XLOOKUP|MATCH|XMATCH)S?\b|INDEX/MATCH", _I)
_EXACT = re.compile(r"\bexact(?:ly)?\b", _I)
_APPROXIMATE = re.compile(r"\bapproximate(?:\s+match(?:es|ing)?)?\b|\brange_lookup\s*(?:=|of|as)?\s*TRUE\b", _I)
_VOLATILE = re.compile(r"\bvolatile\b", _I)
_EXTERNAL = re.compile(
    r"\bexternal\s+(?:links?|references?|workbooks?|files?|data|sources?|spreadsheets?)\b|"
    r"\blink(?:s|ing)?\s+(?:to|with)\s+(?:other|another|external|different)\s+(?:workbooks?|files?|spreadsheets?)\b|"
    r"\b(?:other|another|external|different|outside)\s+(?:workbooks?|files?|spreadsheets?)\b|"
    r"\bcross-workbook\s+(?:links?|references?)\b|\bIMPORTRANGE\b", _I)
_HARDCODED = re.compile(
    r"\bhard[- ]?cod(?:ed|ing)\b|\bmagic\s+numbers?\b|\bliteral\s+(?:numbers?|values?|constants?)\b|"
    r"\btyped[- ]in\s+(?:numbers?|values?)\b|\b(?:numbers?|constants?)\s+(?:typed\s+)?(?:in|into|inside)\s+formulas?\b|"
    r"\bembedded\s+(?:numbers?|constants?)\b", _I)
_ALLOW_LIST = re.compile(r"\b(?:except(?:\s+for)?|other\s+than|apart\s+from|besides|aside\s+from)\s+"
                         r"((?:-?\d+(?:\.\d+)?%?(?:\s*,\s*|\s+and\s+|\s+or\s+|\s*)?)+)", _I)
_MASKING = re.compile(
    r"\b(?:hid(?:e|es|ing)|mask(?:s|ing)?|suppress(?:es|ing)?|swallow(?:s|ing)?|bury(?:ing)?|silenc(?:e|ing))\s+"
    r"(?:the\s+|any\s+|all\s+)?errors?\b|\berror[- ]masking\b|\berror[- ]hiding\b", _I)
_NESTING = re.compile(r"\bnest(?:ed|ing|s)?\b", _I)
_IF_WORD = re.compile(r"\bIF(?:s|S)?\b|\bif\s+(?:functions?|statements?|formulas?)\b|\bifs\b")
_LENGTH = re.compile(r"\b(?:characters?|chars?)\b|\blength\b", _I)
_FORMULA_WORD = re.compile(r"\bformulas?\b|\bformulae\b", _I)
_REFERENCES = re.compile(r"\b(?:cell\s+|distinct\s+|range\s+)?references?\b", _I)

# (pattern, strict): strict limits ("under 300") allow one less than the number.
_LIMITS = [
    (re.compile(rf"\b(?:no|not)\s+more\s+than\s+{_N}", _I), False),
    (re.compile(rf"\bat\s+most\s+{_N}", _I), False),
    (re.compile(rf"\bmaximum\s+(?:of\s+|is\s+|length\s+(?:of\s+|is\s+)?)?{_N}", _I), False),
    (re.compile(rf"\bmax(?:imum)?\.?\s*(?:of\s+)?{_N}", _I), False),
    (re.compile(rf"\bup\s+to\s+{_N}", _I), False),
    (re.compile(rf"\blimit(?:ed)?\s+(?:of\s+|to\s+|is\s+)?{_N}", _I), False),
    (re.compile(rf"\b(?:not|never)\s+(?:to\s+)?exceed(?:ing)?\s+{_N}", _I), False),
    (re.compile(rf"(?:<=|≤)\s*{_N}", _I), False),
    (re.compile(rf"\b(?:fewer|less)\s+than\s+{_N}", _I), True),
    (re.compile(rf"\b(?:under|below)\s+{_N}", _I), True),
]
# Comparatives that state a limit only under a prohibition ("no formula longer than 500 characters").
_PROHIBITED_LIMITS = re.compile(rf"\b(?:more|longer|deeper|greater)\s+than\s+{_N}|\b(?:beyond|over|exceed(?:s|ing)?)\s+{_N}", _I)
_LEVELS = re.compile(rf"\b{_N}\s+(?:levels?|deep|layers?)\b", _I)


def _number(text: str) -> int:
    return int(text) if text.isdigit() else _NUMBER_WORDS[text.lower()]


def _sentences(text: str) -> list[tuple[int, int]]:
    """Return [start, end) spans of sentences: split at . ! ? ; followed by space or end, and at line breaks."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in re.finditer(r"[.!?;]+(?=\s|$)|\n", text):
        spans.append((start, match.end()))
        start = match.end()
    spans.append((start, len(text)))
    result = []
    for begin, end in spans:
        segment = text[begin:end]
        stripped = segment.strip()
        # Drop list markers ("- ", "* ", "1. ", "a) ").
        marker = re.match(r"\s*(?:[-*•]\s+|\d+[.)]\s+|[a-z]\)\s+)", segment)
        offset = marker.end() if marker else len(segment) - len(segment.lstrip())
        if stripped and re.search(r"\w", stripped):
            trailing = len(segment) - len(segment.rstrip())
            result.append((begin + offset, end - trailing))
    return result


def _prohibited_at(sentence: str, start: int, end: int) -> bool:
    """Tell whether the subject at sentence[start:end] is under a prohibition cue before it or after it."""
    for cue in _CUE.finditer(sentence, 0, start):
        gap = sentence[cue.end():start]
        if len(gap.split()) <= _MAX_GAP_WORDS and not _BLOCKERS.search(gap) and not _CLAUSE_BREAK.search(gap):
            return True
    after = sentence[end:]
    passive = _PASSIVE.search(after)
    if passive is None:
        return False
    gap = after[:passive.start()]
    return len(gap.split()) <= 8 and not _CLAUSE_BREAK.search(gap)


def _prohibits(sentence: str, pattern: re.Pattern) -> bool:
    return any(_prohibited_at(sentence, m.start(), m.end()) for m in pattern.finditer(sentence))


def _limit(sentence: str, prohibited: bool) -> int | None:
    for pattern, strict in _LIMITS:
        match = pattern.search(sentence)
        if match:
            value = _number(match.group(1))
            return value - 1 if strict else value
    if prohibited:
        match = _PROHIBITED_LIMITS.search(sentence)
        if match:
            return _number(match.group(1) or match.group(2))
    match = _LEVELS.search(sentence)
    if match and re.search(r"\b(?:max(?:imum)?|most|only|limit|up\s+to)\b", sentence, _I):
        return _number(match.group(1))
    return None


def _has_any_prohibition(sentence: str) -> bool:
    return bool(_CUE.search(sentence) or _PASSIVE.search(sentence))


def _exact_lookup(sentence: str) -> bool:
    if not _LOOKUP_WORD.search(sentence):
        return False
    for match in _EXACT.finditer(sentence):
        if not _prohibited_at(sentence, match.start(), match.end()) and not re.search(
                r"\b(?:need\s+not|needn'?t|optional|not\s+required|don'?t\s+need|do\s+not\s+need|not\s+have\s+to)\b",
                sentence, _I):
            return True
    if _prohibits(sentence, _APPROXIMATE):
        return True
    if _prohibits(sentence, re.compile(r"\bTRUE\b")):
        return True
    if re.search(r"\bwithout\s+(?:FALSE|0|an?\s+exact)", sentence, _I):
        return True
    return bool(re.search(r"\b(?:always|must|should|shall)\b.*\b(?:FALSE|0)\b", sentence))


def _allow_list(sentence: str) -> list[float] | None:
    match = _ALLOW_LIST.search(sentence)
    if not match:
        return None
    numbers = []
    for text in re.findall(r"-?\d+(?:\.\d+)?%?", match.group(1)):
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
        numbers.append(int(value) if value.is_integer() else value)
    return numbers or None


def _forbidden_functions(sentence: str) -> list[str]:
    names: list[str] = []
    for match in _FUNCTION_TOKEN.finditer(sentence):
        word, parens = match.group(1), match.group(2)
        if not parens and (word != word.upper() or word.upper() in _ENGLISH_FUNCTIONS):
            continue
        name = canonical_function_name(word)
        if name not in ALL_FUNCTIONS or name in names:
            continue
        if _prohibited_at(sentence, match.start(), match.end()):
            names.append(name)
    return names


def _rules_of_sentence(sentence: str) -> list[tuple[str, Any]]:
    rules: list[tuple[str, Any]] = []
    covered: set[str] = set()
    prohibited_anywhere = _has_any_prohibition(sentence)

    mentions_nested_ifs = bool(_NESTING.search(sentence) and _IF_WORD.search(sentence))
    if mentions_nested_ifs or re.search(r"\bnested\s+ifs?\b", sentence, _I):
        limit = _limit(sentence, prohibited_anywhere)
        if limit is None and prohibited_anywhere and re.search(
                r"\b(?:no|not|never|avoid|don'?t)\b[^.]*\bnest", sentence, _I):
            limit = 1
        if limit is not None and limit >= 1:
            rules.append(("max_if_depth", limit))
            covered.add("IF")
    mentions_length = bool(_FORMULA_WORD.search(sentence) and _LENGTH.search(sentence))
    if mentions_length or re.search(r"\bformulas?\b[^.]*\blonger\b", sentence, _I):
        limit = _limit(sentence, prohibited_anywhere)
        if limit is not None and limit >= 1 and not rules:
            rules.append(("max_formula_length", limit))
    if _REFERENCES.search(sentence) and not _EXTERNAL.search(sentence) and not rules:
        limit = _limit(sentence, prohibited_anywhere)
        if limit is not None and limit >= 1:
            rules.append(("max_references", limit))
    if _exact_lookup(sentence):
        rules.append(("require_exact_lookup", True))
        covered |= LOOKUP_FUNCTIONS
    if _prohibits(sentence, _VOLATILE):
        rules.append(("forbid_volatile", True))
        covered |= VOLATILE_FUNCTIONS
    if _prohibits(sentence, _EXTERNAL):
        rules.append(("forbid_external_references", True))
        covered.add("IMPORTRANGE")
    if _prohibits(sentence, _HARDCODED):
        allow = _allow_list(sentence)
        rules.append(("forbid_hardcoded_constants", {"allow": allow} if allow else True))
    if _prohibits(sentence, _MASKING):
        rules.append(("forbid_error_masking", True))
        covered |= ERROR_MASKING_FUNCTIONS
    functions = [name for name in _forbidden_functions(sentence) if name not in covered]
    if functions:
        rules.append(("forbid_functions", functions))
    return rules


def rules_from_prose(text: str) -> list[ExtractedRule]:
    """Return the rules `text` states, each with the sentence it came from, in text order.

    Deterministic: the same text always gives the same rules. Sentences it cannot read give no rule. Never
    raises for any string.
    """
    extracted: list[ExtractedRule] = []
    for start, end in _sentences(text):
        sentence = text[start:end]
        for rule, value in _rules_of_sentence(sentence):
            extracted.append(ExtractedRule(rule, value, sentence, start, end))
    return extracted


def merge_rules(extracted: list[ExtractedRule]) -> dict[str, Any]:
    """Combine extracted rules into one validated rules dict: forbidden functions and allow lists are united,
    limits take the strictest value, booleans stay true. Raises PolicyError only if the reader made an invalid
    rule, which would be a bug."""
    merged: dict[str, Any] = {}
    for item in extracted:
        rule, value = item.rule, item.value
        if rule == "forbid_functions":
            merged[rule] = list(dict.fromkeys([*merged.get(rule, []), *value]))
        elif rule in ("max_if_depth", "max_formula_length", "max_references"):
            merged[rule] = min(value, merged.get(rule, value))
        elif rule == "forbid_hardcoded_constants":
            previous = merged.get(rule)
            if isinstance(value, dict) and isinstance(previous, dict):
                merged[rule] = {"allow": sorted(set(previous["allow"]) | set(value["allow"]))}
            elif previous is None or previous is True:
                merged[rule] = value if previous is None else True
        else:
            merged[rule] = value
    return validate_rules(merged)
