"""Sections: reusable subgraphs, nesting, ``section.graph()``, and ``only``/``skip``.

Run it with ``python examples/sections.py``. Sales of two regions, given as CSV
text, go through the same ``region`` section; ``region`` calls a nested section
``cleaned``. The script prints the keys the sections give their nodes, then runs
the whole plan, a part of it, and the section alone.
"""

from __future__ import annotations

import dagexec as dx

EU_CSV = """\
item,amount
chair,120.0
desk,340.0
chair,-120.0
lamp,45.5
"""

US_CSV = """\
item,amount
desk,410.0
lamp,39.0
"""


@dx.task
def parse(text: str) -> list[tuple[str, float]]:
    """CSV text to ``(item, amount)`` rows."""
    lines = text.strip().splitlines()[1:]
    return [(item, float(amount)) for item, amount in (line.split(",") for line in lines)]


@dx.task
def drop_refunds(rows: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """The rows with a positive amount."""
    return [row for row in rows if row[1] > 0]


@dx.task
def total(rows: list[tuple[str, float]]) -> float:
    """The sum of the amounts."""
    return sum(amount for _, amount in rows)


@dx.task
def report(eu: float, us: float) -> str:
    """One line per region."""
    return f"EU {eu:.2f} | US {us:.2f} | all {eu + us:.2f}"


@dx.section
def cleaned(text: str) -> list[tuple[str, float]]:
    """Parsed rows without refunds."""
    return drop_refunds(parse(text))


# Options given to @section are defaults for every task inside it, nested
# sections included; a task's own options win.
@dx.section(retries=1)
def region(text: str) -> float:
    """The total sales of one region. Inside the body ``text`` is a Node."""
    return total(cleaned(text))


def main() -> None:
    with dx.Graph("sales") as graph:
        eu = region(EU_CSV)  # keys region/...
        us = region(US_CSV)  # a second instance: keys region-1/...
        graph.output(report(eu, us), name="report")

    plan = graph.compile()
    print("nodes:")
    for node in plan.nodes:
        print(f"  {node.key:<30} section={node.section!r} retries={node.options.retries}")
    print("sections:")
    for sec in plan.sections:
        print(f"  {sec.path:<16} parent={sec.parent!r} output={sec.output!r}")

    result = plan.run(executor="serial")
    print("report:", result.output)

    # only: these keys or section paths and everything they need.
    # A section path stands for the section's value, so keep= can hold it.
    result = plan.run(executor="serial", only=["region-1"], keep=["region-1"])
    print("only region-1:", result["region-1"])
    print("  ran:", [key for key, state in result.states.items() if state is dx.State.SUCCEEDED])

    # skip: these keys or sections, and everything that needs them.
    result = plan.run(executor="serial", skip=["region/cleaned"])
    print("skip region/cleaned:")
    for state in (dx.State.SUCCEEDED, dx.State.SKIPPED):
        print(f"  {state}:", [key for key, s in result.states.items() if s is state])

    # A section alone, as a graph whose inputs are the section's parameters.
    standalone = region.graph().compile()
    print("standalone inputs:", [spec.name for spec in standalone.inputs], "outputs:", standalone.outputs)
    print("standalone:", standalone.run(text=US_CSV, executor="serial").output)

    # Outside any graph a section is a plain function too.
    print("plain call:", region(EU_CSV))


if __name__ == "__main__":
    main()
