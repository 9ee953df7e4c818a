"""The journal of a run with a cache, and what ``resume=True`` reads from it (DESIGN §7).

Every run with a cache appends a record per ended trial to one journal per plan and
set of graph inputs (``journal_name``), so a run killed mid-way leaves every finished
trial on record; a resumed run reads the last run's trials back (``earlier_trials``)
and treats the nodes that succeeded there as done (``_cache.decide`` says which of
them run again: those whose value it needs and the store cannot give back).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from ._cache import value_key
from ._fingerprint import NoToken

if TYPE_CHECKING:
    from ._plan import CompiledGraph

__all__ = ["JournalWriter", "earlier_trials", "journal_name"]


def journal_name(plan: CompiledGraph, input_values: list[Any]) -> str:
    """The journal of runs of ``plan`` with these graph inputs: one file per pair.

    Raises:
        NoToken: for a graph input that does not pickle (naming it): runs with such
            inputs cannot be told apart, so they have no journal and cannot resume.
    """
    h = hashlib.sha256(plan.fingerprint.encode())
    for inp, value in zip(plan._inputs, input_values, strict=True):
        try:
            token = value_key(value)
        except NoToken as exc:
            raise NoToken(f"input {inp.name}: {exc}") from None
        h.update(b"\0" + token.encode())
    return h.hexdigest()[:32]


class JournalWriter:
    """A run callback that appends a record per trial to the run's journal.

    Records: ``{"run", "event": "start", "time"}``, then per ended trial ``{"run",
    "node", "attempt", "state", "start", "end", "worker", "error", "traceback"}``, and
    ``{"run", "event": "end", "ok"}`` when the run ends (not after a SIGKILL).
    """

    def __init__(self, journal: Any, run_id: str) -> None:
        self.journal = journal
        self.run_id = run_id

    def _append(self, record: dict[str, Any]) -> None:
        try:
            self.journal.append(record)
        except Exception:
            import logging

            logging.getLogger("dagexec.cache").warning("could not write to the journal", exc_info=True)

    def on_run_start(self, plan: Any) -> None:
        import time

        self._append({"run": self.run_id, "event": "start", "time": time.time()})

    def on_trial_end(self, trial: Any) -> None:
        err = trial.error
        self._append(
            {
                "run": self.run_id,
                "node": trial.key,
                "attempt": trial.attempt,
                "state": trial.state.value,
                "start": trial.start,
                "end": trial.end,
                "worker": trial.worker,
                "error": None if err is None else [type(err).__qualname__, str(err)],
                "traceback": trial.traceback,
            }
        )

    def on_run_end(self, result: Any) -> None:
        self._append({"run": self.run_id, "event": "end", "ok": result.ok})
        self.journal.close()


def earlier_trials(records: list[dict[str, Any]], index: dict[str, int]) -> dict[int, list[Any]]:
    """The trials of the last run in ``records``, per node idx, as :class:`Trial` objects."""
    from ._errors import RemoteError
    from ._state import State, Trial

    runs = [r["run"] for r in records if r.get("event") == "start"]
    if not runs:
        return {}
    last = runs[-1]
    out: dict[int, list[Any]] = {}
    for r in records:
        if r.get("run") != last or "node" not in r or r["node"] not in index:
            continue
        try:
            err = r.get("error")
            error = None if not err else RemoteError(str(err[0]), str(err[1]), str(r.get("traceback") or ""))
            trial = Trial(
                r["node"], int(r["attempt"]), State(r["state"]), float(r["start"]),
                None if r.get("end") is None else float(r["end"]), str(r.get("worker") or ""),
                error, str(r.get("traceback") or ""),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError):
            continue  # a record of another version
        out.setdefault(index[r["node"]], []).append(trial)
    return out
