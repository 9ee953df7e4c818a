"""The checks made at compile time now live in ``dagexec.plan.checks``."""

from __future__ import annotations

from .plan.checks import (
    CONST,
    INPUT,
    MAX_ITEMS_LISTED,
    NODE,
    SIMPLE,
    TPL,
    check_constant_pickles,
    check_constants,
    check_map_items,
    param_names,
    pickle_problem,
    pickles,
    qual,
    runtime_checks,
    unpicklable_part,
)

__all__ = [
    "CONST",
    "INPUT",
    "MAX_ITEMS_LISTED",
    "NODE",
    "SIMPLE",
    "TPL",
    "check_constant_pickles",
    "check_constants",
    "check_map_items",
    "param_names",
    "pickle_problem",
    "pickles",
    "qual",
    "runtime_checks",
    "unpicklable_part",
]
