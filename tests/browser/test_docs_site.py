"""The documentation site, opened from the file system in Chromium, as a newcomer reads it.

`make docs` builds it into docs/_build/html (`make test` does, before this suite); when that
build is missing or older than the sources, the `site` fixture builds it here. Checked: the
API page of PromptPanel shows its parameters; every tutorial page shows at least as many
decoded images as its executed notebook made; every internal link resolves; dark mode is
readable; and no page points at a loopback address.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from .page_scripts import CONTRAST

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
BUILT = DOCS / "_build" / "html"
EXECUTED = DOCS / "_build" / "jupyter_execute" / "tutorials"
TUTORIALS = sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb"))

_DECODED_IMAGES = """
() => [...document.querySelectorAll('article img')]
        .filter(i => i.complete && i.naturalWidth > 0).length
"""


def _newest_source() -> float:
    paths = [*DOCS.rglob("*.md"), DOCS / "conf.py", *(REPO / "notebooks").glob("*.ipynb"),
             *(REPO / "src").rglob("*.py")]
    return max(p.stat().st_mtime for p in paths if "_build" not in p.parts)


@pytest.fixture(scope="session")
def site() -> Path:
    """The built site (built here when missing or older than its sources)."""
    index = BUILT / "index.html"
    if not index.exists() or index.stat().st_mtime < _newest_source():
        sphinx = Path(sys.executable).parent / "sphinx-build"
        done = subprocess.run(
            [str(sphinx), "-E", "-W", "--keep-going", "-q", "-b", "html", str(DOCS),
             str(BUILT)],
            capture_output=True, text=True, timeout=900,
            env={k: v for k, v in os.environ.items() if k != "ACEDATACLOUD_API_TOKEN"},
        )
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return BUILT


@pytest.fixture
def docs_page(page: Any, site: Path) -> Iterator[Any]:
    yield page


def _url(site: Path, rel: str) -> str:
    return (site / rel).as_uri()


def _images_made(notebook: Path) -> int:
    """Images in the executed notebook's outputs, as the site shows them: each output's
    chosen representation (text/html over a widget view, else an image)."""
    count = 0
    for cell in json.loads(notebook.read_text())["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/html" in data:
                html = "".join(data["text/html"]) if isinstance(data["text/html"], list) \
                    else data["text/html"]
                count += len(re.findall(r"<img\b", html))
            elif any(k.startswith("image/") for k in data):
                count += 1
    return count


def test_promptpanel_api_page_shows_its_parameters(docs_page: Any, site: Path) -> None:
    docs_page.goto(_url(site, "index.html"))
    docs_page.get_by_role("link", name="API reference").first.click()
    docs_page.get_by_role("link", name="The prompt panel").first.click()
    signature = docs_page.locator('dt[id="nanobanana_widgets.PromptPanel"]')
    text = signature.inner_text()
    for parameter in ("client", "history", "save_dir"):
        assert parameter in text, text
    assert "*args" not in text


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_page_shows_every_image_it_made(docs_page: Any, site: Path, name: str) -> None:
    executed = EXECUTED / f"{name}.ipynb"
    assert executed.exists(), f"the build did not execute {name}"
    made = _images_made(executed)
    assert made >= 1, f"{name} made no image"
    docs_page.goto(_url(site, f"tutorials/{name}.html"))
    docs_page.wait_for_load_state("load")
    decoded = docs_page.evaluate(_DECODED_IMAGES)
    assert decoded >= made, f"{name}: {decoded} decoded images on the page, {made} made"
    binder = docs_page.locator("a.nbw-binder-link")
    assert binder.count() == 1
    assert binder.get_attribute("href", timeout=1000).endswith(f"notebooks/{name}.ipynb")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(str(found["id"]))
        for key in ("href", "src"):
            value = found.get(key)
            if value and (tag in ("a", "img", "link", "script")):
                self.hrefs.append(value)


def test_every_internal_link_resolves_and_nothing_points_at_loopback(site: Path) -> None:
    pages = {p: _Links() for p in site.rglob("*.html")
             if not {"_static", "_sources"} & set(p.relative_to(site).parts)}
    for path, parser in pages.items():
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    broken: list[str] = []
    for path, parser in pages.items():
        for href in parser.hrefs:
            parts = urlsplit(href)
            host = (parts.hostname or "").lower()
            if host in ("localhost", "::1") or host.startswith("127."):
                broken.append(f"{path.relative_to(site)}: loopback {href}")
            if parts.scheme or href.startswith(("//", "mailto:", "data:", "javascript:")):
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if not target.exists():
                broken.append(f"{path.relative_to(site)}: {href}")
                continue
            if parts.fragment and target.suffix == ".html" and target in pages and \
                    parts.fragment not in pages[target].ids:
                broken.append(f"{path.relative_to(site)}: {href} (no such anchor)")
    assert broken == [], "\n".join(broken[:40])


@pytest.mark.parametrize("mode", ["light", "dark"])
def test_pages_are_readable_in_both_modes(docs_page: Any, site: Path, mode: str) -> None:
    for rel in ("index.html", "api/panel.html", "concepts/troubleshooting.html",
                "tutorials/01_quickstart.html"):
        docs_page.goto(_url(site, rel))
        docs_page.evaluate(f"document.documentElement.dataset.theme = '{mode}'")
        assert docs_page.evaluate("document.documentElement.dataset.theme") == mode
        ratio = docs_page.evaluate(CONTRAST, "article p")
        assert ratio >= 4.5, f"{rel} in {mode} mode: contrast {ratio:.2f}"
