"""What travels by value when a plan is saved now lives in ``dagexec.plan.portable``."""

from __future__ import annotations

from .plan.portable import (
    INSTALLED,
    OTHER,
    STDLIB,
    USER,
    _distribution_of,
    check_requirements,
    culprit,
    dump,
    module_kind,
    requirements,
    user_modules_by_value,
)

__all__ = [
    "INSTALLED",
    "OTHER",
    "STDLIB",
    "USER",
    "_distribution_of",
    "check_requirements",
    "culprit",
    "dump",
    "module_kind",
    "requirements",
    "user_modules_by_value",
]
