"""What the dask graph tests read of a run on a cluster: the graphs its client sends
and the values it gathers (conftest's ``graphs`` and ``gathered`` fixtures), and the
node a dask key names."""

from __future__ import annotations

import re
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin


class GraphCount(SchedulerPlugin):
    """Counts the update_graph messages of one client, and the keys each asks for (its
    tasks; ``tasks`` would count the earlier graphs' keys they read as well)."""

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.graphs: list[int] = []

    def update_graph(self, scheduler: Any, *, client: str, keys: set[Any], **kwargs: Any) -> None:
        if client == self.client_id:
            self.graphs.append(len(keys))


def node_of(dkey: str) -> str:
    """The node key of a trial's dask key ``<node key>-a<attempt>-<16 hex digits>`` (a
    chain's or a group's: its first member's)."""
    found = re.fullmatch(r"(.+)-a\d+-[0-9a-f]{16}", dkey)
    assert found is not None, dkey
    return found.group(1)
