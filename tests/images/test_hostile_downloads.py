"""Downloads and saves against a hostile server (``tests/hostile.py``) and hostile URLs.

Every test here failed before issue 11: a download that never ended (slow headers, a
chunked body without end), ``ValueError``/``LocationParseError``/``InvalidURL`` escaping
from ``download()`` and ``GeneratedImage.bytes()/.pil()/.save()``, a file written outside
the folder asked for, a body quoted into the error, credentials shown in a repr.
"""

from __future__ import annotations

import io
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from PIL import Image

from hostile import HostileServer, answer, endless_chunks, redirect, trickle
from nanobanana_widgets import images
from nanobanana_widgets.images.http import Wire, WireError
from nanobanana_widgets.service.errors import DownloadError, SaveError
from nanobanana_widgets.service.types import GeneratedImage, ImageRequest, Result
from support import png

BOUND = 5.0
"""Generous slack over a deadline: a download must end by then (the server never would)."""


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer(lifetime=90) as srv:
        srv.on("GET", "/ok.png", answer(200, png(), content_type="image/png"))
        yield srv


def ends_with_download_error(call: Callable[[], Any]) -> tuple[DownloadError, float]:
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as info:
        call()
    return info.value, time.monotonic() - t0


# --- class 3: a download has a real total deadline ---------------------------------------


@pytest.mark.parametrize("behaviour", ["slow headers", "slow body", "endless chunks"])
def test_a_download_ends_by_its_deadline(server: HostileServer, behaviour: str) -> None:
    server.on("GET", "/slow.png", {
        "slow headers": trickle(png(), interval=0.5, content_type="image/png"),
        "slow body": trickle(png(), interval=0.5, slow_headers=False,
                             content_type="image/png"),
        "endless chunks": endless_chunks(interval=0.1, content_type="image/png"),
    }[behaviour])
    error, took = ends_with_download_error(
        lambda: images.download(server.url("/slow.png"), timeout=1, deadline=2))
    assert "deadline of 2 s" in str(error)
    assert took < 2 + BOUND


