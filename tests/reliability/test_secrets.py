"""Secrets: after the panel, the helpers, failures and a whole notebook have run with a
distinctive token, the token appears nowhere: saved notebooks, the history database (file,
WAL and images), saved and exported image files and their metadata, log records at DEBUG,
reprs, exception messages, widget state, or headers sent to image hosts.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import ipywidgets
import pytest

from nanobanana_widgets import functions, session
from nanobanana_widgets.client import TOKEN_ENV, Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.images import download, read_metadata
from nanobanana_widgets.service.errors import NanoBananaError
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets.panel import PromptPanel
from support import png

SECRET = "sk-live-SECRET-7e1f0c9a2b4d"
FORMS = (SECRET.encode(), base64.b64encode(SECRET.encode()),
         SECRET.encode("utf-16-le"), SECRET[4:].encode())  # plain, base64, UTF-16, a part


def leaks(data: bytes | str) -> bool:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return any(form in raw for form in FORMS)


def leaking_files(*folders: Path) -> list[str]:
    found = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and leaks(path.read_bytes()):
                found.append(str(path))
    return found


class CaptureAll(logging.Handler):
    """Every log record of every logger, formatted with its traceback, at DEBUG."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def all_logs() -> Iterator[CaptureAll]:
    handler = CaptureAll()
    root = logging.getLogger()
    old_level = root.level
    touched = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
               if name.startswith(("nanobanana_widgets", "urllib3", "requests", "traitlets"))]
    old_levels = [lg.level for lg in touched]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for lg in touched:
        lg.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        for lg, level in zip(touched, old_levels, strict=True):
            lg.setLevel(level)


