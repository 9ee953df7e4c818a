"""``plan.fingerprint`` and the value tokens now live in ``dagexec.plan.fingerprint``."""

from __future__ import annotations

from .plan.fingerprint import NoToken, code_token, plan_fingerprint, type_name, value_token

__all__ = ["NoToken", "code_token", "plan_fingerprint", "type_name", "value_token"]
