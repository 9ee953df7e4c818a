"""Draw the screenshots of run reports that docs/pictures.md shows.

``report-small.png``: the run of ``nightly.py``, the example of docs/pictures.md (its
first Python block, run as written), with ``publish`` selected.  ``report-large.png``:
the 10,000-node run of ``bench/report_page.py``, its ``transform`` group clicked and
its first failed node selected, the picture fitted again.  Each page is opened in headless Chromium (Debian's
``chromium``, driven by Playwright) at 1400 x 1000.

Usage (from the repository root, after ``bash scripts/venv dev``)::

    .venv/bin/python scripts/screenshots.py [FOLDER]     # default: docs/img
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VIEWPORT = {"width": 1400, "height": 1000}


def nightly_result(folder: Path) -> object:
    """The result of the run that docs/pictures.md's example makes."""
    page = (ROOT / "docs" / "pictures.md").read_text(encoding="utf-8")
    found = re.search(r"```python\n(.*?)```", page, re.S)
    assert found is not None, "docs/pictures.md has no Python block"
    (folder / "nightly.py").write_text(found.group(1), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("nightly", folder / "nightly.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    here = os.getcwd()
    os.chdir(folder)  # call sites relative to it: nightly.py:33
    try:
        spec.loader.exec_module(module)
    finally:
        os.chdir(here)
    return module.result


def shoot(browser: object, page_path: Path, out: Path, clicks: list[str], fragment: str = "") -> None:
    """Open ``page_path`` (at ``fragment``), click each selector of ``clicks``, and save
    the window as ``out``."""
    page = browser.new_page(viewport=VIEWPORT)  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(page_path.as_uri() + fragment)
    page.wait_for_selector("body[data-drawn]")
    for selector in clicks:
        page.click(selector)
    page.screenshot(path=str(out))
    page.close()
    if errors:
        raise RuntimeError(f"{page_path.name}: {errors}")


def main(folder: Path) -> None:
    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    from playwright import sync_api
    from report_page import large_run

    folder.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("needs Debian's chromium: bash scripts/test installs it")
    with tempfile.TemporaryDirectory() as tmp, sync_api.sync_playwright() as p:
        work = Path(tmp)
        nightly_result(work).to_html(work / "small.html")  # type: ignore[attr-defined]
        large_run(10_000).to_html(work / "large.html")
        browser = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox"])
        shoot(browser, work / "small.html", folder / "report-small.png", ["#picture-fit"], "#publish")
        shoot(browser, work / "large.html", folder / "report-large.png", ['[id="group:1"]', "#item-entries .member a", "#picture-fit"])
        browser.close()
    for name in ("report-small.png", "report-large.png"):
        print(f"wrote {folder / name}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "img")
