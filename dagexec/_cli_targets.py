"""Moved: the command line's targets, inputs and option values live in ``dagexec/cli/targets.py``; the names below stay importable from here."""

from .cli.targets import (
    UNITS,
    UsageError,
    age,
    duration,
    fingerprint,
    load_plan,
    parse_inputs,
    parse_value,
    positive_int,
    resolve_target,
)

__all__ = [
    "UNITS",
    "UsageError",
    "age",
    "duration",
    "fingerprint",
    "load_plan",
    "parse_inputs",
    "parse_value",
    "positive_int",
    "resolve_target",
]
