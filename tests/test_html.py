"""``plan.to_html()`` and ``result.to_html()``: pages rendered by the real ``dot`` and
opened in a real headless Chromium (Debian's ``chromium``, driven by Playwright)."""

from __future__ import annotations

import importlib.util
import math
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pages import details, embedded_data, node, open_page

import dagexec as dx
from dagexec._dot import format_duration
from dagexec._html import to_html

pytestmark = pytest.mark.usefixtures("dot_program")

PIPELINE = textwrap.dedent(
    """\
    import dagexec as dx


    @dx.task
    def load(n: int) -> list[int]:
        return list(range(n))


    @dx.task
    def clean(rows: list[int]) -> list[int]:
        return [r for r in rows if r % 2]


    @dx.task(retries=1)
    def boom(rows: list[int]) -> int:
        raise ValueError(f"bad rows {rows} </script>")


    @dx.section
    def etl(n: int) -> list[int]:
        return clean(load(n))


    with dx.Graph("report") as graph:
        n = graph.input("n", int, default=4)
        graph.output(boom(etl(n)), name="total")
    """
)
LINE_CLEAN = 21  # where etl() calls clean()
LINE_BOOM = 26  # where the graph calls boom()


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The pipeline as module ``html_pipe``, its call sites relative to its folder."""
    folder = tmp_path_factory.mktemp("pipe")
    (folder / "html_pipe.py").write_text(PIPELINE)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        spec = importlib.util.spec_from_file_location("html_pipe", folder / "html_pipe.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.plan = module.graph.compile()
        yield module


# -- the plan's page ----------------------------------------------------------------------
def test_clicking_a_node_of_a_plan_page_shows_its_details(
    pipe: ModuleType, browser: Any, tmp_path: Path
) -> None:
    out = tmp_path / "plan.html"
    pipe.plan.to_html(out)
    page = open_page(browser, out)
    assert page.is_visible("#details-empty")
    page.click(node("etl/clean"))
    assert details(page) == {
        "key": "etl/clean",
        "task": "clean",
        "function": "html_pipe:clean",
        "call_site": f"html_pipe.py:{LINE_CLEAN}",
        "signature": "clean(rows: list[int]) -> list[int]",
        "section": "etl",
        "deps": "etl/load",
    }
    assert not page.is_visible("#details-empty")
    assert page.get_attribute(node("etl/clean"), "class") == "node selected"
    assert not page.is_visible("#timeline-section")
    assert page.js_errors == []


def test_plan_page_starts_expanded_and_collapses_sections(
    pipe: ModuleType, browser: Any, tmp_path: Path
) -> None:
    out = tmp_path / "plan.html"
    pipe.plan.to_html(out)
    page = open_page(browser, out)
    assert page.is_visible(node("etl/load"))
    assert page.text_content("#toggle-sections") == "collapse sections"
    page.click("#toggle-sections")
    assert not page.is_visible(node("etl/load"))
    assert page.is_visible('[id="collapsed-section:etl"]')
    page.click('[id="collapsed-node:boom"]')
    assert details(page)["key"] == "boom"
    page.click('[id="collapsed-section:etl"]')  # opens the sections again, the section centred
    assert page.is_visible(node("etl/load"))
    assert page.text_content("#toggle-sections") == "collapse sections"
    svg = page.query_selector("#view-expanded svg").bounding_box()
    cluster = page.query_selector('[id="section:etl"]').bounding_box()
    assert cluster["x"] + cluster["width"] / 2 == pytest.approx(svg["x"] + svg["width"] / 2, abs=2)
    assert cluster["y"] + cluster["height"] / 2 == pytest.approx(svg["y"] + svg["height"] / 2, abs=2)
    assert page.js_errors == []


def test_search_dims_the_nodes_that_do_not_match(pipe: ModuleType, browser: Any, tmp_path: Path) -> None:
    out = tmp_path / "plan.html"
    pipe.plan.to_html(out)
    page = open_page(browser, out)
    page.fill("#search", "ETL/")
    assert page.text_content("#search-count") == "2 found"
    assert page.get_attribute(node("boom"), "class") == "node dim"
    assert page.get_attribute(node("etl/load"), "class") == "node"
    page.press("#search", "Enter")
    assert details(page)["key"] == "etl/load"
    page.fill("#search", "")
    assert page.text_content("#search-count") == ""
    assert page.get_attribute(node("boom"), "class") == "node"


# -- the run report -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def failed_run(pipe: ModuleType) -> dx.RunResult:
    result = pipe.plan.run(executor="serial", raise_on_failure=False)
    assert {k: s.value for k, s in result.states.items()} == {
        "etl/load": "succeeded",
        "etl/clean": "succeeded",
        "boom": "failed",
    }
    return result


def test_clicking_a_failed_node_of_a_run_report_shows_state_attempts_and_error(
    pipe: ModuleType, failed_run: dx.RunResult, browser: Any, tmp_path: Path
) -> None:
    out = tmp_path / "run.html"
    failed_run.to_html(out)
    page = open_page(browser, out)
    page.click(node("boom"))
    trials = failed_run.trials["boom"]
    shown = details(page)
    traceback = shown.pop("traceback")
    assert shown == {
        "key": "boom",
        "task": "boom",
        "function": "html_pipe:boom",
        "call_site": f"html_pipe.py:{LINE_BOOM}",
        "signature": "boom(rows: list[int]) -> int",
        "deps": "etl/clean",
        "state": "failed",
        "duration": format_duration(sum(t.duration or 0.0 for t in trials)),
        "attempts": "2",
        "worker": "master",
        "error": "ValueError: bad rows [1, 3] </script>",
    }
    assert traceback == trials[-1].traceback
    assert traceback.endswith("ValueError: bad rows [1, 3] </script>\n")
    assert page.js_errors == []


def test_run_report_has_a_timeline_an_error_list_and_a_summary(
    failed_run: dx.RunResult, browser: Any, tmp_path: Path
) -> None:
    out = tmp_path / "run.html"
    failed_run.to_html(out)
    page = open_page(browser, out)
    assert page.text_content("#summary") == (
        f"3 nodes, 1 section, failed, {format_duration(failed_run.duration)}, 2 succeeded, 1 failed"
    )
    bars = page.query_selector_all("#timeline .bar")
    # each bar coloured by its trial's state, a retry marked apart (a thin bar's label hidden)
    assert [(b.get_attribute("data-key"), b.get_attribute("class").replace(" narrow", "")) for b in bars] == [
        ("etl/load", "bar st-succeeded"),
        ("etl/clean", "bar st-succeeded"),
        ("boom", "bar st-failed"),
        ("boom", "bar st-failed retry"),
    ]
    assert [e.text_content() for e in page.query_selector_all("#timeline .lane-name")] == ["master"]
    errors = page.query_selector_all("#errors details")
    assert [e.query_selector("summary").text_content() for e in errors] == [
        "boom (failed after 2 attempt(s)): ValueError: bad rows [1, 3] </script>"
    ]
    page.click("#errors .error-key")
    assert details(page)["key"] == "boom"
    bars[0].click()
    assert details(page)["key"] == "etl/load"
    assert page.js_errors == []


def test_a_fragment_opens_the_page_on_that_node(
    failed_run: dx.RunResult, browser: Any, tmp_path: Path
) -> None:
    out = tmp_path / "run.html"
    failed_run.to_html(out)
    page = open_page(browser, out, "#etl%2Fclean")
    assert details(page)["key"] == "etl/clean"


# -- the file -------------------------------------------------------------------------------
def test_pages_load_nothing_from_the_network(
    pipe: ModuleType, failed_run: dx.RunResult, tmp_path: Path
) -> None:
    pipe.plan.to_html(tmp_path / "plan.html")
    failed_run.to_html(tmp_path / "run.html")
    for name in ("plan.html", "run.html"):
        page = (tmp_path / name).read_text()
        # only the SVG namespace names, which are never fetched
        assert set(re.findall(r"https?://[^\s\"'<>]*", page)) == {
            "http://www.w3.org/2000/svg",
            "http://www.w3.org/1999/xlink",
        }
        assert "<!DOCTYPE svg" not in page
        assert re.search(r"<(link|img|iframe)\b|\bsrc=|@import|url\(", page) is None
        assert page.count("<script") == 2


def test_values_cannot_end_the_embedded_script(failed_run: dx.RunResult, tmp_path: Path) -> None:
    failed_run.to_html(tmp_path / "run.html")
    page = (tmp_path / "run.html").read_text()
    assert page.count("</script>") == 2
    data = embedded_data(page)
    last = max(i for i, row in enumerate(data["trials"]) if row[0] == "boom")
    assert data["texts"][str(last)]["error"] == "ValueError: bad rows [1, 3] </script>"


def test_an_existing_page_is_replaced_and_no_temporary_file_is_left(pipe: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "plan.html"
    out.write_text("old")
    pipe.plan.to_html(str(out))
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["plan.html"]


def test_without_dot_nothing_is_written_and_the_error_says_to_install_graphviz(
    pipe: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(RuntimeError) as exc:
        pipe.plan.to_html(tmp_path / "plan.html")
    assert str(exc.value) == (
        "writing an HTML page needs Graphviz's 'dot' program, which is not installed; "
        "install Graphviz (e.g. 'apt-get install graphviz' or 'brew install graphviz')"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["bin"]


def test_to_html_draws_only_plans_and_results(pipe: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(TypeError) as exc:
        to_html(pipe.graph, tmp_path / "g.html")
    assert str(exc.value) == "to_html() draws a CompiledGraph or a RunResult, not Graph"
    assert list(tmp_path.iterdir()) == []


def test_a_missing_folder_is_an_oserror(pipe: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        pipe.plan.to_html(tmp_path / "nowhere" / "plan.html")


# -- a map whose items failed -----------------------------------------------------------------
@dx.task
def numbers(n: int) -> list[int]:
    return list(range(n))


@dx.task(retries=1)
def inv(x: int) -> float:
    if x % 3 == 2:
        raise ZeroDivisionError(f"no inverse for {x}")
    return 1 / x if x else 0.0


@dx.task
def add_up(xs: list[float]) -> float:
    return sum(xs)


@pytest.fixture(scope="module")
def map_run() -> dx.RunResult:
    with dx.Graph("maps") as g:
        add_up(inv.map(numbers(6)))  # items 2 and 5 fail, after a retry each
    result = g.compile().run(executor="serial", fail_fast=False, raise_on_failure=False)
    assert result.failed == ["inv[2]", "inv[5]", "inv"]
    return result


def test_a_failed_map_shows_its_failed_items_in_its_panel_and_the_error_list(
    map_run: dx.RunResult, browser: Any, tmp_path: Path
) -> None:
    out = tmp_path / "map.html"
    map_run.to_html(out)
    page = open_page(browser, out)
    page.click(node("inv"))
    shown = details(page)
    traceback = shown.pop("traceback")
    info = next(n for n in map_run._plan.nodes if n.key == "inv")
    assert shown == {
        "key": "inv",
        "task": "inv",
        "function": info.function,
        "call_site": info.call_site,
        "signature": "inv(x: int) -> float",
        "deps": "numbers",
        "state": "failed",
        "items": "6 items: 4 succeeded, 2 failed",
        "error": "2 of 6 items failed",
        "failed_items": (
            "inv[2] after 2 attempt(s) [failed]: ZeroDivisionError: no inverse for 2\n"
            "inv[5] after 2 attempt(s) [failed]: ZeroDivisionError: no inverse for 5"
        ),
    }  # no "attempts": the map ran no trial of its own, its items did
    two, five = map_run.trials["inv[2]"][-1], map_run.trials["inv[5]"][-1]
    assert traceback == (
        f"--- inv[2] attempt 2 (failed) ---\n{two.traceback.rstrip()}\n"
        f"--- inv[5] attempt 2 (failed) ---\n{five.traceback.rstrip()}"
    )
    errors = page.query_selector_all("#errors details")
    assert [e.query_selector("summary").text_content() for e in errors] == [
        "inv (failed): 2 of 6 items failed"
    ]
    expanded = errors[0].query_selector("pre").text_content()
    assert expanded == (
        "inv[2] after 2 attempt(s) [failed]: ZeroDivisionError: no inverse for 2\n"
        "inv[5] after 2 attempt(s) [failed]: ZeroDivisionError: no inverse for 5\n\n"
        f"{traceback}"
    )
    page.click(node("numbers"))
    item_bars = [
        b for b in page.query_selector_all("#timeline .bar") if b.get_attribute("data-key") == "inv[5]"
    ]
    assert len(item_bars) == 2  # its two attempts
    item_bars[0].click()  # an item's bar opens its map's panel
    assert details(page)["key"] == "inv"
    assert page.js_errors == []


def test_the_header_counts_nodes_and_map_items_apart(
    map_run: dx.RunResult, browser: Any, tmp_path: Path
) -> None:
    out = tmp_path / "map.html"
    map_run.to_html(out)
    page = open_page(browser, out)
    assert page.text_content("#summary") == (
        f"3 nodes, failed, {format_duration(map_run.duration)}, 1 succeeded, 1 failed, 1 upstream_failed"
        " · 6 map items: 4 succeeded, 2 failed"
    )
    assert page.js_errors == []


# -- the timeline: axis, labels, hover, zoom ------------------------------------------------
@dx.task
def steady(x: int) -> int:
    import time

    time.sleep(0.3)
    return x + 1


@dx.task(retries=1)
def refuse(x: int) -> int:
    raise RuntimeError(f"refused {x}\nsecond line")


@pytest.fixture(scope="module")
def timed_run() -> dx.RunResult:
    with dx.Graph("timed") as g:
        g.output(refuse(steady(steady(1))), name="v")
    return g.compile().run(executor="serial", raise_on_failure=False)


def bar_of(page: Any, key: str, attempt: int = 1) -> Any:
    return page.query_selector_all(f'#timeline .bar[data-key="{key}"]')[attempt - 1]


def test_the_timeline_has_a_time_axis_and_labels_its_wide_bars(
    timed_run: dx.RunResult, browser: Any, tmp_path: Path
):
    out = tmp_path / "timed.html"
    timed_run.to_html(out)
    page = open_page(browser, out)
    ticks = [t.text_content() for t in page.query_selector_all("#timeline .tick")]
    assert ticks[0] == "0 s" and len(ticks) >= 3
    assert all(re.fullmatch(r"\d+(\.\d+)? s", t) for t in ticks)
    seconds = [float(t[:-2]) for t in ticks]
    assert seconds == sorted(seconds) and seconds[-1] <= timed_run.duration
    assert page.text_content("#timeline .axis-name").startswith("from ")
    wide = bar_of(page, "steady")
    assert wide.text_content() == "steady" and "narrow" not in wide.get_attribute("class")
    assert page.js_errors == []


def test_hovering_a_bar_shows_its_trial(timed_run: dx.RunResult, browser: Any, tmp_path: Path) -> None:
    out = tmp_path / "timed.html"
    timed_run.to_html(out)
    page = open_page(browser, out)
    assert not page.is_visible("#tooltip")
    bar_of(page, "steady-1").hover()
    shown = page.text_content("#tooltip").splitlines()
    trial = timed_run.trials["steady-1"][0]
    assert shown[0] == "steady-1"
    assert shown[1] == f"attempt 1 \u00b7 succeeded \u00b7 {format_duration(trial.duration)}"
    assert shown[2].endswith(" on master")
    bar_of(page, "refuse", 2).hover()
    shown = page.text_content("#tooltip").splitlines()
    assert shown[0] == "refuse" and shown[1].startswith("attempt 2 \u00b7 failed \u00b7 ")
    assert shown[-1] == "RuntimeError: refused 3"  # the error's first line
    page.mouse.move(0, 0)
    assert not page.is_visible("#tooltip")
    assert page.js_errors == []


def test_dragging_across_the_timeline_zooms_into_that_range_and_fit_shows_all(
    timed_run: dx.RunResult, browser: Any, tmp_path: Path
) -> None:
    out = tmp_path / "timed.html"
    timed_run.to_html(out)
    page = open_page(browser, out)

    def span() -> tuple[float, float]:
        ticks = [float(t.text_content()[:-2]) for t in page.query_selector_all("#timeline .tick")]
        return ticks[0], ticks[-1]

    before = span()
    assert not page.is_visible("#timeline-fit")
    page.query_selector("#timeline").scroll_into_view_if_needed()
    track = page.query_selector("#timeline .ticks").bounding_box()
    y = track["y"] + track["height"] / 2
    page.mouse.move(track["x"] + track["width"] * 0.1, y)
    page.mouse.down()
    page.mouse.move(track["x"] + track["width"] * 0.4, y, steps=5)
    page.mouse.up()
    after = span()
    assert after[1] - after[0] < (before[1] - before[0]) / 2  # a third of the run, shown across the track
    assert after[0] >= before[1] * 0.05
    assert page.is_visible("#timeline-fit")
    assert page.query_selector_all('#timeline .bar[data-key="refuse"]') == []  # it ran after the range
    assert len(page.query_selector_all('#timeline .bar[data-key="steady"]')) == 1
    page.click("#timeline-fit")
    assert span() == before and not page.is_visible("#timeline-fit")
    assert page.js_errors == []


def test_the_header_names_the_plan_versions_executors_inputs_and_what_failed(
    pipe: ModuleType, failed_run: dx.RunResult, browser: Any, tmp_path: Path
) -> None:
    import platform

    out = tmp_path / "run.html"
    failed_run.to_html(out)
    page = open_page(browser, out)
    facts = {
        row.get_attribute("data-fact"): row.query_selector("dd").text_content()
        for row in page.query_selector_all("#facts div")
    }
    assert facts == {
        "fingerprint": pipe.plan.fingerprint[:12],
        "dagexec": dx.__version__,
        "Python": platform.python_version(),
        "executors": "serial",
        "started": facts["started"],
        "input n": "4",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", facts["started"])
    assert page.get_attribute('#facts [data-fact="fingerprint"] dd', "title") == pipe.plan.fingerprint
    assert page.text_content("#failed-list") == "failed: boom"
    page.click("#failed-list a")
    assert details(page)["key"] == "boom"
    plan_page = tmp_path / "plan.html"
    pipe.plan.to_html(plan_page)
    page = open_page(browser, plan_page)
    assert [r.get_attribute("data-fact") for r in page.query_selector_all("#facts div")] == [
        "fingerprint",
        "dagexec",
        "Python",
    ]
    assert not page.is_visible("#failed-list")
    assert page.js_errors == []


# -- the picture: zoom, move, fit, the selected node centred; the states filter -------------
def view_box(page: Any) -> list[float]:
    return [float(v) for v in page.get_attribute("#view-expanded svg", "viewBox").split()]


def test_the_picture_zooms_with_the_wheel_moves_with_a_drag_and_fits_again(
    failed_run: dx.RunResult, browser: Any, tmp_path: Path
) -> None:
    out = tmp_path / "run.html"
    failed_run.to_html(out)
    page = open_page(browser, out)
    fit = view_box(page)
    assert not page.is_visible("#picture-fit")
    box = page.query_selector("#view-expanded svg").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -200)  # in
    page.wait_for_function(f"document.querySelector('#view-expanded svg').viewBox.baseVal.width < {fit[2]}")
    zoomed = view_box(page)
    assert zoomed[2] == pytest.approx(fit[2] * 0.8) and zoomed[3] == pytest.approx(fit[3] * 0.8)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 60, box["y"] + box["height"] / 2 + 30, steps=4)
    page.mouse.up()
    moved = view_box(page)
    assert moved[0] < zoomed[0] and moved[1] < zoomed[1] and moved[2:] == pytest.approx(zoomed[2:])
    assert page.is_visible("#picture-fit")
    page.click("#picture-fit")
    assert view_box(page) == fit and not page.is_visible("#picture-fit")
    assert page.js_errors == []


def test_selecting_a_node_centres_it(failed_run: dx.RunResult, browser: Any, tmp_path: Path) -> None:
    out = tmp_path / "run.html"
    failed_run.to_html(out)
    page = open_page(browser, out)
    page.click("#failed-list a")  # boom
    svg = page.query_selector("#view-expanded svg").bounding_box()
    node_box = page.query_selector(node("boom")).bounding_box()
    assert node_box["x"] + node_box["width"] / 2 == pytest.approx(svg["x"] + svg["width"] / 2, abs=2)
    assert node_box["y"] + node_box["height"] / 2 == pytest.approx(svg["y"] + svg["height"] / 2, abs=2)
    assert page.js_errors == []


def test_the_filter_shows_only_the_failed_nodes_and_what_they_blocked(
    map_run: dx.RunResult, browser: Any, tmp_path: Path
) -> None:
    out = tmp_path / "map.html"
    map_run.to_html(out)
    page = open_page(browser, out)

    def faded() -> list[str]:
        return sorted(g.get_attribute("id")[5:] for g in page.query_selector_all("g.node.filtered"))

    options = [o.text_content() for o in page.query_selector_all("#filter option")]
    assert options == ["all nodes", "failed and what they blocked", "only failed", "only succeeded",
                       "only upstream_failed"]  # fmt: skip
    page.select_option("#filter", label="failed and what they blocked")
    shown_states = {k: s.value for k, s in map_run.states.items() if "[" not in k}
    assert faded() == sorted(k for k, s in shown_states.items() if s not in ("failed", "upstream_failed"))
    page.select_option("#filter", label="only succeeded")
    assert faded() == sorted(k for k, s in shown_states.items() if s != "succeeded")
    page.select_option("#filter", label="all nodes")
    assert faded() == []
    assert page.js_errors == []


def page_ms(seconds: float) -> float:
    """``seconds`` as the page shows a time: written to the microsecond, then rounded
    to the millisecond half up by the page's script (``Math.round``)."""
    return math.floor(round(seconds, 6) * 1000 + 0.5) / 1000


