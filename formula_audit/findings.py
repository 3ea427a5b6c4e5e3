"""What an audit reports: severities, findings, per-formula results and the risk score."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Severity(enum.IntEnum):
    """How much a finding matters; ordered, so `max(f.severity for f in findings)` is the worst one."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        """The lower-case name used in JSON: "info", "low", "medium", "high" or "critical"."""
        return self.name.lower()

    @classmethod
    def parse(cls, label: str) -> Severity:
        """Return the severity called `label` (any case). Raises ValueError for anything else."""
        try:
            return cls[label.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown severity {label!r}; use one of info, low, medium, high, critical") from None


@dataclass(frozen=True, slots=True)
class PolicyRef:
    """The policy a POLICY_VIOLATION finding breaches."""

    id: object
    title: str

    def to_dict(self) -> dict:
        return {"id": self.id, "title": self.title}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found in one formula.

    `code` is stable (e.g. "APPROXIMATE_LOOKUP"); `message` names the function, reference or number involved.
    `policy` is None for built-in checks and set for POLICY_VIOLATION, whose `rule` names the breached rule.
    """

    code: str
    severity: Severity
    message: str
    policy: PolicyRef | None = None
    rule: str | None = None

    def to_dict(self) -> dict:
        """Return a JSON-ready dict: code, severity (label), message, policy ({"id","title"} or None), rule."""
        return {
            "code": self.code,
            "severity": self.severity.label,
            "message": self.message,
            "policy": self.policy.to_dict() if self.policy else None,
            "rule": self.rule,
        }


@dataclass(frozen=True, slots=True)
class FormulaResult:
    """The findings for one formula; `sheet` and `cell` are set when the formula came with its position."""

    formula: str
    findings: tuple[Finding, ...]
    cell: str | None = None
    sheet: str | None = None

    @property
    def risk_score(self) -> int:
        return risk_score(self.findings)

    def to_dict(self) -> dict:
        """Return a JSON-ready dict: sheet, cell, formula, risk_score and findings (as Finding.to_dict)."""
        return {
            "sheet": self.sheet,
            "cell": self.cell,
            "formula": self.formula,
            "risk_score": self.risk_score,
            "findings": [finding.to_dict() for finding in self.findings],
        }

    def flat_findings(self) -> list[dict]:
        """Return one dict per finding with its position: {"sheet","cell","formula","code","severity","message",
        "policy","rule"} — the shape the CLI prints with --json."""
        return [
            {"sheet": self.sheet, "cell": self.cell, "formula": self.formula, **finding.to_dict()}
            for finding in self.findings
        ]


# The chance-like weight of one finding of each severity, out of 100.
SEVERITY_WEIGHTS: dict[Severity, int] = {
    Severity.INFO: 0,
    Severity.LOW: 5,
    Severity.MEDIUM: 15,
    Severity.HIGH: 35,
    Severity.CRITICAL: 60,
}


def risk_score(findings: Iterable[Finding]) -> int:
    """Return a 0-100 risk score for `findings`.

    score = round(100 * (1 - prod(1 - w_i / 100))), w_i being SEVERITY_WEIGHTS of each finding's severity
    (info 0, low 5, medium 15, high 35, critical 60). Each finding is treated as an independent chance that the
    formula is wrong: the score never decreases when a finding is added, one critical gives 60, two highs 58,
    and it approaches but only reaches 100 by rounding. No findings (or only info) give 0.
    """
    survival = 1.0
    for finding in findings:
        survival *= 1 - SEVERITY_WEIGHTS[finding.severity] / 100
    return round(100 * (1 - survival))


def worst_severity(findings: Iterable[Finding]) -> Severity | None:
    """Return the highest severity among `findings`, or None when there are none."""
    return max((finding.severity for finding in findings), default=None)
