"""Helpers for the tests of HTML pages opened in a real headless Chromium (Debian's
``chromium``, driven by Playwright): the browser's arguments, opening a page with its
JS errors collected, reading the details panel and the page's embedded data."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

# as root in a container; without the background-networking flags Chromium tries to
# reach Google's servers and a closed network refuses it
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def open_page(browser: Any, path: Path, fragment: str = "") -> Any:
    """``path`` opened in a new page of ``browser`` (at ``fragment``, e.g. ``"#key"``),
    once its picture is there; ``page.js_errors`` collects the page's uncaught errors."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(path.as_uri() + fragment)
    page.wait_for_selector("#picture svg")
    page.js_errors = errors
    return page


def details(page: Any) -> dict[str, str]:
    """The details panel's shown fields, by name."""
    shown: dict[str, str] = {}
    for row in page.query_selector_all("#details .row"):
        if row.is_visible():
            field = row.get_attribute("data-field")
            shown[field] = page.text_content(f"#detail-{field}")
    return shown


def node(key: str) -> str:
    """The selector of node ``key``'s group in a page's (expanded) picture."""
    return f'[id="node:{key}"]'


def embedded_data(page: str) -> Any:
    """The data a page's text embeds (its ``dagexec-data`` script), parsed."""
    m = re.search(r'<script type="application/json" id="dagexec-data">(.*?)</script>', page, re.S)
    assert m is not None
    return json.loads(m.group(1))
