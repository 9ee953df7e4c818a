"""Pictures: ``to_dot()`` of graphs, plans and results, SVG and Jupyter (DESIGN §8, §12)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import dagexec as dx
from dagexec._dot import EXPAND_LIMIT, format_duration
from dagexec.executors import ThreadExecutor

needs_dot = pytest.mark.usefixtures("dot_program")

MOD = __name__


@dx.task
def load(path: str, sep: str = ",") -> list[int]:
    return [len(path), 2, 3]


@dx.task
def clean(rows: list[int], limit: int = 10) -> list[int]:
    return [r for r in rows if r < limit]


@dx.task
def total(rows: list[int]) -> int:
    return sum(rows)


@dx.task
def merge(parts: list[int], *extra: object, how: str = "sum") -> int:
    return sum(parts)


@dx.task(nout=2)
def split(rows: list[int]) -> tuple[list[int], list[int]]:
    return rows[:1], rows[1:]


@dx.task
def note() -> None:
    return None


@dx.task
def inc(x: int) -> int:
    return x + 1


@dx.section
def inner(rows: list[int]) -> int:
    return total(clean(rows, limit=3))


@dx.section
def etl(path: str) -> int:
    return inner(load(path, ";"))


@dx.section
def same(x: int) -> int:
    return x


def nightly() -> dx.Graph:
    with dx.Graph("nightly") as graph:
        path = graph.input("path", str, default="eu.csv")
        a = etl(path)
        b = etl("us.csv")
        lo, hi = split(load(path))
        m = merge([a, b], lo, 7, how="max")
        note().after(m)
        graph.output(m, name="merged")
        graph.output(hi, name="hi")
        graph.output(path, name="path")
        graph.output(same(5), name="five")
    return graph


HEAD = """\
digraph nightly {
\tgraph [fontname=Helvetica label=nightly labelloc=t rankdir=TB]
\tnode [fontname=Helvetica fontsize=11 shape=box style=rounded]
\tedge [fontname=Helvetica fontsize=9]
\t{
\t\trank=source
\t\tin0 [label="path\\nstr = 'eu.csv'" id="input:path" shape=ellipse style=dashed]
\t}
"""

TOP = f"""\
\tn6 [label="load\\nload" id="node:load" tooltip="{MOD}:load"]
\tn7 [label="split\\nsplit" id="node:split" tooltip="{MOD}:split"]
\tn8 [label="split.0\\ngetitem" id="node:split.0"]
\tn9 [label="split.1\\ngetitem" id="node:split.1"]
\tn10 [label="merge\\nmerge\\nextra=7\\nhow='max'" id="node:merge" tooltip="{MOD}:merge"]
\tn11 [label="note\\nnote" id="node:note" tooltip="{MOD}:note"]
"""

CLUSTER_ETL = f"""\
\tsubgraph cluster_s0 {{
\t\tgraph [color="#888888" id="section:etl" label=etl style=rounded]
\t\tn0 [label="etl/load\\nload\\nsep=';'" id="node:etl/load" tooltip="{MOD}:load"]
\t\tsubgraph cluster_s1 {{
\t\t\tgraph [color="#888888" id="section:etl/inner" label="etl/inner" style=rounded]
\t\t\tn1 [label="etl/inner/clean\\nclean\\nlimit=3" id="node:etl/inner/clean" tooltip="{MOD}:clean"]
\t\t\tn2 [label="etl/inner/total\\ntotal" id="node:etl/inner/total" tooltip="{MOD}:total"]
\t\t}}
\t}}
"""

CLUSTER_ETL_1 = f"""\
\tsubgraph cluster_s2 {{
\t\tgraph [color="#888888" id="section:etl-1" label="etl-1" style=rounded]
\t\tn3 [label="etl-1/load\\nload\\npath='us.csv'\\nsep=';'" id="node:etl-1/load" tooltip="{MOD}:load"]
\t\tsubgraph cluster_s3 {{
\t\t\tgraph [color="#888888" id="section:etl-1/inner" label="etl-1/inner" style=rounded]
\t\t\tn4 [label="etl-1/inner/clean\\nclean\\nlimit=3" id="node:etl-1/inner/clean" tooltip="{MOD}:clean"]
\t\t\tn5 [label="etl-1/inner/total\\ntotal" id="node:etl-1/inner/total" tooltip="{MOD}:total"]
\t\t}}
\t}}
"""

OUTPUTS = """\
\t{
\t\trank=sink
\t\tout0 [label=merged id="output:merged" shape=doubleoctagon style=""]
\t\tout1 [label=hi id="output:hi" shape=doubleoctagon style=""]
\t\tout2 [label=path id="output:path" shape=doubleoctagon style=""]
\t\tout3 [label="five\\n5" id="output:five" shape=doubleoctagon style=""]
\t}
"""

TOP_EDGES = """\
\tin0 -> n6 [label=path]
\tn6 -> n7 [label=rows]
\tn7 -> n8 [label="[0]"]
\tn7 -> n9 [label="[1]"]
"""

TAIL_EDGES = """\
\tn8 -> n10 [label=extra]
\tn10 -> n11 [style=dashed]
\tn10 -> out0
\tn9 -> out1
\tin0 -> out2
}
"""


# -- plans -------------------------------------------------------------------------------
def test_plan_picture_has_nested_clusters_labelled_edges_constants_inputs_and_outputs() -> None:
    plan = nightly().compile()
    assert plan.to_dot().source == (
        HEAD
        + TOP
        + CLUSTER_ETL
        + CLUSTER_ETL_1
        + OUTPUTS
        + "\tin0 -> n0 [label=path]\n"
        + "\tn0 -> n1 [label=rows]\n"
        + "\tn1 -> n2 [label=rows]\n"
        + "\tn3 -> n4 [label=rows]\n"
        + "\tn4 -> n5 [label=rows]\n"
        + TOP_EDGES
        + "\tn2 -> n10 [label=parts]\n"
        + "\tn5 -> n10 [label=parts]\n"
        + TAIL_EDGES
    )


def test_graph_to_dot_draws_its_compiled_plan() -> None:
    graph = nightly()
    assert graph.to_dot().source == graph.compile().to_dot().source


def test_graph_that_does_not_compile_raises_its_graph_error() -> None:
    with dx.Graph("empty") as graph:
        pass
    with pytest.raises(dx.GraphError) as exc:
        graph.to_dot()
    assert str(exc.value) == "graph 'empty' is empty: call tasks inside 'with graph:' before compile()"


def test_collapse_true_draws_each_outermost_section_as_one_node() -> None:
    assert nightly().compile().to_dot(collapse=True).source == (
        HEAD
        + TOP
        + '\ts0 [label="etl\\nsection etl, 3 nodes" id="section:etl" shape=box3d style=""]\n'
        + '\ts2 [label="etl-1\\nsection etl, 3 nodes" id="section:etl-1" shape=box3d style=""]\n'
        + OUTPUTS
        + "\tin0 -> s0 [label=path]\n"
        + TOP_EDGES
        + "\ts0 -> n10 [label=parts]\n"
        + "\ts2 -> n10 [label=parts]\n"
        + TAIL_EDGES
    )


def test_collapse_a_list_of_paths_keeps_the_others_as_clusters() -> None:
    source = nightly().compile().to_dot(collapse=["etl/inner", "etl-1"]).source
    assert source == (
        HEAD
        + TOP
        + '\ts2 [label="etl-1\\nsection etl, 3 nodes" id="section:etl-1" shape=box3d style=""]\n'
        + "\tsubgraph cluster_s0 {\n"
        + '\t\tgraph [color="#888888" id="section:etl" label=etl style=rounded]\n'
        + f'\t\tn0 [label="etl/load\\nload\\nsep=\';\'" id="node:etl/load" tooltip="{MOD}:load"]\n'
        + '\t\ts1 [label="etl/inner\\nsection inner, 2 nodes" id="section:etl/inner" shape=box3d style=""]\n'
        + "\t}\n"
        + OUTPUTS
        + "\tin0 -> n0 [label=path]\n"
        + "\tn0 -> s1 [label=rows]\n"
        + TOP_EDGES
        + "\ts1 -> n10 [label=parts]\n"
        + "\ts2 -> n10 [label=parts]\n"
        + TAIL_EDGES
    )


def test_an_outer_collapsed_section_hides_the_inner_one() -> None:
    plan = nightly().compile()
    assert plan.to_dot(collapse=["etl", "etl/inner", "etl-1", "etl-1/inner"]).source == (
        plan.to_dot(collapse=True).source
    )


def test_collapse_false_and_expand_draw_every_node() -> None:
    plan = nightly().compile()
    assert plan.to_dot(collapse=False).source == plan.to_dot(expand=True).source == plan.to_dot().source


def test_collapse_of_an_unknown_section_is_a_value_error() -> None:
    with pytest.raises(ValueError) as exc:
        nightly().compile().to_dot(collapse=["etl", "nope"])
    assert str(exc.value) == (
        "to_dot(): graph 'nightly' has no section 'nope'; "
        "its sections are ['etl', 'etl-1', 'etl-1/inner', 'etl/inner', 'same']"
    )


def test_expand_with_collapse_is_a_value_error() -> None:
    with pytest.raises(ValueError) as exc:
        nightly().compile().to_dot(collapse=True, expand=True)
    assert str(exc.value) == "to_dot(): expand=True draws every node; it cannot go with collapse=True"


def test_duration_is_written_with_three_significant_figures_at_most() -> None:
    assert [format_duration(d) for d in (0.0, 0.314, 9.999, 12.34, 125.4)] == [
        "0.00 s",
        "0.31 s",
        "10.00 s",
        "12.3 s",
        "125 s",
    ]


# -- big plans ----------------------------------------------------------------------------
@dx.section
def block(x: int) -> int:
    return inc(inc(inc(inc(x))))


def big(n_blocks: int, loose: int = 0) -> dx.CompiledGraph:
    with dx.Graph("big") as graph:
        v = graph.input("x", int, default=0)
        for _ in range(n_blocks):
            v = block(v)
        for _ in range(loose):
            v = inc(v)
    return graph.compile()


def _node_ids(source: str) -> list[str]:
    return re.findall(r' id="(node:[^"]*|section:[^"]*)"', source)


def test_past_the_limit_sections_collapse_by_default_and_the_title_says_so() -> None:
    plan = big(250, loose=2)  # 1,002 nodes
    assert len(plan) == 1002 > EXPAND_LIMIT
    source = plan.to_dot().source
    assert source.splitlines()[1] == (
        '\tgraph [fontname=Helvetica label="big\\ncollapsed: 1000 nodes in 250 sections; '
        'to_dot(expand=True) draws all" labelloc=t rankdir=TB]'
    )
    sections = [f"section:{'block' if i == 0 else f'block-{i}'}" for i in range(250)]
    assert _node_ids(source) == ["node:inc", "node:inc-1", *sections]
    assert "subgraph" not in source.replace("subgraph {", "")  # no cluster
    expanded = plan.to_dot(expand=True).source
    assert "collapsed:" not in expanded
    assert len([i for i in _node_ids(expanded) if i.startswith("node:")]) == 1002
    assert expanded.count("subgraph cluster_") == 250
    assert plan.to_dot(collapse=False).source == expanded


def test_at_the_limit_nothing_collapses() -> None:
    plan = big(250)
    assert len(plan) == EXPAND_LIMIT
    source = plan.to_dot().source
    assert "collapsed:" not in source
    assert source.count("subgraph cluster_") == 250


def test_a_huge_picture_gets_fast_layout_settings() -> None:
    small, huge = big(1, loose=EXPAND_LIMIT - 4), big(0, loose=EXPAND_LIMIT + 1)
    fast = "\tgraph [mclimit=0.05 nslimit=0 remincross=false splines=line]"
    assert fast not in small.to_dot().source.splitlines()
    lines = huge.to_dot().source.splitlines()
    assert lines[1:3] == ["\tgraph [fontname=Helvetica label=big labelloc=t rankdir=TB]", fast]
    # collapsed below the limit: the ordinary settings
    assert fast not in big(300).to_dot().source.splitlines()


# -- results -------------------------------------------------------------------------------
@pytest.fixture
def release():
    """Released at test end: what a timed-out thread waits on."""
    event = threading.Event()
    yield event
    event.set()


def every_state_run(release: threading.Event) -> dx.RunResult:
    """A run with nodes succeeded, failed (2 attempts), timed out, upstream_failed,
    skipped and cancelled, with no sleeps: events order it."""
    stuck_entered = threading.Event()
    boom_done = threading.Event()

    @dx.task(timeout=1.0)
    def stuck() -> int:
        stuck_entered.set()
        release.wait(60)
        return 1

    @dx.task(retries=1)
    def boom() -> int:
        assert stuck_entered.wait(30)
        raise ValueError("boom")

    @dx.task
    def gate() -> int:
        assert boom_done.wait(30)  # boom has failed: what waits for gate is cancelled
        return 1

    class Watch:
        def on_trial_end(self, trial: dx.Trial) -> None:
            if trial.key == "boom" and trial.attempt == 2:
                boom_done.set()

    with dx.Graph("states") as graph:
        inc(1)
        inc(stuck())
        inc(boom())
        inc(gate())
        inc(2)
    plan = graph.compile()
    executor = ThreadExecutor(max_workers=4)
    try:
        return plan.run(executor=executor, skip=["inc-4"], callbacks=[Watch()], raise_on_failure=False)
    finally:
        executor.shutdown()


STATE_LINE = re.compile(r"\t(n\d+) \[label=\"(.*)\" fillcolor=\"(#[0-9a-f]{6})\" id=\"node:([^\"]+)\"")
SECONDS = re.compile(r"\d+\.\d\d s")


def test_result_nodes_are_coloured_by_state_with_durations_and_attempts(release: threading.Event) -> None:
    result = every_state_run(release)
    S = dx.State
    assert result.states == {
        "inc": S.SUCCEEDED,
        "stuck": S.FAILED,
        "inc-1": S.UPSTREAM_FAILED,
        "boom": S.FAILED,
        "inc-2": S.UPSTREAM_FAILED,
        "gate": S.SUCCEEDED,
        "inc-3": S.CANCELLED,
        "inc-4": S.SKIPPED,
    }
    assert result.trials["stuck"][-1].state is S.TIMED_OUT
    source = result.to_dot().source
    found = [m.groups() for m in map(STATE_LINE.match, source.splitlines()) if m]
    drawn = [(name, SECONDS.sub("<t>", label), colour, key) for name, label, colour, key in found]
    assert drawn == [
        ("n0", "inc\\ninc\\nx=1\\nsucceeded, <t>", "#b7e1a1", "inc"),
        ("n1", "stuck\\nstuck\\ntimed_out, <t>", "#e69138", "stuck"),
        ("n2", "inc-1\\ninc\\nupstream_failed", "#f9e08b", "inc-1"),
        ("n3", "boom\\nboom\\nfailed, <t>, 2 attempts", "#f4a09c", "boom"),
        ("n4", "inc-2\\ninc\\nupstream_failed", "#f9e08b", "inc-2"),
        ("n5", "gate\\ngate\\nsucceeded, <t>", "#b7e1a1", "gate"),
        ("n6", "inc-3\\ninc\\ncancelled", "#a89bc9", "inc-3"),
        ("n7", "inc-4\\ninc\\nx=2\\nskipped", "#e4e4e4", "inc-4"),
    ]
    assert ' style="rounded,filled" ' in source.splitlines()[8]


def test_result_picture_has_a_legend_with_the_count_of_each_state(release: threading.Event) -> None:
    source = every_state_run(release).to_dot().source
    cells = "".join(
        f'<tr><td bgcolor="{colour}" width="14"></td><td align="left">{word} ({count})</td></tr>'
        for word, colour, count in [
            ("succeeded", "#b7e1a1", 2),
            ("failed", "#f4a09c", 1),
            ("timed_out", "#e69138", 1),
            ("upstream_failed", "#f9e08b", 2),
            ("skipped", "#e4e4e4", 1),
            ("cancelled", "#a89bc9", 1),  # no node is cached: no row for it
        ]
    )
    legend = (
        '\t\tlegend [label=<<table border="0" cellborder="0" cellspacing="2">'
        f'<tr><td colspan="2"><b>states</b></td></tr>{cells}</table>> id=legend shape=plain style=""]'
    )
    assert source.splitlines()[4:8] == ["\t{", "\t\trank=source", legend, "\t}"]


@dx.task
def numbers(n: int) -> list[int]:
    return list(range(n))


@dx.task
def picky(x: int) -> int:
    if x == 2:
        raise ValueError(f"not {x}")
    return x


def map_run() -> dx.RunResult:
    """A run whose map has 4 items, one failed: 5 nodes and 4 items."""
    with dx.Graph("m") as g:
        total(picky.map(numbers(4)))
        total(numbers(2))
    return g.compile().run(executor="serial", raise_on_failure=False, fail_fast=False)


def test_the_legend_counts_nodes_and_a_map_s_items_apart_as_the_summary_does() -> None:
    result = map_run()
    counted = result.summary().splitlines()[0].partition(" s: ")[2]
    assert counted == "3 succeeded, 1 failed, 1 upstream_failed · 4 map items: 3 succeeded, 1 failed"
    cells = "".join(
        f'<tr><td bgcolor="{colour}" width="14"></td><td align="left">{word} ({count})</td></tr>'
        for word, colour, count in [
            ("succeeded", "#b7e1a1", 3),  # numbers, numbers-1, total-1; not the 3 items
            ("failed", "#f4a09c", 1),  # the map node picky
            ("upstream_failed", "#f9e08b", 1),  # only the states some node has
        ]
    )
    items = '<tr><td colspan="2" align="left">4 map items: 3 succeeded, 1 failed</td></tr>'
    legend = (
        '\t\tlegend [label=<<table border="0" cellborder="0" cellspacing="2">'
        f'<tr><td colspan="2"><b>states</b></td></tr>{cells}{items}</table>> id=legend shape=plain style=""]'
    )
    assert [line for line in result.to_dot().source.splitlines() if "legend" in line] == [legend]


@needs_dot
def test_the_rendered_legend_shows_the_map_items_apart() -> None:
    svg = map_run().to_dot().pipe(format="svg", encoding="utf-8")
    legend = next(g for g in ET.fromstring(svg).iter(f"{SVG}g") if g.attrib.get("id") == "legend")
    texts = [t.text for t in legend.iter(f"{SVG}text")]
    assert texts == [
        "states",
        "succeeded (3)",
        "failed (1)",
        "upstream_failed (1)",
        "4 map items: 3 succeeded, 1 failed",
    ]


def test_a_collapsed_section_in_a_result_takes_its_worst_state() -> None:
    @dx.task
    def fail(x: int) -> int:
        raise ValueError(x)

    @dx.section
    def part(x: int) -> int:
        return inc(fail(inc(x)))

    with dx.Graph("worst") as graph:
        inc(part(1))
    result = graph.compile().run(executor="serial", raise_on_failure=False)
    lines = SECONDS.sub("<t>", result.to_dot(collapse=True).source).splitlines()
    assert lines[8:10] == [
        '\tn3 [label="inc\\ninc\\nupstream_failed" fillcolor="#f9e08b" id="node:inc" '
        f'style="rounded,filled" tooltip="{MOD}:inc"]',
        '\ts0 [label="part\\nsection part, 3 nodes\\n1 failed, 1 upstream_failed, 1 succeeded\\n<t>" '
        'fillcolor="#f4a09c" id="section:part" shape=box3d style=filled]',
    ]
    assert lines[-3:] == ["\ts0 -> n3 [label=x]", "\tn3 -> out0", "}"]


def test_a_result_draws_without_the_plan_being_kept(release: threading.Event) -> None:
    result = nightly().compile().run(executor="serial")
    assert result.to_dot().source.startswith("digraph nightly {\n")


# -- rendering ----------------------------------------------------------------------------
SVG = "{http://www.w3.org/2000/svg}"


def _svg_nodes(svg: str) -> dict[str, str]:
    """SVG ``<g id>`` -> its ``<title>`` (the DOT name), for nodes and clusters."""
    root = ET.fromstring(svg)
    return {
        g.attrib["id"]: g.findtext(f"{SVG}title", "")
        for g in root.iter(f"{SVG}g")
        if g.attrib.get("class") in ("node", "cluster")
    }


@needs_dot
def test_plan_renders_to_svg_with_an_id_per_node_and_section() -> None:
    svg = nightly().compile().to_dot().pipe(format="svg", encoding="utf-8")
    assert _svg_nodes(svg) == {
        "input:path": "in0",
        "node:load": "n6",
        "node:split": "n7",
        "node:split.0": "n8",
        "node:split.1": "n9",
        "node:merge": "n10",
        "node:note": "n11",
        "section:etl": "cluster_s0",
        "node:etl/load": "n0",
        "section:etl/inner": "cluster_s1",
        "node:etl/inner/clean": "n1",
        "node:etl/inner/total": "n2",
        "section:etl-1": "cluster_s2",
        "node:etl-1/load": "n3",
        "section:etl-1/inner": "cluster_s3",
        "node:etl-1/inner/clean": "n4",
        "node:etl-1/inner/total": "n5",
        "output:merged": "out0",
        "output:hi": "out1",
        "output:path": "out2",
        "output:five": "out3",
    }


@needs_dot
def test_result_renders_to_svg_with_its_legend(release: threading.Event) -> None:
    svg = every_state_run(release).to_dot(collapse=True).pipe(format="svg", encoding="utf-8")
    nodes = _svg_nodes(svg)
    assert nodes["legend"] == "legend"
    assert sorted(k for k in nodes if k.startswith("node:")) == [
        "node:boom",
        "node:gate",
        "node:inc",
        "node:inc-1",
        "node:inc-2",
        "node:inc-3",
        "node:inc-4",
        "node:stuck",
    ]


# -- Jupyter -------------------------------------------------------------------------------
@needs_dot
def test_graphs_plans_and_results_show_themselves_as_svg() -> None:
    graph = nightly()
    plan = graph.compile()
    result = plan.run(executor="serial")
    for obj in (graph, plan, result):
        bundle = obj._repr_mimebundle_()
        assert sorted(bundle) == ["image/svg+xml", "text/plain"]
        assert bundle["text/plain"] == repr(obj)
        assert "node:merge" in _svg_nodes(bundle["image/svg+xml"])
    assert plan._repr_mimebundle_(include=["text/plain"]) == {"text/plain": repr(plan)}
    assert plan._repr_mimebundle_(exclude=["image/svg+xml"]) == {"text/plain": repr(plan)}


def test_a_graph_that_does_not_compile_shows_its_error_as_text() -> None:
    with dx.Graph("empty") as graph:
        pass
    assert graph._repr_mimebundle_() == {
        "text/plain": "<Graph 'empty' with 0 nodes>\n"
        "graph 'empty' is empty: call tasks inside 'with graph:' before compile()"
    }


def test_without_the_dot_program_objects_show_their_repr(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import dagexec as dx

        @dx.task
        def one() -> int:
            return 1

        with dx.Graph("g") as graph:
            one()
        plan = graph.compile()
        result = plan.run(executor="serial")
        for obj in (graph, plan, result):
            print(obj._repr_mimebundle_() == {"text/plain": repr(obj)})
        """
    )
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": str(empty), "PYTHONPATH": str(Path(dx.__file__).parent.parent)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "True\nTrue\nTrue\n", "")


