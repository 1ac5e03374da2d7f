"""Outputs that outlive the kernel, as a reader sees them: Chromium on ``file://`` URLs, with
no Jupyter server and no network (every ``http(s)`` request is refused).

* The nbconvert export of a notebook that used the panel, ``compare``, ``grid`` and ``show``
  shows every view's final images (each ``<img>`` decoded) and text, escaped, and no link
  or image points at a loopback address.
* With the widget state saved, the standard HTML widget manager
  (``@jupyter-widgets/html-manager`` from npm, served from files beside the page, no CDN)
  renders the views and they hide their static copies. Where our ``anywidget`` pieces
  cannot load, they drop out unseen (the views still render); where they can, our
  front-end code raises nothing without a kernel. (Where the manager itself cannot load,
  the first test: the static copies show.)
* Reports (``to_html``) open from ``file://`` with every image decoded.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anywidget
import pytest
from nbconvert import HTMLExporter

from notebooks.static_export import IMAGES, VIEWS, Export, cell_index, execute_and_export

from .harness import REPO

pytestmark = pytest.mark.browser

HTML_MANAGER = "@jupyter-widgets/html-manager@1.0.15"
REQUIREJS = "requirejs@2.3.7"
NPM_CACHE = REPO / ".cache" / "npm"
ANYWIDGET_JS = Path(anywidget.__file__).parent / "nbextension" / "index.js"
"""anywidget's front end as an AMD module (the build its Python package ships)."""

# Per output area: its <img>s, how many are decoded, whether it is shown, its static copy's
# kind (or ""), and its text.
_OUTPUTS = """
() => [...document.querySelectorAll('.jp-Cell')].map(cell => {
  const area = cell.querySelector('.jp-OutputArea');
  if (!area) return null;
  const imgs = [...area.querySelectorAll('img')].filter(i => i.offsetParent !== null);
  const copy = area.querySelector('.nbw-static');
  return {
    shown: imgs.length,
    decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    copy: copy ? copy.dataset.nbwStatic : '',
    copyShown: copy ? copy.offsetParent !== null : false,
    text: area.innerText,
  };
})
"""
_URLS = """
() => [...document.querySelectorAll('img[src], a[href], link[href], script[src]')]
  .map(e => e.src || e.href)
"""
_INJECTED = """
() => [...document.querySelectorAll(
  '.jp-OutputArea img[src="x"], .jp-OutputArea [onerror], .jp-OutputArea [onload], '
  + '.jp-OutputArea svg[onload], .nbw-static script, .jp-RenderedHTML script')]
  .map(e => e.outerHTML)
"""
_LOOPBACK = ("http://127.", "https://127.", "http://localhost", "https://localhost",
             "http://[::1]", "http://0.0.0.0")


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Export:
    done = execute_and_export(tmp_path_factory.mktemp("static-export"))
    assert done.error is None, done.error
    return done


@pytest.fixture
def offline(page: Any) -> Iterator[list[str]]:
    """The page may read files and data URIs only; the URLs it tried otherwise."""
    refused: list[str] = []

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(("file:", "data:", "blob:")):
            r.continue_()
        else:
            refused.append(url)
            r.abort()

    page.context.route("**/*", route)
    yield refused


