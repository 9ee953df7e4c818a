"""The plan now lives in ``dagexec.plan.compiled`` and ``dagexec.plan.specs``.

This module stays for good: saved plans pickle ``CompiledGraph``, ``NodeSpec``,
``_spec_from_task``, ``InputSpec``, ``SectionInfo`` and ``_Ref`` by reference under
``dagexec._plan``, and those names keep that module as their ``__module__``.  The
package's ``__init__`` imports this module, so it is loaded whenever a plan is
pickled: cloudpickle pickles a class by reference only when the module named by its
``__module__`` is loaded, and by value otherwise (``tests/test_golden.py`` would see it).
"""

from __future__ import annotations

from .plan.compiled import CompiledGraph
from .plan.specs import InputSpec, NodeInfo, NodeSpec, SectionInfo, _Ref, _spec_from_task, collect_refs

__all__ = [
    "CompiledGraph",
    "InputSpec",
    "NodeInfo",
    "NodeSpec",
    "SectionInfo",
    "_Ref",
    "_spec_from_task",
    "collect_refs",
]
