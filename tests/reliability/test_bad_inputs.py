"""A catalogue of hostile inputs: prompts, parameters, files, URLs, configuration and
server responses. Each must give its specific error class (not merely a parent) and a
message that names the problem; inputs refused locally must send nothing.
"""

from __future__ import annotations

import re
import socket
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.images import download, to_image_url
from nanobanana_widgets.service import errors as E
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets.panel import PromptPanel
from support import png

TOKEN = "bad-inputs-token-4c2a"
PHOTO = png("purple", (64, 48))


@dataclass
class Env:
    emu: Emulator
    client: Client
    tmp: Path

    def fresh_client(self, **kwargs: Any) -> Client:
        c = Client(TOKEN, base_url=self.emu.base_url, poll_interval=0.02, **kwargs)
        c.backoff_base = 0.001
        return c


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(latency=0.02, tokens={TOKEN}) as e:
        yield e


@pytest.fixture
def env(emu: Emulator, tmp_path: Path) -> Iterator[Env]:
    emu.clear_faults()
    emu.set_latency(0.02)
    client = Client(TOKEN, base_url=emu.base_url, poll_interval=0.02, max_retries=2)
    client.backoff_base = 0.001
    yield Env(emu, client, tmp_path)
    client.close()


def write(env: Env, name: str, data: bytes | str) -> str:
    path = env.tmp / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


def bomb_png(side: int = 40_000) -> bytes:
    """69 bytes claiming to be a 1.6-gigapixel image."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fault(kind: str, **inject: Any) -> Callable[[Env], Any]:
    def run(env: Env) -> Any:
        env.emu.inject(kind, **inject)
        return env.client.generate(f"a prompt that meets {kind}", timeout=10)
    return run


def panel_run_error(env: Env, **controls: Any) -> Any:
    """A panel run's error (the panel never raises from a click; it shows the error)."""
    panel = PromptPanel(client=env.client, save_dir=env.tmp / "saved")
    try:
        for name, value in controls.items():
            setattr(panel, name, value)
        panel.generate_button.click()  # never raises: the outcome shows in the panel
        if panel.runs:
            run = panel.runs[-1]
            run.wait(10)
        else:  # refused before sending: run() hands back the failed, unsent run
            run = panel.run()
        assert run.error is not None
        assert str(run.error) in " ".join(panel.messages)  # shown to the person, too
        raise run.error
    finally:
        panel.close()


def wait_past_deadline(env: Env) -> Any:
    env.emu.set_latency(float("inf"))
    return env.client.submit("never finishes").wait(timeout=0.1)


def cancelled_wait(env: Env) -> Any:
    env.emu.set_latency(float("inf"))
    task = env.client.submit("cancelled while waiting")
    task.cancel()
    return task.wait(timeout=5)


def rate_limited_for_good(env: Env) -> Any:
    env.emu.inject("rate_limit", times=3, retry_after=0.01)
    return env.client.generate("rate limited three times")


def slow_answer(env: Env) -> Any:
    env.emu.inject("slow_headers", delay=1.0)
    return env.fresh_client(timeout=0.2).generate("slow answer")


def no_token(env: Env) -> Any:
    # the real service's address (a loopback one is taken for a local emulator)
    return Client().generate("no token set")


def html_download(env: Env) -> Any:
    return download(env.emu.base_url + "/no-such-page")


@dataclass(frozen=True)
class Case:
    name: str
    action: Callable[[Env], Any]
    error: type[E.NanoBananaError]
    pattern: str
    sends: bool | None = None
    """False: nothing may reach the service; None: not checked."""


def gen(**kwargs: Any) -> Callable[[Env], Any]:
    prompt = kwargs.pop("prompt", "a harmless prompt")
    return lambda env: env.client.generate(prompt, **kwargs)


