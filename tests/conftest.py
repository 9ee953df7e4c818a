"""Programs the suite needs besides Python packages.

``scripts/test`` installs Graphviz's ``dot`` and Debian's ``chromium`` where they are
missing, so a test that needs one fails (never skips) when it is absent: a suite that
skipped them would pass without checking the pictures or the pages.
"""

from __future__ import annotations

import shutil

import pytest


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


#: mark a test that renders with Graphviz's dot
needs_dot = pytest.mark.usefixtures("dot_program")