@pytest.fixture
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileServer]:
    """The hostile server over HTTPS, with a certificate from a test CA that ``requests``
    trusts (``REQUESTS_CA_BUNDLE``): the exchange runs on the package's TLS connections."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    with HostileServer(lifetime=90, tls=context) as srv:
        srv.on("GET", "/ok.png", answer(200, png(), content_type="image/png"))
        yield srv


def test_a_download_over_tls_works(tls_server: HostileServer) -> None:
    assert tls_server.url("/ok.png").startswith("https://")
    assert images.download(tls_server.url("/ok.png"), timeout=5) == png()


@pytest.mark.parametrize("behaviour", ["slow headers", "slow body"])
def test_a_download_over_tls_ends_by_its_deadline(tls_server: HostileServer,
                                                  behaviour: str) -> None:
    tls_server.on("GET", "/slow.png", trickle(png(), interval=0.5, content_type="image/png",
                                              slow_headers=behaviour == "slow headers"))
    error, took = ends_with_download_error(
        lambda: images.download(tls_server.url("/slow.png"), timeout=1, deadline=2))
    assert "deadline of 2 s" in str(error)
    assert took < 2 + BOUND


def test_the_default_deadline_is_five_times_the_timeout(server: HostileServer) -> None:
    server.on("GET", "/slow.png", trickle(png(), interval=0.3, content_type="image/png"))
    error, took = ends_with_download_error(
        lambda: images.download(server.url("/slow.png"), timeout=0.4))
    assert "deadline of 2 s" in str(error)
    assert took < 2 + BOUND


def test_a_result_image_download_ends_by_its_deadline(server: HostileServer) -> None:
    server.on("GET", "/slow.png", trickle(png(), interval=0.5, content_type="image/png"))
    image = GeneratedImage(url=server.url("/slow.png"), prompt="p", task_id="t")
    _error, took = ends_with_download_error(lambda: image.bytes(timeout=1, deadline=1.5))
    assert took < 1.5 + BOUND


def test_a_wire_deadline_in_the_past_sends_nothing(server: HostileServer) -> None:
    wire = Wire()
    try:
        with pytest.raises(WireError) as info:
            wire.exchange("GET", server.url("/ok.png"), headers={}, timeout=(1, 1),
                          deadline=time.monotonic() - 1, max_bytes=1000)
    finally:
        wire.close()
    assert info.value.failure == "not_sent" and info.value.deadline
    assert not server.requests


def test_a_wire_reuses_its_connections(server: HostileServer) -> None:
    wire = Wire()
    try:
        for _ in range(3):
            answer_ = wire.exchange("GET", server.url("/ok.png"), headers={}, timeout=(1, 1),
                                    deadline=time.monotonic() + 5, max_bytes=10**6)
            assert answer_.content == png()
    finally:
        wire.close()
    assert len(server.requests) == 3


# --- class 4: malformed URLs never escape as foreign exceptions -------------------------


MALFORMED = [
    "http://127.0.0.1:99999/x.png",
    "http://exa mple.com/x.png",
    "http://☃.example/x.png",
    "http://[::1/x.png",
    "http://" + "a" * 300 + ".example/x.png",
    "http://:80/x.png",
    "http://host:port/x.png",
    "http://ex\x00ample.com/x.png",
    "https://[zz::1]/x.png",
]


@pytest.mark.parametrize("url", MALFORMED)
def test_a_malformed_url_gives_a_download_error_everywhere(url: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError):
        images.download(url, timeout=2)
    image = GeneratedImage(url=url, prompt="p", task_id="t")
    with pytest.raises(DownloadError):
        image.bytes()
    with pytest.raises(DownloadError):
        image.pil()
    with pytest.raises(DownloadError):
        image.save(tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("target", [u for u in MALFORMED if "\x00" not in u] + [
    "//[::1/x", "http://127.0.0.1:0/x.png"])
def test_a_redirect_to_a_malformed_url_gives_a_download_error(server: HostileServer,
                                                               target: str) -> None:
    server.on("GET", "/hop.png", redirect(target))
    error, _ = ends_with_download_error(lambda: images.download(server.url("/hop.png"),
                                                                timeout=2))
    assert "redirect" in str(error)


# --- class 5: server text never becomes a path --------------------------------------------


def result_with_task_id(task_id: str, url: str) -> Result:
    request = ImageRequest(action="generate", prompt="a cat")
    image = GeneratedImage(url=url, prompt="a cat", task_id=task_id, request=request)
    return Result(task_id=task_id, trace_id=None, request=request, images=(image,))


@pytest.mark.parametrize("task_id", [
    "../../../../tmp/x", "..", "/etc/passwd", "a/b\\c", "x\x00y", "CON", "...", "",
    "a" * 500, "☃/../☃", "C:\\Windows\\x",
])
def test_a_task_id_never_makes_a_path_outside_the_folder(server: HostileServer,
                                                          tmp_path: Path, task_id: str) -> None:
    folder = tmp_path / "out"
    result = result_with_task_id(task_id, server.url("/ok.png"))
    [path] = result.save(folder)
    assert path.parent == folder and path.resolve().parent == folder.resolve()
    assert path.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert len(path.name) < 100
    assert images.read_metadata(path)["task_id"] == task_id  # kept, as data, inside


def test_the_panel_save_path_is_the_same_safe_function(server: HostileServer,
                                                       tmp_path: Path) -> None:
    image = GeneratedImage(url=server.url("/ok.png"), prompt="p", task_id="../../evil")
    path = images.save_generated(image, png(), tmp_path)
    assert path == tmp_path / "evil-0.png"


def test_safe_names() -> None:
    assert images.safe_name("../../../../tmp/x") == "tmp_x"
    assert images.safe_name("task-1_a.b") == "task-1_a.b"
    assert images.safe_name("") == "image"
    assert images.safe_name("nul") == "_nul"
    assert images.safe_name("x" * 300, limit=80) == "x" * 80


def test_a_save_that_cannot_write_is_a_save_error(server: HostileServer,
                                                  tmp_path: Path) -> None:
    image = GeneratedImage(url=server.url("/ok.png"), prompt="p", task_id="t")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SaveError):
        image.save(blocker / "x.png")
    with pytest.raises(SaveError):
        result_with_task_id("t", server.url("/ok.png")).save(blocker)
    with pytest.raises(SaveError):
        image.save(tmp_path / "bad\x00name.png")


# --- what an error or a repr shows --------------------------------------------------------


def test_a_body_that_is_not_an_image_is_never_quoted(server: HostileServer) -> None:
    secret = "internal-admin-password-123"
    server.on("GET", "/page.png", answer(200, f"<html>{secret}</html>",
                                         content_type="text/html"))
    error, _ = ends_with_download_error(lambda: images.download(server.url("/page.png")))
    assert secret not in str(error) and "not an image" in str(error)


def test_url_credentials_are_masked_in_reprs_and_errors(server: HostileServer) -> None:
    url = server.url("/missing.png").replace("http://", "http://alice:s3cret@")
    image = GeneratedImage(url=url, prompt="p", task_id="t")
    assert "s3cret" not in repr(image) and "***@" in repr(image)
    assert "s3cret" not in str(image.metadata())
    error, _ = ends_with_download_error(image.bytes)
    assert "s3cret" not in str(error) and "alice" not in str(error)


# --- a pixel limit on decoding results -----------------------------------------------------


def huge_png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, "PNG")
    return buf.getvalue()


def test_pil_refuses_an_image_of_too_many_pixels() -> None:
    data = huge_png(12_000, 12_000)  # 144 megapixels, a few hundred kilobytes of PNG
    image = GeneratedImage(url="https://cdn.example/x.png", prompt="p", task_id="t")
    image._cache["data"] = data
    with pytest.raises(DownloadError, match="144 megapixels"):
        image.pil()
    small = GeneratedImage(url="https://cdn.example/y.png", prompt="p", task_id="t")
    small._cache["data"] = png()
    assert small.pil().size == (40, 30)


def test_a_symlink_named_like_the_file_is_replaced_not_followed(server: HostileServer,
                                                               tmp_path: Path) -> None:
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"keep me")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "t-0.png").symlink_to(outside)
    image = GeneratedImage(url=server.url("/ok.png"), prompt="p", task_id="t")
    path = image.save(folder)
    assert path == folder / "t-0.png" and not path.is_symlink()
    assert outside.read_bytes() == b"keep me"