CASES = [
    # --- prompts ---------------------------------------------------------------------
    Case("empty prompt", gen(prompt=""), E.InvalidParameterError, r"Invalid prompt.*non-empty",
         sends=False),
    Case("blank prompt", gen(prompt=" \n\t "), E.InvalidParameterError, r"Invalid prompt",
         sends=False),
    Case("prompt None", gen(prompt=None), E.InvalidParameterError, r"Invalid prompt: None",
         sends=False),
    Case("prompt not text", gen(prompt=42), E.InvalidParameterError, r"Invalid prompt: 42",
         sends=False),
    # --- parameters ------------------------------------------------------------------
    Case("unknown model", gen(model="gpt-image-1"), E.InvalidParameterError,
         r"Invalid model: 'gpt-image-1'.*Allowed values: nano-banana", sends=False),
    Case("count zero", gen(count=0), E.InvalidParameterError,
         r"Invalid count: 0.*Allowed values: 1, 2, 3, 4", sends=False),
    Case("count five", gen(count=5), E.InvalidParameterError, r"Invalid count: 5",
         sends=False),
    Case("count boolean", gen(count=True), E.InvalidParameterError, r"Invalid count: True",
         sends=False),
    Case("count string", gen(count="2"), E.InvalidParameterError, r"Invalid count: '2'",
         sends=False),
    Case("aspect ratio 5:4", gen(aspect_ratio="5:4"), E.InvalidParameterError,
         r"Invalid aspect_ratio: '5:4'.*16:9", sends=False),
    Case("4K on nano-banana", gen(resolution="4K"), E.InvalidParameterError,
         r"Invalid resolution: '4K'.*'nano-banana' supports \(1K\)", sends=False),
    Case("8K on pro", gen(model="nano-banana-pro", resolution="8K"), E.InvalidParameterError,
         r"Invalid resolution: '8K'.*1K, 2K, 4K", sends=False),
    Case("unknown action", lambda env: env.client.submit("x", action="upscale"),
         E.InvalidParameterError, r"Invalid action: 'upscale'.*generate, edit", sends=False),
    Case("edit without images", lambda env: env.client.submit("x", action="edit"),
         E.InvalidParameterError, r"Invalid images: \[\]\. Expected at least one input image",
         sends=False),
    Case("17 input images", lambda env: env.client.edit("x", [PHOTO] * 17),
         E.InvalidParameterError, r"17 images.*at most 16", sends=False),
    Case("callback not http", gen(callback_url="ftp://example.com/hook"),
         E.InvalidParameterError, r"Invalid callback_url: 'ftp://example.com/hook'",
         sends=False),
    Case("sync with callback", gen(callback_url="http://127.0.0.1:9/h", sync=True),
         E.InvalidParameterError, r"Invalid sync.*callback", sends=False),
    # --- files -----------------------------------------------------------------------
    Case("missing file", lambda env: env.client.edit("x", str(env.tmp / "missing.png")),
         E.ImageInputError, r"missing\.png.*no such file", sends=False),
    Case("a folder", lambda env: env.client.edit("x", str(env.tmp)),
         E.ImageInputError, r"is a folder, not a file", sends=False),
    Case("text named .png", lambda env: env.client.edit("x", write(env, "notes.png", "my notes")),
         E.ImageInputError, r"notes\.png.*not an image: it contains text", sends=False),
    Case("empty file", lambda env: env.client.edit("x", write(env, "empty.png", b"")),
         E.ImageInputError, r"empty\.png.*empty \(0 bytes\)", sends=False),
    Case("truncated PNG", lambda env: env.client.edit("x", write(env, "cut.png", PHOTO[:60])),
         E.ImageInputError, r"cut\.png.*(truncated|damaged|corrupt)", sends=False),
    Case("HTML saved as .jpg",
         lambda env: env.client.edit("x", write(env, "page.jpg", "<html><body>404</body></html>")),
         E.ImageInputError, r"page\.jpg.*not an image", sends=False),
    Case("decompression bomb", lambda env: env.client.edit("x", bomb_png()),
         E.ImageInputError, r"too many pixels", sends=False),
    Case("NUL in a path", lambda env: to_image_url("cat\x00.png"),
         E.ImageInputError, r"not a file path.*NUL", sends=False),
    Case("not an image source", lambda env: env.client.edit("x", 12345),
         E.ImageInputError, r"is of type int, not an image source", sends=False),
    # --- URLs ------------------------------------------------------------------------
    Case("file: URL", lambda env: env.client.edit("x", "file:///etc/passwd"),
         E.ImageInputError, r"file: scheme, which is not supported", sends=False),
    Case("javascript: URL", lambda env: env.client.edit("x", "javascript:alert(1)"),
         E.ImageInputError, r"javascript: scheme", sends=False),
    Case("damaged data URI", lambda env: env.client.edit("x", "data:image/png;base64,!!!!"),
         E.ImageInputError, r"data URI whose base64 content is damaged", sends=False),
    Case("text data URI", lambda env: env.client.edit("x", "data:text/plain,hello"),
         E.ImageInputError, r"data URI of type 'text/plain', not an image", sends=False),
    Case("unclosed IPv6 URL", lambda env: env.client.edit("x", "http://[::1/cat.png"),
         E.ImageInputError, r"not a valid URL", sends=False),
    Case("URL without host", lambda env: env.client.edit("x", "https:///cat.png"),
         E.ImageInputError, r"URL without a host name", sends=False),
    Case("download ftp:", lambda env: download("ftp://example.com/x.png"),
         E.DownloadError, r"ftp: scheme is not allowed"),
    Case("download a non-image", html_download, E.DownloadError, r"no-such-page"),
    # --- configuration ---------------------------------------------------------------
    Case("base URL not http", lambda env: Client(TOKEN, base_url="ftp://api.example"),
         E.InvalidParameterError, r"Invalid base_url: 'ftp://api.example'"),
    Case("timeout zero", lambda env: Client(TOKEN, timeout=0), E.InvalidParameterError,
         r"Invalid timeout: 0.*positive"),
    Case("token with a space",
         lambda env: Client("tok en", base_url=env.emu.base_url).generate("x"),
         E.InvalidParameterError, r"Invalid token: '<hidden>'.*without spaces", sends=False),
    Case("no token", no_token, E.MissingTokenError, r"ACEDATACLOUD_API_TOKEN.*use_emulator",
         sends=False),
    Case("nothing listening",
         lambda env: Client(TOKEN, base_url=f"http://127.0.0.1:{closed_port()}",
                            max_retries=1).generate("x"),
         E.APIConnectionError, r"Could not connect to http://127\.0\.0\.1:\d+ after 2 attempt"
         r".*nothing was sent"),
    Case("wrong API path", lambda env: Client(TOKEN, base_url=env.emu.base_url + "/v9")
         .generate("x"), E.NotFoundError, r"Not found.*No API at POST /v9/nano-banana/images"),
    # --- the service's answers -------------------------------------------------------
    Case("401 invalid token", lambda env: Client("some-other-token", base_url=env.emu.base_url)
         .generate("x"), E.AuthenticationError, r"token was refused.*HTTP 401"),
    Case("403 used up", fault("used_up"), E.NoBalanceError, r"no balance left.*HTTP 403"),
    Case("403 refused content", fault("forbidden"), E.ContentRefusedError,
         r"refused this content.*nothing was billed.*trace id"),
    Case("500 on submit", fault("server_error"), E.ServerError,
         r"not sent again because it may have reached the service"),
    Case("502 HTML page", fault("html_error"), E.ServerError, r"HTTP 502 with an HTML page"),
    Case("502 empty body", fault("empty_body"), E.ServerError, r"HTTP 502 with an empty body"),
    Case("200 broken JSON", fault("malformed_json"), E.PossiblyBilledError,
         r"could not be read, so it was not sent again"),
    Case("reset after sending", fault("reset"), E.PossiblyBilledError,
         r"connection broke after the request was sent"),
    Case("no answer in time", slow_answer, E.PossiblyBilledError, r"read timeout"),
    Case("429 until giving up", rate_limited_for_good, E.RateLimitError,
         r"Rate limited.*Gave up after 3 attempts"),
    Case("task refused later", fault("task_forbidden"), E.ContentRefusedError,
         r"refused this content.*task [0-9a-f-]{36}"),
    Case("task failed later", fault("task_error"), E.ServerError,
         r"internal error.*task [0-9a-f-]{36}"),
    Case("unknown task id", lambda env: env.client.task("no-such-task"), E.NotFoundError,
         r"No task with id 'no-such-task'"),
    Case("deadline passed", wait_past_deadline, E.WaitTimeoutError,
         r"still running after 0\.1 s.*may still finish"),
    Case("cancelled wait", cancelled_wait, E.CancelledError,
         r"cancelled.*may still run and be billed"),
    # --- history and panel -----------------------------------------------------------
    Case("history filter field", lambda env: History(env.tmp / "h").filter(colour="red"),
         E.InvalidParameterError, r"Invalid filter field 'colour'.*Allowed values"),
    Case("history sort field", lambda env: History(env.tmp / "h").sort("colour"),
         E.InvalidParameterError, r"Invalid sort field: 'colour'"),
    Case("panel count 9", lambda env: setattr(PromptPanel(client=env.client), "count", 9),
         E.InvalidParameterError, r"Invalid count: 9", sends=False),
    Case("panel 4K on nano-banana",
         lambda env: setattr(PromptPanel(client=env.client), "resolution", "4K"),
         E.InvalidParameterError, r"Invalid resolution: '4K'", sends=False),
    Case("panel empty prompt", lambda env: panel_run_error(env, prompt="   "),
         E.NanoBananaError, r"Type a prompt first", sends=False),
    Case("panel edit without inputs", lambda env: panel_run_error(env, prompt="x",
                                                                 action="edit"),
         E.NanoBananaError, r"Edit needs at least one input image", sends=False),
    Case("panel refused content", lambda env: (env.emu.inject("forbidden"),
                                              panel_run_error(env, prompt="x")),
         E.ContentRefusedError, r"refused this content"),
]


def test_catalogue_is_large_and_varied() -> None:
    assert len(CASES) >= 25
    assert len({c.name for c in CASES}) == len(CASES)
    assert len({c.error for c in CASES}) >= 12


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_gives_its_specific_clear_error(case: Case, env: Env) -> None:
    before = env.emu.submissions
    with pytest.raises(E.NanoBananaError) as info:
        case.action(env)
    err = info.value
    if case.error is E.NanoBananaError:  # the panel's own pre-send check
        assert isinstance(err, ValueError), type(err)
    else:
        assert type(err) is case.error, f"{type(err).__name__}: {err}"
    message = str(err)
    assert re.search(case.pattern, message, re.IGNORECASE | re.DOTALL), message
    assert TOKEN not in message and TOKEN not in repr(err)
    if case.sends is False:
        assert env.emu.submissions == before, "refused locally, yet something was sent"
