"""``plan.fingerprint``: a hash of structure, constants and task code.

Each node's code, arguments and options count by their tokens
(:mod:`dagexec.plan.tokens`; ``value_token``, ``code_token``, ``NoToken`` and
``type_name`` are re-exported here, their first home).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from .tokens import NoToken, code_token, type_name, value_token  # re-exported: their old home

if TYPE_CHECKING:
    from .compiled import CompiledGraph

__all__ = ["NoToken", "code_token", "plan_fingerprint", "type_name", "value_token"]


def plan_fingerprint(plan: CompiledGraph) -> str:
    """The SHA-256 hex digest identifying ``plan``."""
    h = hashlib.sha256()
    upd = h.update
    upd(f"graph:{plan.name}\n".encode())
    for inp in plan._inputs:
        upd(f"input:{inp.name}:{value_token(inp.type)}:{value_token(inp.default)}\n".encode())
    opts_tokens: dict[int, str] = {}
    for i, key in enumerate(plan._keys):
        opts = plan._opts[i]
        otok = opts_tokens.get(id(opts))
        if otok is None:
            otok = value_token(sorted(opts.fingerprinted().items())) if opts is not None else ""
            opts_tokens[id(opts)] = otok
        args = plan._args[i]
        kwargs = plan._kwargs[i]
        atok = value_token(args) if args else ""
        ktok = value_token(kwargs) if kwargs else ""
        upd(
            f"node:{key}:{code_token(plan._specs[i].fn)}:{atok}:{plan._fills[i]}:{ktok}:"
            f"{plan._kwfills[i]}:{plan._deps[i]}:{otok}\n".encode()
        )
    for name, slot in plan._outputs:
        upd(f"output:{name}:{slot}\n".encode())
    for c in plan._consts:
        upd(f"const:{value_token(c)}\n".encode())
    for s in plan._sections:
        upd(f"section:{s.path}:{s.output}:{sorted(s.inputs.items())}\n".encode())
    for c in plan._conds:
        upd(f"cond:{c}\n".encode())
    if plan._maps:
        upd(f"maps:{sorted(plan._maps)}\n".encode())
    return h.hexdigest()
