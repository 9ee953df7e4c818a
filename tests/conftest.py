"""What the suite needs: Python packages, and programs besides them.

The packages are dagexec's dependencies and its ``test`` extra (``pyproject.toml``);
a Python without one of them stops the session at its start with one line naming
what is missing and how to get it, instead of a collection error per test module
that imports it.  ``scripts/test`` installs them into ``.venv``, and installs
Graphviz's ``dot`` and Debian's ``chromium`` where they are missing, so a test that
needs one of those fails (never skips) when it is absent: a suite that skipped them
would pass without checking the pictures or the pages.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def missing_packages() -> list[str]:
    """The distributions of dagexec's dependencies and of its ``test`` extra that this
    Python does not have ([] on Python 3.10, which cannot read ``pyproject.toml``)."""
    try:
        import tomllib
    except ModuleNotFoundError:
        return []
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    missing = []
    for requirement in wanted:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement)
        assert name is not None, requirement
        try:
            importlib.metadata.distribution(name.group(0))
        except importlib.metadata.PackageNotFoundError:
            missing.append(name.group(0))
    return missing


def pytest_configure(config: pytest.Config) -> None:
    missing = missing_packages()
    if missing:
        pytest.exit(
            f"the suite needs {', '.join(missing)}, which {sys.executable} does not have: "
            "run 'bash scripts/test', which installs dagexec with its test extra into .venv "
            "and runs the suite there",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


@pytest.fixture(scope="session")
def dot_program() -> str:
    """The path of Graphviz's ``dot``; fails the test when it is not installed."""
    path = shutil.which("dot")
    if path is None:
        pytest.fail("Graphviz's dot is not installed: run scripts/test, which installs it")
    return path


@pytest.fixture(scope="session")
def chromium_program() -> str:
    """The path of Debian's ``chromium``; fails the test when it is not installed."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("Debian's chromium is not installed: run scripts/test, which installs it")
    return path


@pytest.fixture(scope="module")
def browser(chromium_program: str) -> Iterator[Any]:
    """A headless Chromium, driven by Playwright, for the tests of HTML pages."""
    from pages import CHROMIUM_ARGS
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_program, args=CHROMIUM_ARGS)
        yield b
        b.close()


#: mark a test that renders with Graphviz's dot
needs_dot = pytest.mark.usefixtures("dot_program")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A ``distributed.LocalCluster`` of two worker processes of one thread each, on
    127.0.0.1, for the module that asks (a module may define its own)."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def client(cluster: Any) -> Iterator[Any]:
    """A client of the module's cluster; not the default client: a run given
    ``executor="dask"`` must find none unless a test makes one current."""
    from distributed import Client

    with Client(cluster, set_as_default=False) as client:
        yield client


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A local Ray of two CPUs (and one ``special`` resource) on 127.0.0.1, started in
    this process for the module that asks and shut down after it; its address."""
    import ray

    from dagexec.executors import RayExecutor

    environ = dict(os.environ)  # ray.init sets variables of its own (PYTHONBREAKPOINT among them)
    RayExecutor(  # starts Ray as executor="ray" does (the signal handlers of a run kept)
        num_cpus=2,
        resources={"special": 1},
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=256 * 1024 * 1024,
        _node_ip_address="127.0.0.1",
    )
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()
        os.environ.clear()
        os.environ.update(environ)


@pytest.fixture(params=["serial", "threads", "loky", "dask"])
def every_executor(request: pytest.FixtureRequest) -> Any:
    """Each executor in turn: its name, or for dask a ``DaskExecutor`` on the module's
    client."""
    if request.param == "dask":
        from dagexec.executors import DaskExecutor

        return DaskExecutor(request.getfixturevalue("client"))
    return request.param


@pytest.fixture
def graphs(cluster: Any, client: Any) -> Iterator[list[int]]:
    """The number of keys of each graph the module's client sends during the test."""
    from dask_helpers import GraphCount

    plugin = GraphCount(client.id)
    cluster.scheduler.add_plugin(plugin, name="dagexec-graph-count")
    yield plugin.graphs
    cluster.scheduler.remove_plugin(name="dagexec-graph-count")


@pytest.fixture
def gathered(client: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The dask keys of every value the module's client gathers during the test."""
    keys: list[str] = []
    gather = client.gather

    def spy(futures: Any, *args: Any, **kwargs: Any) -> Any:
        keys.extend(f.key for f in futures)
        return gather(futures, *args, **kwargs)

    monkeypatch.setattr(client, "gather", spy)
    return keys


@pytest.fixture(autouse=True)
def no_run_left_watching() -> Iterator[None]:
    """Fails a test after which a run still watches this process's children: its
    executor's run never ended, and a later test's subprocess would get a guard that
    outlives it.  The watch is ended, so one such test does not fail the ones after."""
    yield
    proctree = sys.modules.get("dagexec._proctree")
    if proctree is None or not proctree._WATCH.sinces:
        return
    left = list(proctree._WATCH.sinces)
    for token in left:
        proctree.unwatch_children(token)
    pytest.fail(f"{len(left)} run(s) still watch child processes: an executor's run_ended() was never called")
