"""Thresholds and switches of the built-in checks."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import InputError

# Numbers that are units or identities rather than business assumptions: 0 and 1, halves, months in a year,
# hours in a day, weeks in a year, minutes, percent, days in a year, thousands.
DEFAULT_ALLOWED_CONSTANTS: frozenset[float] = frozenset({0, 1, 2, 7, 12, 24, 52, 60, 100, 365, 1000})

PLATFORMS = ("excel", "sheets")


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """Configuration of the built-in checks; every field has a sensible default.

    allowed_constants: numbers HARDCODED_CONSTANT ignores (compared by absolute value, after applying %).
    max_if_depth: NESTED_IF fires when IFs nest deeper than this.
    max_operations: LONG_FORMULA fires when operators plus function calls exceed this.
    max_references: MANY_REFERENCES fires when distinct references exceed this.
    disabled_codes: built-in codes to leave out entirely (policy findings are never disabled here).
    Raises InputError (a ValueError) for a negative or non-integer limit.
    """

    allowed_constants: frozenset[float] = DEFAULT_ALLOWED_CONSTANTS
    max_if_depth: int = 3
    max_operations: int = 30
    max_references: int = 20
    disabled_codes: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_constants", frozenset(float(n) for n in self.allowed_constants))
        object.__setattr__(self, "disabled_codes", frozenset(self.disabled_codes))
        for name in ("max_if_depth", "max_operations", "max_references"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError(f"AuditConfig.{name} must be a non-negative integer, not {value!r}")


DEFAULT_CONFIG = AuditConfig()


def check_platform(platform: str) -> str:
    """Return `platform` lower-cased if it is "excel" or "sheets". Raises InputError (a ValueError) otherwise."""
    normalized = platform.strip().lower() if isinstance(platform, str) else platform
    if normalized not in PLATFORMS:
        raise InputError(f"unknown platform {platform!r}; use 'excel' or 'sheets'")
    return normalized