# -- the details panel: every attempt; a map's items ---------------------------------------
def test_the_panel_lists_every_attempt_with_its_error_traceback_and_log(
    failed_run: dx.RunResult, browser: Any, tmp_path: Path
) -> None:
    out = tmp_path / "run.html"
    failed_run.to_html(out)
    page = open_page(browser, out)
    page.click(node("boom"))
    entries = page.query_selector_all("#attempt-entries > details")
    trials = failed_run.trials["boom"]
    assert [e.query_selector("summary").text_content() for e in entries] == [
        f"attempt {t.attempt} \u00b7 failed \u00b7 {format_duration(t.duration)} \u00b7 master \u00b7 "
        f"+{page_ms(t.start - failed_run.start):g} s \u2192 +{page_ms(t.end - failed_run.start):g} s"
        for t in trials
    ]
    assert not entries[1].query_selector(".attempt-error").is_visible()  # collapsed
    entries[1].query_selector("summary").click()
    assert (
        entries[1].query_selector(".attempt-error").text_content() == "ValueError: bad rows [1, 3] </script>"
    )
    assert entries[1].query_selector(".attempt-traceback").text_content() == trials[1].traceback
    page.click(node("etl/load"))
    assert len(page.query_selector_all("#attempt-entries > details")) == 1
    assert not page.is_visible("#item-list")
    assert page.js_errors == []


