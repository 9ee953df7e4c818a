"""Filling argument templates now lives in ``dagexec.plan.templates``."""

from __future__ import annotations

from .plan.templates import fill

__all__ = ["fill"]
