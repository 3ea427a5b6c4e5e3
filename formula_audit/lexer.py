"""Split a formula body into tokens with one compiled regular expression.

We do not use openpyxl's `Tokenizer` in the hot path: measured on the same formulas it is several times slower
than this scanner (see bench/bench_formula_engine.py), it reads `A1:INDEX(B:B,3)` as one function token, raises
IndexError on `=(1))`, and rejects the spill operator (`A1#`). The test-suite checks that both agree on the
operands of ordinary formulas.

A token is a tuple `(kind, text, start, end, spaced)`: `spaced` tells whether whitespace came just before it,
which is what makes a space an intersection operator. Kinds: num str bool err ref qname func struct name op
and the punctuation characters ( ) { } , ; themselves.
"""

from __future__ import annotations

import re

Token = tuple[str, str, int, int, bool]

_QUOTED_SHEET = r"'(?:[^']|'')+'"
_UNQUOTED_SHEET = r"(?:\[[^\]]+\])?[^\W\d][\w.]*(?::[^\W\d][\w.]*)?"
PREFIX = rf"(?:{_QUOTED_SHEET}|{_UNQUOTED_SHEET}|\[[^\]]+\])!"
_CELL = r"\$?[A-Za-z]{1,3}\$?[0-9]+"
# The look-ahead stops "LOG10(" or "A1B" being read as cell A1 / LOG10 followed by junk.
BODY = rf"(?:{_CELL}(?::{_CELL})?|\$?[A-Za-z]{{1,3}}:\$?[A-Za-z]{{1,3}}|\$?[0-9]+:\$?[0-9]+)(?![\w.(\[!$'])"
ERROR_LITERALS = (
    "#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA", "#SPILL!", "#CALC!",
    "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!", "#UNKNOWN!", "#EXTERNAL!", "#PYTHON!",
)
_ERROR = "|".join(re.escape(code) for code in ERROR_LITERALS)

_MASTER = re.compile(
    rf"""
    (?P<ws>[ \t\r\n]+)
  | (?P<str>"(?:[^"]|"")*")
  | (?P<ref>(?:{PREFIX})?{BODY})
  | (?P<referr>{PREFIX}\#REF!)
  | (?P<qname>{PREFIX}[^\W\d][\w.?]*(?![\w.(\[]))
  | (?P<func>(?:[^\W\d]|\\)[\w.]*\()
  | (?P<bool>(?:TRUE|FALSE)(?![\w.(\[!]))
  | (?P<struct>(?:[^\W\d][\w.]*)?\[)
  | (?P<name>(?:[^\W\d]|\\)[\w.?\\]*)
  | (?P<num>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<err>{_ERROR})
  | (?P<op><>|<=|>=|[-+*/^&=<>%:@\#])
  | (?P<punct>[(){{}},;])
    """,
    re.VERBOSE | re.IGNORECASE,
)


class LexError(Exception):
    """The formula contains text no token matches (an unterminated string, a stray character...)."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


def _structured_end(text: str, open_bracket: int) -> int:
    """Return the index just past the bracket matching the one at `open_bracket`; `'` escapes one character.

    Raises LexError when the brackets never balance.
    """
    depth = 0
    index = open_bracket
    length = len(text)
    while index < length:
        char = text[index]
        if char == "'":
            index += 2
            continue
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    raise LexError("unclosed '[' in a table reference", open_bracket)


def tokenize(body: str) -> list[Token]:
    """Split formula `body` (without its leading "=") into tokens; whitespace is folded into `spaced` flags.

    Raises LexError at the first character that starts no token.
    """
    tokens: list[Token] = []
    append = tokens.append
    match_at = _MASTER.match
    position = 0
    length = len(body)
    spaced = False
    while position < length:
        match = match_at(body, position)
        if match is None:
            char = body[position]
            if char == '"':
                raise LexError("unterminated string (a '\"' is never closed)", position)
            if char == "'":
                raise LexError("unterminated quoted sheet name or a quoted name without '!'", position)
            raise LexError(f"unexpected character {char!r}", position)
        kind = match.lastgroup
        end = match.end()
        if kind == "ws":
            spaced = True
            position = end
            continue
        if kind == "punct":
            kind = match.group()
        elif kind == "struct":
            end = _structured_end(body, end - 1)
        append((kind, body[position:end], position, end, spaced))
        spaced = False
        position = end
    return tokens