def _wait_decoded(page: Any, selector: str, n: int) -> None:
    page.wait_for_function(
        """([sel, n]) => { const imgs = [...document.querySelectorAll(sel)]
             .filter(i => i.offsetParent !== null);
           return imgs.length >= n && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
        arg=[selector, n], timeout=30_000)


def _file(url: str) -> Path:
    return Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))


def _check_urls(page: Any) -> None:
    for url in page.evaluate(_URLS):
        assert not url.startswith(_LOOPBACK), url
        if url.startswith("file://") and "nanobanana-files" in url:
            assert _file(url).is_file(), url


def test_the_exported_notebook_shows_every_view_with_no_server_and_no_network(
        export: Export, page: Any, offline: list[str],
        screenshot: Callable[..., Path]) -> None:
    page.goto(export.html.as_uri())
    _wait_decoded(page, ".jp-OutputArea img", sum(IMAGES.values()))
    outputs = page.evaluate(_OUTPUTS)
    for name, images in IMAGES.items():
        out = outputs[cell_index(name)]
        assert out is not None, name
        assert out["shown"] == images and out["decoded"] == images, (name, out)
        if name in VIEWS:
            assert out["copyShown"], (name, out)
    assert "Run #2: 1 image ready" in outputs[cell_index("panel")]["text"]
    assert "Done: 4 of 4 cells done" in outputs[cell_index("grid")]["text"]
    assert "dawn picked" in outputs[cell_index("compare")]["text"]
    assert "<script>alert('xss')</script>" in outputs[cell_index("compare")]["text"]  # as text
    assert page.evaluate(_INJECTED) == []
    _check_urls(page)
    assert offline, "the export asked for its widget manager and got nothing"
    assert all(not u.startswith(_LOOPBACK) for u in offline), offline
    screenshot(page.locator(".jp-Notebook").first, "static-export-nbconvert")


def _html_manager_files() -> Path:
    """``@jupyter-widgets/html-manager`` and RequireJS from npm, installed once."""
    dist = NPM_CACHE / "node_modules" / "@jupyter-widgets" / "html-manager" / "dist"
    require = NPM_CACHE / "node_modules" / "requirejs" / "require.js"
    if not (dist / "embed-amd.js").is_file() or not require.is_file():
        NPM_CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["npm", "install", "--prefix", str(NPM_CACHE), "--no-audit",
                               "--no-fund", "--ignore-scripts", HTML_MANAGER, REQUIREJS],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"npm install failed:\n{done.stdout}\n{done.stderr}"
    return NPM_CACHE / "node_modules"


def _export_with_local_manager(export: Export, name: str, *, anywidget: bool) -> Path:
    """The saved notebook (with its widget state) exported to ``name`` with the HTML widget
    manager and RequireJS loaded from files beside it; ``anywidget``'s module too, or not."""
    modules = _html_manager_files()
    folder = export.folder
    local = folder / "html-manager"
    if not local.exists():
        shutil.copytree(modules / "@jupyter-widgets" / "html-manager" / "dist", local,
                        ignore=shutil.ignore_patterns("*.map"))
        shutil.copy(modules / "requirejs" / "require.js", local / "require.js")
    exporter = HTMLExporter(widget_renderer_url="html-manager/embed-amd.js",
                            require_js_url="html-manager/require.js")
    body, _ = exporter.from_filename(str(export.notebook))
    target = folder / name / "page.html"
    target.parent.mkdir(exist_ok=True)
    (target.parent / "html-manager").symlink_to(local, target_is_directory=True)
    (target.parent / "nanobanana-files").symlink_to(folder / "nanobanana-files",
                                                    target_is_directory=True)
    if anywidget:  # RequireJS looks for modules beside the page before any CDN
        shutil.copy(ANYWIDGET_JS, target.parent / "anywidget.js")
    target.write_text(body, encoding="utf-8")
    return target


def test_without_anywidget_the_views_render_and_our_pieces_drop_out_unseen(
        export: Export, page: Any, offline: list[str], screenshot: Callable[..., Path]) -> None:
    assert "widgets" in export.read().metadata  # the widget state was saved
    html = _export_with_local_manager(export, "no-anywidget", anywidget=False)
    page.goto(html.as_uri())
    # The manager, from the files beside the page, looks for anywidget beside it, then on
    # its CDN (refused): our two anywidget pieces cannot load ...
    _wait_decoded(page, ".nbw-matrix .nbw-matrix-cell img", 4)
    _wait_decoded(page, ".nbw-cmp .nbw-cmp-card img", 2)
    _wait_decoded(page, ".nbw-panel .nbw-result-card img", 2)
    assert any("anywidget" in u for u in offline), offline
    # ... yet every view renders, the error boxes put in their place stay hidden, and the
    # static copies hide themselves behind the views (no view shows twice).
    assert page.locator(".jupyter-widgets-error-widget").count() >= len(VIEWS)
    assert page.locator(".jupyter-widgets-error-widget:visible").count() == 0
    error_text = page.get_by_text("Click to show javascript error")
    assert error_text.locator("visible=true").count() == 0
    outputs = page.evaluate(_OUTPUTS)
    for name in VIEWS:
        assert not outputs[cell_index(name)]["copyShown"], name
    assert "Done: 4 of 4 cells done" in page.locator(".nbw-matrix").first.inner_text()
    assert page.evaluate(_INJECTED) == []
    _check_urls(page)
    screenshot(page.locator(".jp-Notebook").first, "static-export-html-manager-no-anywidget")


def test_with_anywidget_beside_the_page_the_live_views_render_and_hide_their_copies(
        export: Export, page: Any, offline: list[str], screenshot: Callable[..., Path]) -> None:
    html = _export_with_local_manager(export, "with-anywidget", anywidget=True)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(html.as_uri())
    matrix = page.locator(".nbw-matrix").first
    matrix.wait_for(state="visible", timeout=30_000)
    _wait_decoded(page, ".nbw-matrix .nbw-matrix-cell img", 4)
    _wait_decoded(page, ".nbw-cmp .nbw-cmp-card img", 2)
    _wait_decoded(page, ".nbw-panel .nbw-result-card img", 2)
    page.wait_for_function("() => document.querySelectorAll('.nbw-view-sync').length >= 4")
    outputs = page.evaluate(_OUTPUTS)
    for name in VIEWS:
        assert not outputs[cell_index(name)]["copyShown"], name  # the live view hides it
    assert "Done: 4 of 4 cells done" in matrix.inner_text()
    assert page.evaluate(_INJECTED) == []
    assert errors == [], errors  # our front-end pieces run without a kernel
    _check_urls(page)
    screenshot(page.locator(".jp-Notebook").first, "static-export-html-manager-anywidget")


def test_reports_open_from_file_urls_with_every_image_decoded(
        export: Export, page: Any, offline: list[str], screenshot: Callable[..., Path]) -> None:
    folder = export.folder / "reports"
    code = (
        "import nanobanana_widgets as nbw\n"
        "nbw.use_emulator(latency=0.05)\n"
        f"HOSTILE = {'<img src=x onerror=alert(1)>'!r}\n"
        "a = nbw.generate('a quiet harbour ' + HOSTILE)\n"
        "b = nbw.generate('a busy harbour', aspect_ratio='16:9')\n"
        "c = nbw.compare(a, b, labels=[HOSTILE, 'busy'])\n"
        "c.pick(1)\n"
        f"c.to_html({str(folder / 'comparison.html')!r})\n"
        f"c.to_html({str(folder / 'comparison-embedded.html')!r}, embed=True)\n"
        "g = nbw.grid(['a kite', 'a boat'], aspect_ratios=['1:1', '16:9'])\n"
        "g.wait(60)\n"
        f"g.to_html({str(folder / 'grid.html')!r})\n"
        "h = nbw.default_history(); h.flush(); h.rate(-1, 4)\n"
        f"h.to_html({str(folder / 'history.html')!r})\n"
    )
    folder.mkdir()
    done = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = {"comparison.html": 2, "comparison-embedded.html": 2, "grid.html": 4,
                "history.html": 6}
    for name, images in expected.items():
        page.goto((folder / name).as_uri())
        _wait_decoded(page, "img", images)
        if name == "comparison-embedded.html":
            for details in page.locator("details.nbw-full").all():
                details.locator("summary").click()
            _wait_decoded(page, "details.nbw-full img", 2)
        for url in page.evaluate(_URLS):
            assert url.startswith(("data:", "file:")), url
            if url.startswith("file:") and url.endswith((".png", ".jpg")):
                assert _file(url).is_file(), url
        assert page.evaluate("() => document.querySelectorAll('img[src=\"x\"], [onerror]')"
                             ".length") == 0
        screenshot(page, f"report-{name.removesuffix('.html')}")
    assert offline == []  # a report asks the network for nothing
