"""Fixtures for the real-browser tests: one emulator, Jupyter servers and one Chromium per session.

* ``browser_emulator``: the emulator every kernel talks to (``ACEDATACLOUD_API_BASE_URL``).
* ``jupyter``: the servers, started on first use (all the front ends the session's tests need
  are launched together, then each is awaited when a test first asks for it).
* ``page``: a fresh browser context and page per test; dialogs are recorded and dismissed.
* ``nb``: a :class:`NotebookPage` for the test's ``frontend`` parameter.
* On failure: ``test-artifacts/failures/<test>.png`` and ``.log`` (console, server log).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the browser tests are skipped (or fail, in CI) without Playwright
    expect = None  # type: ignore[assignment]

from .harness import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    FRONTENDS,
    Frontend,
    JupyterServer,
    isolated_environment,
    safe_name,
)
from .notebook_page import NotebookPage

BROWSER_TOKEN = "browser-test-token"
EMULATOR_LATENCY = 0.2  # seconds per task: quick, yet slow enough to see a progress state

PAGE_KEY = pytest.StashKey[Any]()
SERVER_KEY = pytest.StashKey[JupyterServer]()
CONSOLE_KEY = pytest.StashKey[list[str]]()
DIALOGS_KEY = pytest.StashKey[list[str]]()


def _why_no_browser() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing (install Debian's chromium: scripts/ensure-chromium.sh)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is missing (pip install -e '.[browser]')"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the browser tests when there is no browser, except in CI where that is a failure."""
    reason = _why_no_browser()
    if reason is None or os.environ.get("CI"):
        return  # in CI the `browser` fixture fails loudly instead
    skip = pytest.mark.skip(reason=f"browser tests need a browser: {reason}")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


def _frontends_wanted(session: pytest.Session) -> list[Frontend]:
    wanted: list[Frontend] = []
    for item in session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        kind = params.get("frontend")
        if kind in FRONTENDS and kind not in wanted:
            wanted.append(kind)
    return wanted


# --------------------------------------------------------------------------------------------
# Session-wide pieces


@pytest.fixture(scope="session")
def browser_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway folder holding every server's home, notebooks and logs."""
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="session")
def notebook_dir(browser_home: Path) -> Path:
    """The folder the servers serve; each test writes its own uniquely named notebooks."""
    path = browser_home / "notebooks"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def browser_emulator() -> Iterator[Any]:
    """The emulator the kernels use (any token accepted; tests may change its latency)."""
    from nanobanana_widgets.emulator import Emulator

    with Emulator(latency=EMULATOR_LATENCY) as emu:
        yield emu


@pytest.fixture
def emulator(browser_emulator: Any) -> Iterator[Any]:
    """The session's emulator, without faults and at its usual latency before and after
    the test (which may slow it down, hold its tasks or inject faults)."""
    browser_emulator.clear_faults()
    browser_emulator.set_latency(EMULATOR_LATENCY)
    yield browser_emulator
    browser_emulator.clear_faults()
    browser_emulator.set_latency(EMULATOR_LATENCY)
    browser_emulator.finish_all()


class ServerPool:
    """Jupyter servers by front end, started together on first use and stopped at the end."""

    def __init__(self, home: Path, root: Path, env: dict[str, str], wanted: list[Frontend]):
        self.home = home
        self.root = root
        self.env = env
        self.wanted = wanted
        self.servers: dict[Frontend, JupyterServer] = {}
        self.ready: set[Frontend] = set()

    def _launch(self, kind: Frontend) -> JupyterServer:
        server = JupyterServer(
            kind=kind,
            root_dir=self.root,
            home=self.home / f"home-{kind}",
            log_path=self.home / "logs" / f"{kind}.log",
            env_extra=dict(self.env),
        )
        server.start()
        self.servers[kind] = server
        return server

    def get(self, kind: Frontend) -> JupyterServer:
        """The running server for ``kind``, started (with its siblings) if need be."""
        if kind not in self.servers:
            for other in dict.fromkeys([kind, *self.wanted]):
                if other not in self.servers:
                    self._launch(other)
        server = self.servers[kind]
        if kind not in self.ready:
            try:
                server.wait_ready()
            except (RuntimeError, TimeoutError):
                # A port taken between our probe and the server's bind: one more try.
                server.stop()
                server = self._launch(kind)
                server.wait_ready()
            self.ready.add(kind)
        return server

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


