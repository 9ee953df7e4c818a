"""Moved: ``dagexec diff`` lives in ``dagexec/cache/diff.py``; the names below stay importable from here."""

from .cache.diff import plan_diff

__all__ = ["plan_diff"]
