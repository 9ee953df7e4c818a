"""The hash of a function's code for cache keys now lives in ``dagexec.plan.codehash``."""

from __future__ import annotations

from .plan.codehash import _token, _unwrap, code_digest, code_parts, forget

__all__ = ["_token", "_unwrap", "code_digest", "code_parts", "forget"]
