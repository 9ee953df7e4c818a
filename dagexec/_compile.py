"""The functions of the plan nodes that are no task's call; the compiler itself now
lives in ``dagexec.plan.compile``.

``getitem`` runs ``node[k]`` and ``_pack`` a section's value built from several Nodes.
They stay defined here, in ``dagexec._compile``, because plans name them by this
module: their fingerprint hashes ``dagexec._compile:getitem``, manifests show it, and
saved plans pickle it by reference.  This module imports nothing of dagexec, so the
compiler can import it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["getitem"]


def _pack(value: Any) -> Any:
    """The function of a section output that is a container of Nodes."""
    return value


def getitem(obj: Any, k: Any) -> Any:
    """The function of ``node[k]``."""
    return obj[k]
