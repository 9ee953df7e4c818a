"""Moved to ``dagexec/cache/``: the keys to ``keys.py``, what a run with a cache runs to ``decide.py``.

The names below stay importable from here.
"""

from .cache.decide import CacheDecision, Explanation, decide, explain, open_store
from .cache.diff import plan_diff
from .cache.keys import item_keys, log_uncached, merkle_key, node_keys, value_key

__all__ = [
    "CacheDecision",
    "Explanation",
    "decide",
    "explain",
    "item_keys",
    "log_uncached",
    "merkle_key",
    "node_keys",
    "open_store",
    "plan_diff",
    "value_key",
]
