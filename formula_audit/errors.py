"""The engine's exceptions: one hierarchy, so a caller (the HTTP API) can map them to 422 in one place."""

from __future__ import annotations


class FormulaAuditError(Exception):
    """Base of every exception the engine raises on purpose."""


class InputError(FormulaAuditError, ValueError):
    """An argument is malformed: a bad cell address, platform, item shape or configuration value."""


class PolicyError(InputError):
    """A policy's rules do not follow the schema. `rule` names the offending rule (None for the whole dict)."""

    def __init__(self, message: str, rule: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule


class WorkbookError(FormulaAuditError):
    """The input is not a readable .xlsx/.xlsm workbook (not a zip, missing parts, corrupt XML, missing file).

    The only exception `audit_workbook` raises for a bad file; the message says what went wrong.
    """


class TooManyFormulas(WorkbookError):
    """The workbook holds more formulas than the caller's limit; raised when the first one past it is met."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the workbook holds more than {limit} formulas")
        self.limit = limit
