"""A daily report DAG as an Airflow user writes it, in dagexec (docs/airflow.md).

Airflow's ``extract.partial(day=...).expand(region=...)`` is ``task.partial(...).map(...)``;
a ``@task.branch`` on the weekday is ``dx.switch``; a clean-up with
``trigger_rule="all_done"`` and a notification that reads how the report ended
(``dx.Outcome``) still run when a region fails; ``BashOperator`` is ``dx.shell``.

Run it: ``python examples/airflow_port.py``.
"""

from __future__ import annotations

import datetime
import os
import tempfile

import dagexec as dx


@dx.task
def regions() -> list[str]:
    return ["north", "south", "east"]


@dx.task
def extract(region: str, day: str, workdir: str) -> int:
    if region == "east" and day.endswith("-25"):
        raise ConnectionError(f"{region}: the source is closed on {day}")
    path = os.path.join(workdir, f"{region}.csv")
    with open(path, "w") as f:
        f.write(f"{region},{len(region) * 100}\n")
    return len(region) * 100


@dx.task
def total(sales: list[int]) -> int:
    return sum(sales)


@dx.task
def weekday(day: str) -> str:
    return datetime.date.fromisoformat(day).strftime("%a").lower()


@dx.task
def report(kind: str, amount: int) -> str:
    return f"{kind} report: {amount}"


@dx.task(trigger="all_done")
def notify(result: dx.Outcome) -> str:
    if result.ok:
        return f"sent '{result.value}'"
    return f"paged on-call: {result.key} {result.state.value}"


def daily() -> dx.CompiledGraph:
    with dx.Graph("daily") as g:
        day = g.input("day", str)
        workdir = g.input("workdir", str)
        amount = total(extract.partial(day=day, workdir=workdir).map(region=regions()))
        made = dx.switch(
            weekday(day),
            {"mon": lambda: report("weekly", amount), "fri": lambda: report("week-end", amount)},
            default=lambda: report("daily", amount),
        )
        g.output(notify(made), name="notify")
        # BashOperator(trigger_rule="all_done"): the work files go, whatever happened
        clean = dx.shell(["sh", "-c", 'rm -f "$0"/*.csv', workdir], name="clean", trigger="all_done")
        g.output(clean.after(made), name="clean")
    return g.compile()


def main() -> None:
    plan = daily()
    for day in ("2026-12-07", "2026-12-09", "2026-12-25"):
        with tempfile.TemporaryDirectory() as workdir:
            # every region is tried even when one fails, as Airflow's mapped tasks are
            result = plan.run(day=day, workdir=workdir, raise_on_failure=False, fail_fast=False)
            ran = [k for k, s in result.states.items() if s.value == "succeeded" and k.startswith("report")]
            cleaned = f"clean {result.states['clean'].value}, files left: {len(os.listdir(workdir))}"
            print(f"{day}: {result.outputs['notify']} (ran {ran}); {cleaned}")
            if not result.ok:
                states = {k: s.value for k, s in result.states.items() if s.value != "succeeded" and "[" not in k}
                print(f"  {states}")


if __name__ == "__main__":
    main()