@pytest.fixture(scope="session")
def jupyter(
    request: pytest.FixtureRequest, browser_home: Path, notebook_dir: Path, browser_emulator: Any
) -> Iterator[ServerPool]:
    """The Jupyter front ends; kernels get the emulator's URL and a test token."""
    env = {
        "ACEDATACLOUD_API_BASE_URL": browser_emulator.base_url,
        "ACEDATACLOUD_API_TOKEN": BROWSER_TOKEN,
    }
    pool = ServerPool(browser_home, notebook_dir, env, _frontends_wanted(request.session))
    yield pool
    pool.stop()


@pytest.fixture(scope="session")
def browser(browser_home: Path) -> Iterator[Any]:
    """One headless Debian Chromium for the whole session, its home in the temporary folder."""
    reason = _why_no_browser()
    if reason is not None:
        pytest.fail(f"browser tests cannot run: {reason}", pytrace=False)
    from playwright.sync_api import sync_playwright

    # The kernel answers a click over a websocket: give assertions on its effect time.
    expect.set_options(timeout=30_000)

    with sync_playwright() as pw:
        env: dict[str, str | float | bool] = {
            **isolated_environment(browser_home / "chromium")
        }
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, env=env
        )
        yield chromium
        chromium.close()


# --------------------------------------------------------------------------------------------
# Per test


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: Any) -> Iterator[Any]:
    """A new browser context and page; console messages kept, dialogs recorded and dismissed."""
    context = browser.new_context(viewport={"width": 1280, "height": 1200}, device_scale_factor=1)
    page = context.new_page()
    console: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda msg: console.append(f"[{msg.type}] {msg.text}"))
    page.on("pageerror", lambda exc: console.append(f"[pageerror] {exc}"))

    def on_dialog(dialog: Any) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        console.append(f"[dialog] {dialog.type}: {dialog.message}")
        with contextlib.suppress(Exception):  # the page may already be gone
            dialog.dismiss()

    page.on("dialog", on_dialog)
    request.node.stash[PAGE_KEY] = page
    request.node.stash[DIALOGS_KEY] = dialogs
    request.node.stash[CONSOLE_KEY] = console
    yield page
    context.close()


@pytest.fixture
def server(
    request: pytest.FixtureRequest, jupyter: ServerPool, frontend: Frontend
) -> Iterator[JupyterServer]:
    """The server for this test's front end; its kernels are shut down after the test."""
    srv = jupyter.get(frontend)
    request.node.stash[SERVER_KEY] = srv
    yield srv
    srv.shutdown_kernels()


@pytest.fixture
def nb(
    request: pytest.FixtureRequest, page: Any, server: JupyterServer, notebook_dir: Path
) -> Iterator[NotebookPage]:
    """A notebook page on this test's front end; notebooks are named after the test.

    Afterwards the page is closed before the server's kernels are shut down, so the page
    cannot start a new kernel for a session it sees vanish.
    """
    yield NotebookPage(
        page, server, notebook_dir, safe_name(request.node.name),
        dialogs=request.node.stash[DIALOGS_KEY],
    )
    page.context.close()


@pytest.fixture
def screenshot() -> Callable[..., Path]:
    """``screenshot(target, name)``: save a page or element to test-artifacts/screenshots."""

    def take(target: Any, name: str) -> Path:
        path = ARTIFACTS / "screenshots" / f"{safe_name(name)}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        target.screenshot(path=str(path))
        return path

    return take


# --------------------------------------------------------------------------------------------
# Failure artefacts


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not report.failed or report.when not in ("setup", "call"):
        return
    name = safe_name(item.nodeid.split("::", 1)[-1])
    failures = ARTIFACTS / "failures"
    failures.mkdir(parents=True, exist_ok=True)
    page = item.stash.get(PAGE_KEY, None)
    if page is not None:
        png = failures / f"{name}.png"
        try:
            page.screenshot(path=str(png), full_page=True, timeout=10_000)
            report.sections.append(("browser screenshot", str(png)))
        except Exception as exc:  # a crashed page must not hide the real failure
            report.sections.append(("browser screenshot", f"could not be taken: {exc}"))
    parts: list[str] = []
    console = item.stash.get(CONSOLE_KEY, None)
    if console:
        parts.append("--- browser console ---\n" + "\n".join(console[-200:]))
    srv = item.stash.get(SERVER_KEY, None)
    if srv is not None:
        tail = srv.log_tail()
        parts.append(tail)
        report.sections.append((f"{srv.kind} server log (tail)", tail[-3000:]))
        with contextlib.suppress(OSError):
            shutil.copy(srv.log_path, failures / f"{name}.{srv.kind}.log")
    if parts:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        (failures / f"{name}.log").write_text(
            f"{item.nodeid}\n{stamp}\n\n" + "\n\n".join(parts)
        )
