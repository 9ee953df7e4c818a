"""The suite's own set-up (``tests/conftest.py``): a Python without the packages it
needs stops at once with one line saying what is missing, not with collection errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import ROOT, missing_packages

#: pytest run on one module in a Python where the distribution ``ray`` is not found
WITHOUT_RAY = textwrap.dedent(
    """\
    import importlib.metadata as metadata
    import sys

    import pytest

    found = metadata.distribution

    def distribution(name):
        if name == "ray":
            raise metadata.PackageNotFoundError(name)
        return found(name)

    metadata.distribution = distribution
    sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "tests/test_walk.py"]))
    """
)


def test_this_python_has_every_package_the_suite_needs() -> None:
    assert missing_packages() == []


def test_a_missing_package_stops_the_session_with_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_RAY], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 4  # pytest's usage error
    assert (proc.stdout + proc.stderr).strip().splitlines() == [
        f"Exit: the suite needs ray, which {sys.executable} does not have: run 'bash scripts/test', "
        "which installs dagexec with its test extra into .venv and runs the suite there"
    ]