def test_a_failed_map_items_error_is_two_clicks_away(
    map_run: dx.RunResult, browser: Any, tmp_path: Path
) -> None:
    out = tmp_path / "map.html"
    map_run.to_html(out)
    page = open_page(browser, out)
    page.click(node("inv"))  # one
    items = page.query_selector_all("#item-entries > details")
    assert [i.get_attribute("data-key") for i in items] == [
        "inv[2]",
        "inv[5]",
        "inv[0]",
        "inv[1]",
        "inv[3]",
        "inv[4]",
    ]
    summary = items[0].query_selector("summary")
    assert summary.text_content().startswith("inv[2] \u00b7 failed \u00b7 2 attempts \u00b7 ")
    assert summary.text_content().endswith(" \u00b7 ZeroDivisionError: no inverse for 2")
    summary.click()  # two
    errors = items[0].query_selector_all(".attempt-error")
    assert [e.text_content() for e in errors] == ["ZeroDivisionError: no inverse for 2"] * 2
    assert errors[1].is_visible() and not errors[0].is_visible()  # the last attempt's, open
    last = map_run.trials["inv[2]"][-1]
    assert items[0].query_selector_all(".attempt-traceback")[1].text_content() == last.traceback
    assert page.js_errors == []


def test_a_printed_report_leaves_out_the_controls(
    failed_run: dx.RunResult, browser: Any, tmp_path: Path
) -> None:
    out = tmp_path / "run.html"
    failed_run.to_html(out)
    page = open_page(browser, out)
    assert page.is_visible("#search") and page.is_visible("#filter")
    page.emulate_media(media="print")
    assert not page.is_visible("#search") and not page.is_visible("#filter")
    assert (
        page.is_visible("#picture svg") and page.is_visible("#timeline .bar") and page.is_visible("#errors")
    )
    assert page.js_errors == []
