"""A notebook as a person sees it in JupyterLab, Notebook 7 or Voilà, driven through Playwright.

The same few verbs work in every front end: ``open_and_run`` a notebook, wait for a widget's
own element, ``save``, ``reload``. Readiness is always something visible (the kernel
indicator, the cell prompts, Voilà's spinner going away, the widget's element), never a sleep.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .harness import UI_TIMEOUT_MS, WIDGET_STATE_MIME, JupyterServer, write_notebook

# The kernel indicator in the notebook toolbar (JupyterLab and Notebook 7 share it).
EXECUTION_INDICATOR = ".jp-Notebook-ExecutionIndicator"
ERROR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
LOADING_TEXT = "Loading widget..."

# True when every code cell shows an execution count ("[3]:"), none is queued ("[*]:").
_ALL_CELLS_RAN = """
() => {
  const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
  return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}
"""


class NotebookPage:
    """One test's notebook in one front end."""

    def __init__(
        self, page: Any, server: JupyterServer, root_dir: Path, name: str,
        dialogs: list[str] | None = None,
    ) -> None:
        self.page = page
        self.server = server
        self.root_dir = root_dir
        self.name = name
        self.dialogs: list[str] = dialogs if dialogs is not None else []
        self.path: Path | None = None

    @property
    def frontend(self) -> str:
        return self.server.kind

    # --- files -----------------------------------------------------------------------------

    def write(self, cells: Iterable[str], *, suffix: str = "") -> Path:
        """Write this test's notebook (code cells, no outputs) into a folder of its own.

        The kernel starts in the notebook's folder, so whatever the notebook writes there
        (the history, saved images) belongs to this test alone.
        """
        folder = self.root_dir / self.name
        self.path = write_notebook(folder / f"{self.name}{suffix}.ipynb", cells)
        return self.path

    @property
    def folder(self) -> Path:
        """The folder the notebook (and its kernel's working directory) is in."""
        assert self.path is not None, "write() first"
        return self.path.parent

    def saved_notebook(self) -> dict[str, Any]:
        """The notebook file as it is on disk now."""
        assert self.path is not None, "write() first"
        return dict(json.loads(self.path.read_text()))

    # --- navigation ------------------------------------------------------------------------

    def url(self) -> str:
        assert self.path is not None, "write() first"
        rel = self.path.relative_to(self.root_dir).as_posix()
        if self.frontend == "lab":
            # `reset` starts from an empty workspace, so earlier tests' notebooks stay closed.
            return self.server.url(f"/lab/tree/{rel}", reset="")
        if self.frontend == "notebook":
            return self.server.url(f"/notebooks/{rel}")
        return self.server.url(f"/voila/render/{rel}")

    def open(self) -> NotebookPage:
        """Open the notebook; in Voilà this also runs it and waits for the spinner to go."""
        self.page.goto(self.url(), wait_until="domcontentloaded", timeout=UI_TIMEOUT_MS)
        if self.frontend == "voila":
            self.page.wait_for_selector("#loading", state="hidden", timeout=UI_TIMEOUT_MS)
        else:
            self.page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=UI_TIMEOUT_MS)
            self.wait_kernel_idle()
        return self

    def open_and_run(self, cells: Iterable[str] | None = None) -> NotebookPage:
        """Write (when cells are given), open and run every cell, then wait for the kernel."""
        if cells is not None:
            self.write(cells)
        self.open()
        if self.frontend != "voila":
            self.run_all()
        return self

    def reload(self) -> NotebookPage:
        """Leave the page, then open it again (nothing is re-run in JupyterLab or Notebook 7).

        The old page's kernel connection must be gone first, or the new page's readiness
        check could count it.
        """
        self.page.goto("about:blank")
        if self.frontend != "voila":
            self._wait_connections(lambda n: n == 0, "the old page stayed connected", 30_000)
        return self.open()

    # --- kernel ----------------------------------------------------------------------------

    def kernel_connections(self) -> int:
        """How many browser connections the server counts on this notebook's kernel."""
        assert self.path is not None, "write() first"
        rel = self.path.relative_to(self.root_dir).as_posix()
        for session in self.server.api("GET", "/api/sessions") or []:
            if session.get("path") == rel and session.get("kernel"):
                return int(session["kernel"].get("connections", 0))
        return 0

    def _wait_connections(self, done: Callable[[int], bool], what: str, timeout_ms: int) -> None:
        deadline = time.monotonic() + timeout_ms / 1000
        while not done(self.kernel_connections()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.path}: {what} within {timeout_ms // 1000}s")
            self.page.wait_for_timeout(100)

    def wait_kernel_idle(self, timeout_ms: int = UI_TIMEOUT_MS) -> None:
        """Wait until this page is connected to its kernel and the toolbar indicator says idle.

        The indicator reads "idle" for a moment before any kernel exists, so first the server
        must count a connection to the notebook's kernel; after that "idle" is the real one.
        """
        if self.frontend == "voila":
            return
        self._wait_connections(lambda n: n >= 1, "no kernel connection", timeout_ms)
        self.page.wait_for_selector(
            f'{EXECUTION_INDICATOR}[data-status="idle"]', timeout=timeout_ms
        )

    def menu(self, top: str, command: str) -> None:
        """Click a menu-bar entry, then the item that runs ``command`` (a Lumino command id)."""
        self.page.locator(".lm-MenuBar-item", has_text=top).first.click()
        item = self.page.locator(f'.lm-Menu-item[data-command="{command}"]').first
        item.wait_for(state="visible", timeout=UI_TIMEOUT_MS)
        item.click()

    def run_all(self) -> None:
        """Run → Run All Cells, then wait until every cell has run and the kernel is idle."""
        self.menu("Run", "runmenu:run-all")
        self.page.wait_for_function(_ALL_CELLS_RAN, timeout=UI_TIMEOUT_MS)
        self.wait_kernel_idle()

    # --- widgets ---------------------------------------------------------------------------

    def widget(self, selector: str, *, timeout_ms: int = UI_TIMEOUT_MS) -> Any:
        """The first visible element matching ``selector`` (waits for it to appear)."""
        locator = self.page.locator(selector).first
        locator.wait_for(state="visible", timeout=timeout_ms)
        return locator

    def error_outputs(self) -> list[str]:
        """The text of every error output (tracebacks, stderr) on the page."""
        return [str(t) for t in self.page.locator(ERROR_OUTPUT).all_inner_texts()]

    def output_text(self) -> str:
        """The visible text of every cell output (not the code), joined by newlines."""
        return "\n".join(self.page.locator(".jp-OutputArea-output").all_inner_texts())

    def assert_widgets_rendered(self) -> None:
        """No placeholder or text repr left where a widget should be, and no tracebacks."""
        errors = self.error_outputs()
        assert not errors, "a cell printed an error:\n" + "\n---\n".join(errors)
        outputs = self.output_text()
        assert LOADING_TEXT not in outputs, "a widget is still loading"
        # Without a working widget manager the kernel's text repr would show instead.
        assert "Widget(" not in outputs and "model_id" not in outputs, outputs[:500]

    # --- saving ----------------------------------------------------------------------------

    def save(self) -> dict[str, Any]:
        """File → Save, then wait until the file on disk holds the widget state; return it."""
        assert self.frontend != "voila", "Voilà cannot save a notebook"
        assert self.path is not None, "write() first"
        before = self.path.stat().st_mtime_ns
        self.menu("File", "docmanager:save")
        deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
        while True:
            if self.path.stat().st_mtime_ns != before:
                try:
                    saved = self.saved_notebook()
                except json.JSONDecodeError:  # caught half-written
                    saved = {}
                if WIDGET_STATE_MIME in saved.get("metadata", {}).get("widgets", {}):
                    return saved
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.path.name} was not saved with widget state within "
                    f"{UI_TIMEOUT_MS // 1000}s (is the widget manager's saveState on?)"
                )
            self.page.wait_for_timeout(100)

    def screenshot(self, path: Path, *, selector: str | None = None) -> Path:
        """Save the page (or one element) as a PNG."""
        path.parent.mkdir(parents=True, exist_ok=True)
        target = self.page.locator(selector).first if selector else self.page
        target.screenshot(path=str(path))
        return path
