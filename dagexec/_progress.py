"""``progress=True``: a rich progress bar on stderr, fed by run callbacks."""

from __future__ import annotations

from typing import Any

from ._state import State


def make_progress(*, running: bool, transient: bool) -> Any:
    """A rich ``Progress`` on stderr: name, bar, done/total, elapsed time, and with
    ``running`` a column for the task field ``running`` (the keys in flight)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns: list[Any] = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    if running:
        columns.append(TextColumn("{task.fields[running]}", style="dim"))
    return Progress(*columns, console=Console(stderr=True), transient=transient)


class ProgressBar:
    """A run callback that draws nodes done out of nodes to run."""

    def __init__(self, total: int) -> None:
        self._progress = make_progress(running=False, transient=False)
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
