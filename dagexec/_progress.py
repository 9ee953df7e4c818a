"""``progress=True``: a rich progress bar on stderr, fed by run callbacks."""

from __future__ import annotations

from typing import Any

from ._state import State


class ProgressBar:
    """A run callback that draws nodes done out of nodes to run."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._total = total
        self._task: Any = None
        self._failed = 0
        self._name = ""

    def on_run_start(self, plan: Any) -> None:
        self._name = str(plan.name)
        self._task = self._progress.add_task(self._name, total=self._total)
        self._progress.start()

    def on_trial_end(self, trial: Any) -> None:
        if trial.state is State.SUCCEEDED:
            self._progress.advance(self._task)
        elif self._task is not None:
            self._failed += 1
            self._progress.update(self._task, description=f"{self._name} ({self._failed} failed trials)")

    def on_run_end(self, result: Any) -> None:
        self._progress.stop()