# --- a hostile server that echoes the token back in every field it can ------------------


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen_headers: ClassVar[list[dict[str, str]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        EchoHandler.seen_headers.append(dict(self.headers.items()))
        self._send(200, png(), "image/png")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        auth = self.headers.get("Authorization", "")
        token = auth.partition(" ")[2]
        mode = self.path.split("/")[1]
        if mode == "message":
            body = {"success": False, "trace_id": "t-echo",
                    "error": {"code": "bad_request", "message": f"Token {auth} is not valid"}}
            self._send(400, json.dumps(body).encode())
        elif mode == "everywhere":
            body = {"success": False, "trace_id": token, "task_id": token,
                    "error": {"code": token, "message": token}}
            self._send(401, json.dumps(body).encode())
        elif mode == "html":
            self._send(502, f"<html><body>bad gateway for {auth}</body></html>".encode(),
                       "text/html")
        elif mode == "broken":
            self._send(200, f'{{"success": true, "trace_id": "{token}", "task_id": "{token}", '
                            f'"note": "{token}", "da'.encode())
        elif mode == "task":
            if self.path.endswith("/images"):
                self._send(200, json.dumps({"success": True, "task_id": "task-echo",
                                            "trace_id": "trace-echo"}).encode())
            else:
                record = {"id": "task-echo", "trace_id": "trace-echo",
                          "created_at": 1.0, "finished_at": 2.0,
                          "request": {"action": "generate", "prompt": "x"},
                          "response": {"success": False, "task_id": "task-echo",
                                       "error": {"code": "forbidden",
                                                 "message": f"refused for {token}"}}}
                if request.get("action") == "retrieve_batch":
                    self._send(200, json.dumps({"items": [record], "count": 1}).encode())
                else:
                    self._send(200, json.dumps(record).encode())
        else:
            self._send(404, b"{}")


@pytest.fixture
def echo_server() -> Iterator[str]:
    EchoHandler.seen_headers = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_token_never_leaks_from_panel_history_files_logs_or_errors(
    tmp_path: Path, all_logs: CaptureAll, echo_server: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    shown: list[str] = []  # every repr, str and message a person could see
    errors: list[BaseException] = []
    hist_dir, saved_dir, export_dir = tmp_path / "hist", tmp_path / "saved", tmp_path / "export"
    with Emulator(latency=0.02, tokens={SECRET}) as emu:
        client = Client(SECRET, base_url=emu.base_url, poll_interval=0.02)
        client.backoff_base = 0.005
        history = History(hist_dir, client=client)
        panel = PromptPanel(client=client, history=history, save_dir=saved_dir)
        panel.prompt = "a lighthouse at dusk"
        panel.generate_button.click()
        first = panel.runs[-1].wait(30)
        assert first is not None
        panel.inputs = [png()]
        panel.action = "edit"
        panel.prompt = "make it night"
        panel.generate_button.click()
        assert panel.runs[-1].wait(30) is not None
        emu.inject("server_error")
        panel.action = "generate"
        panel.generate_button.click()
        panel.runs[-1].wait(30)
        panel.wait_idle(30)

        result = helpers_result = client.generate("a red bicycle", count=2)
        paths = result.save(saved_dir)
        paths.append(first.image.save(saved_dir))

        for kind in ("unauthorized", "server_error", "forbidden", "html_error", "reset",
                     "malformed_json", "empty_body", "task_forbidden", "task_error"):
            emu.inject(kind)
            try:
                client.generate(f"fault {kind}")
            except NanoBananaError as exc:
                errors.append(exc)
        wrong = Client("not-the-secret", base_url=emu.base_url)
        with pytest.raises(NanoBananaError) as refused:
            wrong.generate("a cat")
        errors.append(refused.value)
        wrong.close()

        # The default client reading the token from the environment.
        monkeypatch.setenv(TOKEN_ENV, SECRET)
        monkeypatch.setenv("ACEDATACLOUD_API_BASE_URL", emu.base_url)
        session.set_default_client(None)
        try:
            env_result = functions.generate("from the environment")
            shown += [repr(session.default_client()), repr(env_result)]
        finally:
            session.default_client().close()
            session.set_default_client(None)

        history.export(export_dir)
        assert history.flush(timeout=30)

        # The database, its WAL and every stored image, while the history is still open.
        assert leaking_files(hist_dir) == []
        shown += [repr(client), repr(history), repr(panel), repr(result), repr(first),
                  repr(first.image), repr(first.request), repr(helpers_result.images),
                  str(history.html()), repr(list(history)), repr(emu)]
        shown += [json.dumps(rec.to_dict()) for rec in history]
        shown += panel.messages
        shown.append(json.dumps(ipywidgets.Widget.get_manager_state(drop_defaults=False),
                                default=str))
        panel.close()
        history.close()
        client.close()

    # A hostile server echoing the token back in its answers: scrubbed from every message.
    for mode in ("message", "everywhere", "html", "broken", "task"):
        echo = Client(SECRET, base_url=f"{echo_server}/{mode}", poll_interval=0.02,
                      max_retries=0)
        try:
            echo.generate(f"echo {mode}", timeout=5)
        except NanoBananaError as exc:
            errors.append(exc)
        else:
            pytest.fail(f"the {mode!r} server's answer was taken as a success")
        finally:
            echo.close()
    # Downloading a result image never sends the token to the image host.
    assert download(f"{echo_server}/image.png").startswith(b"\x89PNG")
    assert EchoHandler.seen_headers and not any(
        leaks(json.dumps(h)) for h in EchoHandler.seen_headers)

    # Tokens that cannot be sent are refused without being repeated.
    for bad in (SECRET + "\n", " " + SECRET + " x", SECRET + "\x00"):
        try:
            Client(bad, base_url=echo_server).task("t")
        except NanoBananaError as exc:
            errors.append(exc)

    assert len(errors) >= 16
    for exc in errors:
        text = [str(exc), repr(exc), *map(str, exc.args)]
        cause: BaseException | None = exc.__cause__ or exc.__context__
        while cause is not None:  # chained causes are shown in tracebacks too
            text += [str(cause), repr(cause)]
            cause = cause.__cause__ or cause.__context__
        shown += text
        for name in ("message", "code", "trace_id", "task_id"):
            shown.append(str(getattr(exc, name, "")))

    leaked = [s[:200] for s in shown if leaks(s)]
    assert leaked == []
    assert [line[:300] for line in all_logs.lines if leaks(line)] == []
    assert any("nanobanana_widgets" in line for line in all_logs.lines)  # logs were captured
    for path in [*paths, *export_dir.rglob("*.png"), *export_dir.rglob("*.jpg")]:
        assert not leaks(json.dumps(read_metadata(path)))
    assert leaking_files(hist_dir, saved_dir, export_dir) == []
    assert list(export_dir.rglob("*.png")) and len(paths) == 3


NOTEBOOK_CELLS = [
    "import nanobanana_widgets as nbw\n"
    "from nanobanana_widgets import PromptPanel, History\n"
    "client = nbw.default_client()\n"
    "history = History('hist', client=client)\n"
    "client",
    "panel = PromptPanel(client=client, history=history, save_dir='saved')\n"
    "panel.prompt = 'a lighthouse at dusk'\n"
    "panel",
    "panel.generate_button.click()\n"
    "run = panel.runs[-1]\n"
    "result = run.wait(60)\n"
    "panel.wait_idle(60)\n"
    "result",
    "result.save('saved')\n"
    "print(result.image)\n"
    "history.flush(60)\n"
    "history",
    "try:\n"
    "    nbw.Client('wrong-token', base_url=client.base_url).generate('x')\n"
    "except nbw.NanoBananaError as exc:\n"
    "    print(repr(exc))\n"
    "import logging; logging.basicConfig(level=logging.DEBUG, force=True)\n"
    "nbw.generate('with debug logging on')",
    "import ipywidgets, json\n"
    "json.dump(ipywidgets.Widget.get_manager_state(drop_defaults=True), open('state.json', 'w'))",
]


def test_token_never_reaches_a_saved_notebook(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from nbformat.v4 import new_code_cell, new_notebook

    with Emulator(latency=0.05, tokens={SECRET}) as emu:
        nb = new_notebook(cells=[new_code_cell(src) for src in NOTEBOOK_CELLS])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        old = {k: os.environ.get(k) for k in (TOKEN_ENV, "ACEDATACLOUD_API_BASE_URL")}
        os.environ[TOKEN_ENV] = SECRET  # the kernel inherits it, as from a user's shell
        os.environ["ACEDATACLOUD_API_BASE_URL"] = emu.base_url
        try:
            nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                    resources={"metadata": {"path": str(tmp_path)}}).execute()
        finally:
            for key, value in old.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        assert emu.submissions >= 2  # the panel and the helper really ran, with the token
    state = json.loads((tmp_path / "state.json").read_text())
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": state}
    saved = tmp_path / "saved.ipynb"
    nbformat.write(nb, str(saved))
    text = saved.read_text(encoding="utf-8")
    assert "Client(base_url=" in text and "token=set" in text  # the outputs are there
    assert "AuthenticationError" in text
    assert not leaks(saved.read_bytes())
    assert leaking_files(tmp_path) == []
