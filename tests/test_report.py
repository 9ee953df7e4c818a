"""The run report's newer parts: the cache's decision per node in the details panel,
and pages of large runs. Pages are opened in a real headless Chromium (Playwright)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pages import details, embedded_data, node, open_page

import dagexec as dx

pytestmark = pytest.mark.usefixtures("dot_program")


@dx.task
def scale_x(x: int) -> int:
    return 2 * x


@dx.task
def scale_y(y: int) -> int:
    return 3 * y


@dx.task
def total(a: int, b: int) -> int:
    return a + b


def cached_graph() -> dx.CompiledGraph:
    with dx.Graph("cached") as graph:
        x, y = graph.input("x", int), graph.input("y", int)
        graph.output(total(scale_x(x), scale_y(y)), name="total")
    return graph.compile()


def test_the_panel_says_what_the_cache_did_with_each_node_and_why(
    browser: Any, tmp_path: Path
) -> None:
    plan = cached_graph()
    first = plan.run(x=1, y=2, cache=tmp_path / "cache")
    second = plan.run(x=1, y=5, cache=tmp_path / "cache")
    assert second.output == 17
    for result, name in ((first, "first.html"), (second, "second.html")):
        result.to_html(tmp_path / name)
    cache_of = {
        name: {k: d.get("cache") for k, d in embedded_data((tmp_path / name).read_text())["nodes"].items()}
        for name in ("first.html", "second.html")
    }
    assert cache_of["first.html"] == {
        "scale_x": "not from the cache: not cached yet",
        "scale_y": "not from the cache: not cached yet",
        "total": "not from the cache: upstream will run: scale_x; upstream will run: scale_y",
    }
    assert cache_of["second.html"] == {
        "scale_x": "from the cache: in the store",
        "scale_y": "not from the cache: input changed: y",
        "total": "not from the cache: upstream will run: scale_y",
    }
    page = open_page(browser, tmp_path / "second.html")
    page.click(node("scale_x"))
    assert details(page)["cache"] == "from the cache: in the store"
    assert details(page)["state"] == "cached"
    page.click(node("scale_y"))
    assert details(page)["cache"] == "not from the cache: input changed: y"
    assert page.js_errors == []


def test_a_run_without_a_cache_says_nothing_of_one(tmp_path: Path) -> None:
    cached_graph().run(x=1, y=2).to_html(tmp_path / "run.html")
    nodes = embedded_data((tmp_path / "run.html").read_text())["nodes"]
    assert [k for k, d in nodes.items() if "cache" in d] == []


@dx.task(cache=False)
def announce(x: int) -> int:
    return x


@dx.task
def when_ready(flag: str) -> str:
    return Path(flag).read_text()  # fails until the file is there


def test_a_resumed_run_names_the_nodes_the_run_it_resumes_finished(tmp_path: Path) -> None:
    with dx.Graph("resumed") as graph:
        announce(graph.input("x", int))  # a sink, not an output: no value needed again
        graph.output(when_ready(graph.input("flag", str)), name="ready")
    plan, flag = graph.compile(), tmp_path / "flag"
    assert not plan.run(x=1, flag=str(flag), cache=tmp_path / "cache", raise_on_failure=False).ok
    flag.write_text("yes")
    resumed = plan.run(x=1, flag=str(flag), cache=tmp_path / "cache", resume=True)
    resumed.to_html(tmp_path / "run.html")
    nodes = embedded_data((tmp_path / "run.html").read_text())["nodes"]
    assert {k: d["cache"] for k, d in nodes.items()} == {
        "announce": "not run again: succeeded in the run this one resumes",
        "when_ready": "not from the cache: not cached yet",
    }