# -- the state colours under the common colour-vision deficiencies -------------------------
#: Machado, Oliveira & Fernandes (2009), severity 1: linear RGB -> as seen
CVD = {
    "normal": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "protanopia": ((0.152286, 1.052583, -0.204868), (0.114503, 0.786281, 0.099216), (-0.003882, -0.048116, 1.051998)),
    "deuteranopia": ((0.367322, 0.860646, -0.227968), (0.280085, 0.672501, 0.047413), (-0.011820, 0.042940, 0.968881)),
    "tritanopia": ((1.255528, -0.076749, -0.178779), (-0.078411, 0.930809, 0.147602), (0.004733, 0.691367, 0.303900)),
}


def seen_lab(colour: str, matrix: tuple[tuple[float, float, float], ...]) -> tuple[float, float, float]:
    """``colour`` as a viewer with ``matrix`` sees it, in CIE L*a*b* (D65)."""

    def linear(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    rgb = [linear(int(colour[i : i + 2], 16)) for i in (1, 3, 5)]
    r, g, b = (min(1.0, max(0.0, sum(m * v for m, v in zip(row, rgb, strict=True)))) for row in matrix)
    x, y, z = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047, 0.2126 * r + 0.7152 * g + 0.0722 * b, (
        0.0193 * r + 0.1192 * g + 0.9505 * b
    ) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def test_state_colours_stay_apart_under_colour_vision_deficiencies() -> None:
    import itertools
    import math

    from dagexec._html import _state_css

    colours = dict(re.findall(r"\.st-(\w+) \{ background: (#[0-9a-f]{6}); \}", _state_css()))
    assert set(colours) == {*dx._dot.STATE_COLOURS, "crashed", "running"}
    closest = {
        name: min(
            (math.dist(seen_lab(colours[a], m), seen_lab(colours[b], m)), a, b)
            for a, b in itertools.combinations(sorted(colours), 2)
        )
        for name, m in CVD.items()
    }
    # CIE76 distance 10 or more: told apart at a glance (the state is also written in each box)
    assert {name: round(d, 1) >= 10 for name, (d, _, _) in closest.items()} == dict.fromkeys(CVD, True), closest
