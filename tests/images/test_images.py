"""Image I/O: the normaliser on real files, hostile inputs, downloads over a loopback
socket, and metadata embedded in PNG and JPEG files."""

from __future__ import annotations

import datetime as dt
import io
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from nanobanana_widgets import images
from nanobanana_widgets.images._pixels import lanczos
from nanobanana_widgets.images.sources import label_for
from nanobanana_widgets.service.errors import DownloadError, ImageInputError, InvalidParameterError
from nanobanana_widgets.service.types import GeneratedImage, ImageRequest, Result
from support import TEST_TOKEN

from .imagefiles import (
    BLUE,
    RED,
    LoopbackServer,
    Route,
    data_uri,
    decode_uri,
    encode,
    halves,
    noisy,
    png_claiming,
    send_bytes,
    waves,
    with_orientation,
)


def _close(a: tuple[int, ...], b: tuple[int, ...], tol: int = 40) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- pass-through and re-encoding ------------------------------------------------------


@pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"),
                                           ("WEBP", "image/webp"), ("GIF", "image/gif")])
def test_small_supported_files_pass_through_byte_for_byte(tmp_path: Path, fmt: str,
                                                          mime: str) -> None:
    data = encode(halves(), fmt)
    path = _write(tmp_path, f"small.{fmt.lower()}", data)
    uri = images.to_image_url(path)
    got_mime, got, img = decode_uri(uri)
    assert got_mime == mime
    assert got == data
    assert img.size == (40, 20)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF"])
def test_other_formats_are_re_encoded_as_jpeg(tmp_path: Path, fmt: str) -> None:
    path = _write(tmp_path, f"pic.{fmt.lower()}", encode(halves(), fmt))
    mime, _, img = decode_uri(images.to_image_url(str(path)))
    assert mime == "image/jpeg"
    assert img.size == (40, 20)
    assert _close(img.convert("RGB").getpixel((5, 10)), RED)
    assert _close(img.convert("RGB").getpixel((35, 10)), BLUE)


def test_tiff_with_transparency_becomes_png_keeping_alpha(tmp_path: Path) -> None:
    img = Image.new("RGBA", (30, 10), (0, 255, 0, 255))
    img.paste((0, 0, 0, 0), (0, 0, 10, 10))
    path = _write(tmp_path, "alpha.tiff", encode(img, "TIFF"))
    mime, _, out = decode_uri(images.to_image_url(path))
    assert mime == "image/png"
    assert out.convert("RGBA").getpixel((2, 5))[3] == 0
    assert out.convert("RGBA").getpixel((25, 5)) == (0, 255, 0, 255)


def test_large_image_is_scaled_to_max_side(tmp_path: Path) -> None:
    path = _write(tmp_path, "wide.png", encode(halves((4200, 100)), "PNG"))
    mime, _, img = decode_uri(images.to_image_url(path))
    assert mime == "image/jpeg"  # opaque: re-encoded as JPEG
    assert img.size == (4096, 98)
    assert _close(img.getpixel((10, 50)), RED)
    assert _close(img.getpixel((4090, 50)), BLUE)


def test_camera_sized_jpeg_stand_in_is_drafted_and_scaled(tmp_path: Path) -> None:
    # A stand-in for a 24-megapixel camera JPEG: same path (draft + LANCZOS), smaller.
    path = _write(tmp_path, "camera.jpg", encode(noisy((1200, 800)), "JPEG", quality=95))
    uri = images.to_image_url(path, max_side=512)
    mime, _, img = decode_uri(uri)
    assert (mime, img.size) == ("image/jpeg", (512, 341))


def test_banded_parallel_resize_matches_one_call() -> None:
    # A smooth picture: Pillow may order its two passes differently for a band than for
    # the whole image, which changes only rounding, unless overshoot gets clipped.
    img = waves((2000, 1500))
    for size in [(1800, 1350), (1366, 1024)]:  # over the size where bands are threaded
        banded = np.asarray(lanczos(img, size), dtype=int)
        whole = np.asarray(img.resize(size, Image.Resampling.LANCZOS), dtype=int)
        assert banded.shape == whole.shape
        assert np.abs(banded - whole).max() <= 2  # no seams between bands


def test_portrait_scaling_keeps_aspect(tmp_path: Path) -> None:
    path = _write(tmp_path, "tall.png", encode(halves((300, 900)), "PNG"))
    _, _, img = decode_uri(images.to_image_url(path, max_side=300))
    assert img.size == (100, 300)


def test_whole_data_uri_fits_max_bytes_by_lowering_quality_then_size(tmp_path: Path) -> None:
    path = _write(tmp_path, "noise.png", encode(noisy((600, 600)), "PNG"))
    assert path.stat().st_size > 1_000_000
    uri = images.to_image_url(path, max_bytes=60_000)
    assert len(uri) <= 60_000
    mime, _, img = decode_uri(uri)
    assert mime == "image/jpeg"
    assert max(img.size) < 600  # noise at quality 70 is still too big: scaled down


def test_pass_through_is_refused_when_the_uri_would_be_too_big(tmp_path: Path) -> None:
    data = encode(noisy((200, 200)), "PNG")
    uri = images.to_image_url(data, max_bytes=len(data))  # base64 grows by a third
    assert len(uri) <= len(data)
    assert decode_uri(uri)[0] == "image/jpeg"


def test_transparent_image_falls_back_to_jpeg_on_white_when_png_is_too_big() -> None:
    img = noisy((300, 300)).convert("RGBA")
    img.putalpha(Image.new("L", img.size, 0))
    img.paste((0, 0, 0, 255), (0, 0, 10, 10))
    uri = images.to_image_url(img, max_bytes=40_000)
    mime, _, out = decode_uri(uri)
    assert mime == "image/jpeg" and len(uri) <= 40_000
    assert _close(out.convert("RGB").getpixel((200, 200)), (255, 255, 255))


@pytest.mark.parametrize(("orientation", "top", "bottom"), [(6, RED, BLUE), (8, BLUE, RED)])
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int,
                                     top: tuple[int, int, int],
                                     bottom: tuple[int, int, int]) -> None:
    # Stored 40x20 with red on the left; orientation 6 rotates 90° clockwise (left → top),
    # orientation 8 rotates 90° counter-clockwise (left → bottom).
    path = _write(tmp_path, "rotated.jpg", with_orientation(halves((40, 20)), orientation))
    mime, _, img = decode_uri(images.to_image_url(path))
    assert mime == "image/jpeg"
    assert img.size == (20, 40)
    assert _close(img.getpixel((10, 5)), top)
    assert _close(img.getpixel((10, 35)), bottom)
    assert img.getexif().get(0x0112, 1) == 1


def test_exif_orientation_applies_to_pil_images_and_load_image(tmp_path: Path) -> None:
    data = with_orientation(halves((40, 20)), 6)
    opened = Image.open(io.BytesIO(data))
    _, _, img = decode_uri(images.to_image_url(opened))
    assert img.size == (20, 40)
    loaded = images.load_image(_write(tmp_path, "r.jpg", data))
    assert loaded.size == (20, 40)
    assert _close(loaded.convert("RGB").getpixel((10, 5)), RED)


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (32, 16), (0, 255, 255, 0))  # red in CMYK
    path = _write(tmp_path, "cmyk.jpg", encode(cmyk, "JPEG", quality=95))
    mime, _, img = decode_uri(images.to_image_url(path))
    assert mime == "image/jpeg" and img.mode == "RGB"
    assert _close(img.getpixel((16, 8)), RED, tol=60)


def test_palette_png_with_transparency_keeps_it(tmp_path: Path) -> None:
    img = Image.new("P", (20, 20), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(0, (0, 0, 10, 20))
    data = encode(img, "PNG", transparency=0)
    # Scaling forces a re-encode: the output must still carry the transparency.
    mime, _, out = decode_uri(images.to_image_url(data, max_side=10))
    assert mime == "image/png"
    rgba = out.convert("RGBA")
    assert out.size == (10, 10)
    assert rgba.getpixel((1, 5))[3] == 0
    assert rgba.getpixel((8, 5)) == (255, 0, 0, 255)


def test_gray_with_alpha_keeps_alpha() -> None:
    img = Image.new("LA", (20, 10), (200, 255))
    img.paste((0, 0), (0, 0, 10, 10))
    mime, _, out = decode_uri(images.to_image_url(img))
    assert mime == "image/png"
    assert out.mode == "LA"
    assert out.getpixel((2, 2)) == (0, 0)
    assert out.getpixel((15, 2)) == (200, 255)


def test_sixteen_bit_png_is_scaled_to_eight_bits(tmp_path: Path) -> None:
    img = Image.new("I;16", (20, 10), 32768)
    img.paste(65535, (10, 0, 20, 10))
    path = _write(tmp_path, "deep.png", encode(img, "PNG"))
    # Too big a side forces a re-encode, which must scale 16-bit values, not clip them.
    mime, _, out = decode_uri(images.to_image_url(path, max_side=10))
    assert mime == "image/jpeg" and out.mode == "L"
    assert abs(out.getpixel((2, 2)) - 128) <= 3
    assert out.getpixel((8, 2)) >= 250


def test_fully_opaque_alpha_is_dropped_to_jpeg() -> None:
    mime, _, out = decode_uri(images.to_image_url(halves().convert("RGBA")))
    assert (mime, out.mode) == ("image/jpeg", "RGB")


# --- numpy, bytes, file objects, uploads -----------------------------------------------


def test_numpy_arrays() -> None:
    rgb = np.zeros((10, 20, 3), np.uint8)
    rgb[:, :10] = RED
    _, _, img = decode_uri(images.to_image_url(rgb))
    assert img.size == (20, 10)
    assert _close(img.getpixel((2, 5)), RED)

    gray = np.full((8, 8), 0.5, dtype=np.float64)
    _, _, img = decode_uri(images.to_image_url(gray))
    assert img.mode == "L" and abs(img.getpixel((4, 4)) - 128) <= 2

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 1] = 255
    rgba[:, 4:, 3] = 255
    mime, _, img = decode_uri(images.to_image_url(rgba))
    assert mime == "image/png"
    assert img.getpixel((1, 1))[3] == 0 and img.getpixel((6, 1)) == (0, 255, 0, 255)


@pytest.mark.parametrize(("array", "words"), [
    (np.full((4, 4, 3), 255.0), "0..1"),
    (np.zeros((3, 8, 8), np.uint8), "shape"),
    (np.array([[np.nan]]), "NaN"),
])
def test_bad_numpy_arrays_are_explained(array: np.ndarray, words: str) -> None:
    with pytest.raises(ImageInputError, match=r"<array ") as info:
        images.to_image_url(array)
    assert words in str(info.value)


def test_bytes_bytearray_memoryview_and_file_objects(tmp_path: Path) -> None:
    data = encode(halves(), "PNG")
    expected = data_uri(data, "image/png")
    assert images.to_image_url(data) == expected
    assert images.to_image_url(bytearray(data)) == expected
    assert images.to_image_url(memoryview(data)) == expected
    assert images.to_image_url(io.BytesIO(data)) == expected
    path = _write(tmp_path, "a.png", data)
    with path.open("rb") as fh:
        assert images.to_image_url(fh) == expected
    with path.open("r", encoding="latin-1") as text, pytest.raises(ImageInputError,
                                                                   match="text mode"):
        images.to_image_url(text)


def test_home_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    _write(tmp_path, "home.png", encode(halves(), "PNG"))
    assert images.to_image_url("~/home.png").startswith("data:image/png;base64,")


def _upload(name: str, data: bytes) -> dict[str, object]:
    return {"name": name, "type": "image/png", "size": len(data), "content": memoryview(data),
            "last_modified": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)}


def test_file_upload_entries_and_a_real_widget_value() -> None:
    import ipywidgets

    a, b = encode(halves(), "PNG"), encode(halves(left=BLUE), "JPEG")
    assert images.to_image_url(_upload("cat.png", a)) == data_uri(a, "image/png")

    widget = ipywidgets.FileUpload(accept="image/*", multiple=True)
    widget.value = (_upload("cat.png", a), _upload("dog.jpg", b))
    assert images.to_image_urls(widget.value) == [data_uri(a, "image/png"),
                                                  data_uri(b, "image/jpeg")]
    single = ipywidgets.FileUpload()
    single.value = (_upload("cat.png", a),)
    assert images.to_image_url(single.value) == data_uri(a, "image/png")
    with pytest.raises(ImageInputError, match="to_image_urls"):
        images.to_image_url(widget.value)
    with pytest.raises(ImageInputError, match="no file was uploaded"):
        images.to_image_url(ipywidgets.FileUpload().value)


def test_broken_upload_is_named_by_its_file_name() -> None:
    with pytest.raises(ImageInputError, match=r"upload 'cat\.png'.*truncated"):
        images.to_image_url(_upload("cat.png", encode(noisy((64, 64)), "PNG")[:400]))


def test_to_image_urls_names_the_position(tmp_path: Path) -> None:
    good = _write(tmp_path, "good.png", encode(halves(), "PNG"))
    missing = tmp_path / "missing.png"
    with pytest.raises(ImageInputError) as info:
        images.to_image_urls([good, good, missing])
    message = str(info.value)
    assert "image #3" in message and "missing.png" in message and "no such file" in message
    assert len(images.to_image_urls(good)) == 1
    assert images.to_image_urls([]) == []


def test_data_uri_round_trip_and_repair() -> None:
    data = encode(halves(), "PNG")
    uri = data_uri(data, "image/png")
    assert images.to_image_url(uri) == uri
    # A wrong media type is corrected; a format the service may not take is re-encoded.
    assert images.to_image_url(data_uri(data, "image/jpeg")) == uri
    mime, _, img = decode_uri(images.to_image_url(data_uri(encode(halves(), "BMP"), "image/bmp")))
    assert mime == "image/jpeg" and img.size == (40, 20)
    with pytest.raises(ImageInputError, match="not an image"):
        images.to_image_url("data:text/plain;base64,aGVsbG8=")
    with pytest.raises(ImageInputError, match="base64"):
        images.to_image_url("data:image/png;base64,@@@not base64@@@")


def test_http_urls_pass_through_and_other_schemes_are_refused() -> None:
    url = "https://cdn.example.com/a/b.png?x=1"
    assert images.to_image_url(url) == url
    assert images.to_image_url("http://127.0.0.1:9/x.jpg") == "http://127.0.0.1:9/x.jpg"
    with pytest.raises(ImageInputError, match="host"):
        images.to_image_url("https:///nohost.png")
    for bad, scheme in [("file:///etc/passwd", "file:"), ("ftp://h/x.png", "ftp:"),
                        ("javascript:alert(1)", "javascript:")]:
        with pytest.raises(ImageInputError, match=scheme) as info:
            images.to_image_url(bad)
        assert bad in str(info.value)


def test_results_give_their_first_image_url() -> None:
    request = ImageRequest(action="generate", prompt="a cat")
    first = GeneratedImage(url="https://cdn.example.com/1.png", prompt="a cat")
    second = GeneratedImage(url="https://cdn.example.com/2.png", prompt="a cat", index=1)
    result = Result(task_id="t1", trace_id=None, request=request, images=(first, second))
    assert images.to_image_url(first) == first.url
    assert images.to_image_url(result) == first.url
    assert images.to_image_urls([result, second]) == [first.url, second.url]
    empty = Result(task_id="t2", trace_id=None, request=request, images=(), status="failed")
    with pytest.raises(ImageInputError, match="without images"):
        images.to_image_url(empty)
    # messages name a result by its first image's URL
    assert label_for(first) == "result image 'https://cdn.example.com/1.png'"
    assert label_for(result) == "result 'https://cdn.example.com/1.png'"
    assert label_for(empty) == "result ''"


# --- hostile inputs --------------------------------------------------------------------


def _assert_names(tmp_path: Path, name: str, data: bytes, words: str) -> None:
    path = _write(tmp_path, name, data)
    with pytest.raises(ImageInputError) as info:
        images.to_image_url(path)
    assert str(path) in str(info.value)
    assert words in str(info.value)
    assert isinstance(info.value, ValueError)


def test_truncated_png_fails(tmp_path: Path) -> None:
    data = encode(noisy((64, 64)), "PNG")
    _assert_names(tmp_path, "cut.png", data[: len(data) // 2], "truncated")


def test_truncated_jpeg_fails(tmp_path: Path) -> None:
    data = encode(noisy((64, 64)), "JPEG", quality=95)
    _assert_names(tmp_path, "cut.jpg", data[: len(data) // 2], "truncated")


def test_truncated_jpeg_fails_in_the_draft_path_too(tmp_path: Path) -> None:
    data = encode(noisy((400, 300)), "JPEG", quality=95)
    path = _write(tmp_path, "cut-big.jpg", data[: len(data) * 2 // 3])
    with pytest.raises(ImageInputError, match="truncated"):
        images.to_image_url(path, max_side=100)


def test_text_file_named_png_fails(tmp_path: Path) -> None:
    _assert_names(tmp_path, "notes.png", b"hello, this is not a picture\n", "text")


def test_empty_file_fails(tmp_path: Path) -> None:
    _assert_names(tmp_path, "empty.png", b"", "empty")


def test_decompression_bomb_fails_fast_without_decoding(tmp_path: Path) -> None:
    data = png_claiming(20000, 20000)
    assert len(data) < 200
    _assert_names(tmp_path, "bomb.png", data, "pixels")


def test_pixel_limit_is_checked_before_decoding_and_configurable(tmp_path: Path) -> None:
    # 120 MP: over our default limit, under Pillow's own hard limit (which only warns).
    path = _write(tmp_path, "big.png", png_claiming(12000, 10000))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageInputError, match=r"12000x10000.*limit of 100 megapixels"):
            images.to_image_url(path)
    assert caught == []  # Pillow's DecompressionBombWarning did not escape
    small = encode(halves((100, 100)), "PNG")
    with pytest.raises(ImageInputError, match="limit"):
        images.to_image_url(small, max_pixels=5000)
    assert images.to_image_url(small, max_pixels=10_000).startswith("data:image/png")


def test_missing_path_and_folder_fail(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(ImageInputError, match="no such file") as info:
        images.to_image_url(str(missing))
    assert str(missing) in str(info.value)
    with pytest.raises(ImageInputError, match="folder") as info:
        images.to_image_url(tmp_path)
    assert str(tmp_path) in str(info.value)
    with pytest.raises(ImageInputError, match="no such file"):
        images.to_image_url("a cat on a sofa")


def test_unsupported_objects_and_bytes_are_named() -> None:
    with pytest.raises(ImageInputError, match=r"<bytes, 1234 bytes>.*not an image"):
        images.to_image_url(b"\x01\x02" * 617)
    with pytest.raises(ImageInputError, match=r"object.*not an image source"):
        images.to_image_url(object())
    with pytest.raises(ImageInputError, match="no image"):
        images.to_image_url(None)
    with pytest.raises(InvalidParameterError):
        images.to_image_url(b"x", max_side=0)


def test_pil_image_from_truncated_file_fails() -> None:
    data = encode(noisy((64, 64)), "PNG")
    lazy = Image.open(io.BytesIO(data[:500]))
    with pytest.raises(ImageInputError, match="PIL image"):
        images.to_image_url(lazy)


# --- load_image and thumbnail ----------------------------------------------------------


def test_thumbnail_jpeg_composites_alpha_on_white() -> None:
    img = Image.new("RGBA", (1000, 500), (255, 0, 0, 0))
    img.paste((0, 0, 255, 255), (500, 0, 1000, 500))
    data = images.thumbnail(img)
    thumb = Image.open(io.BytesIO(data))
    assert thumb.format == "JPEG" and thumb.mode == "RGB" and thumb.size == (512, 256)
    assert _close(thumb.getpixel((100, 100)), (255, 255, 255))
    assert _close(thumb.getpixel((400, 100)), BLUE)


def test_thumbnail_webp_and_bad_format(tmp_path: Path) -> None:
    path = _write(tmp_path, "big.jpg", encode(noisy((1600, 1200)), "JPEG"))
    thumb = Image.open(io.BytesIO(images.thumbnail(path, max_side=200, format="webp")))
    assert thumb.format == "WEBP" and thumb.size == (200, 150)
    with pytest.raises(InvalidParameterError):
        images.thumbnail(path, format="BMP")


# --- downloads over a loopback socket --------------------------------------------------

PNG = encode(halves(), "PNG")
NOISY_PNG = encode(noisy((64, 64)), "PNG")
NOISY_JPEG = encode(noisy((64, 64)), "JPEG", quality=95)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer()

    def ok(h: BaseHTTPRequestHandler, n: int) -> None:
        send_bytes(h, PNG)

    def flaky(h: BaseHTTPRequestHandler, n: int) -> None:
        if n < 2:
            send_bytes(h, b"busy", status=503, content_type="text/plain")
        else:
            send_bytes(h, PNG)

    def broken(h: BaseHTTPRequestHandler, n: int) -> None:
        send_bytes(h, b"oops", status=500, content_type="text/plain")

    def big_header(h: BaseHTTPRequestHandler, n: int) -> None:
        send_bytes(h, PNG, length=10_000_000)

    def big_stream(h: BaseHTTPRequestHandler, n: int) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "image/png")
        h.end_headers()  # no Content-Length: the body ends when the connection closes
        h.close_connection = True
        for _ in range(40):
            h.wfile.write(b"\0" * 16384)

    def cut(h: BaseHTTPRequestHandler, n: int) -> None:
        if n == 0:  # promise the whole file, send a third, hang up
            h.close_connection = True
            send_bytes(h, PNG[: len(PNG) // 3], length=len(PNG))
        else:
            send_bytes(h, PNG)

    def html(h: BaseHTTPRequestHandler, n: int) -> None:
        send_bytes(h, b"<html><body>Access denied</body></html>", content_type="text/html")

    def slow(h: BaseHTTPRequestHandler, n: int) -> None:
        srv.stop.wait(3.0)
        send_bytes(h, PNG)

    def redirect(target: str) -> Route:
        def route(h: BaseHTTPRequestHandler, n: int) -> None:
            h.send_response(302)
            h.send_header("Location", target)
            h.send_header("Content-Length", "0")
            h.end_headers()
        return route

    def half(data: bytes, content_type: str) -> Route:
        def route(h: BaseHTTPRequestHandler, n: int) -> None:  # a whole response, half a file
            send_bytes(h, data[: len(data) // 2], content_type=content_type)
        return route

    srv.routes.update({
        "/ok.png": ok, "/flaky.png": flaky, "/broken.png": broken,
        "/big-header.png": big_header, "/big-stream.png": big_stream, "/page.png": html,
        "/cut.png": cut, "/half.png": half(NOISY_PNG, "image/png"),
        "/half.jpg": half(NOISY_JPEG, "image/jpeg"),
        "/ok.jpg": lambda h, n: send_bytes(h, NOISY_JPEG, content_type="image/jpeg"),
        "/slow.png": slow, "/hop.png": redirect("/ok.png"),
        "/to-file.png": redirect("file:///etc/passwd"),
    })
    srv.start()
    yield srv
    srv.close()


def test_download_ok_and_never_sends_authorization(server: LoopbackServer) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TEST_TOKEN}"
    try:
        assert images.download(server.url("/ok.png"), session=session) == PNG
        assert images.download(server.url("/hop.png"), session=session) == PNG
    finally:
        session.close()
    assert server.hits == {"/ok.png": 2, "/hop.png": 1}
    assert all("authorization" not in seen for seen in server.headers_seen)
    assert all(TEST_TOKEN not in str(seen) for seen in server.headers_seen)


def test_download_retries_5xx_then_succeeds(server: LoopbackServer) -> None:
    assert images.download(server.url("/flaky.png")) == PNG
    assert server.hits["/flaky.png"] == 3


def test_download_retries_a_stream_cut_short(server: LoopbackServer) -> None:
    assert images.download(server.url("/cut.png")) == PNG
    assert server.hits["/cut.png"] == 2


def test_download_gives_up_after_two_retries(server: LoopbackServer) -> None:
    with pytest.raises(DownloadError, match="HTTP 500") as info:
        images.download(server.url("/broken.png"))
    assert info.value.status_code == 500
    assert server.hits["/broken.png"] == 3


def test_download_404_is_not_retried(server: LoopbackServer) -> None:
    url = server.url("/gone.png")
    with pytest.raises(DownloadError) as info:
        images.download(url)
    assert info.value.status_code == 404
    assert url in str(info.value) and "temporary" in str(info.value)
    assert server.hits["/gone.png"] == 1


def test_download_size_cap_by_header_and_by_stream(server: LoopbackServer) -> None:
    with pytest.raises(DownloadError, match="10000000 bytes, over the limit"):
        images.download(server.url("/big-header.png"), max_bytes=100_000)
    with pytest.raises(DownloadError, match="more than the limit of 100000 bytes"):
        images.download(server.url("/big-stream.png"), max_bytes=100_000)


def test_download_refuses_content_that_is_not_an_image(server: LoopbackServer) -> None:
    with pytest.raises(DownloadError, match="not an image") as info:
        images.download(server.url("/page.png"))
    assert "/page.png" in str(info.value)


def test_download_refuses_a_file_whose_end_is_missing(server: LoopbackServer) -> None:
    # The server answers in full (Content-Length matches), but the file itself is cut:
    # verify() checks structure without decoding, the end marker check catches the rest.
    assert images.download(server.url("/ok.jpg")) == NOISY_JPEG
    for path in ("/half.png", "/half.jpg"):
        with pytest.raises(DownloadError, match="truncated") as info:
            images.download(server.url(path))
        assert path in str(info.value)
        assert server.hits[path] == 1  # the same bytes would come again: not retried
    cut_png = NOISY_PNG[:-1]  # only the last byte of IEND's checksum is missing
    with pytest.raises(DownloadError, match="IEND"):
        images.download(data_uri(cut_png, "image/png"))
    with pytest.raises(DownloadError, match="end-of-image"):
        images.download(data_uri(NOISY_JPEG[:-2], "image/jpeg"))
    tail = NOISY_JPEG + b"\0" * 16  # bytes after the end marker are tolerated
    assert images.download(data_uri(tail, "image/jpeg")) == tail


def test_download_times_out_on_a_slow_server(server: LoopbackServer) -> None:
    with pytest.raises(DownloadError, match=r"no answer within 0\.3 s"):
        images.download(server.url("/slow.png"), timeout=0.3)
    assert server.hits["/slow.png"] == 1  # a read timeout is not retried


def test_download_refuses_other_schemes_and_bad_redirects(server: LoopbackServer) -> None:
    for url in ("file:///etc/passwd", "javascript:alert(1)", "ftp://example.com/x.png"):
        with pytest.raises(DownloadError, match="not allowed"):
            images.download(url)
    with pytest.raises(DownloadError, match="not http"):
        images.download(server.url("/to-file.png"))


def test_download_connection_refused_is_retried_then_explained() -> None:
    import socket

    with socket.socket() as sock:  # find a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError, match="could not connect after 3 attempts"):
        images.download(f"http://127.0.0.1:{port}/x.png", timeout=2)


def test_download_data_urls() -> None:
    assert images.download(data_uri(PNG, "image/png")) == PNG
    with pytest.raises(DownloadError, match="not an image") as info:
        images.download(data_uri(b"hello there" * 100, "image/png"))
    assert "data:image/png;base64,…(" in str(info.value)  # the URI is cut in messages
    with pytest.raises(DownloadError, match="limit"):
        images.download(data_uri(PNG, "image/png"), max_bytes=10)


def test_load_image_and_generated_image_download(server: LoopbackServer,
                                                 tmp_path: Path) -> None:
    img = images.load_image(server.url("/ok.png"))
    assert img.size == (40, 20)
    gen = GeneratedImage(url=server.url("/ok.png"), prompt="süße Katze 猫", task_id="t9")
    assert images.load_image(gen).size == (40, 20)
    saved = gen.save(tmp_path)
    assert saved.suffix == ".png"
    assert images.read_metadata(saved)["prompt"] == "süße Katze 猫"
    with pytest.raises(ImageInputError, match="could not be downloaded"):
        images.load_image(server.url("/page.png"))


# --- metadata --------------------------------------------------------------------------

META = {"prompt": "un chat roux 🐱 — 赤い猫", "model": "nano-banana", "task_id": "abc", "n": 2}


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_metadata_round_trip_keeps_pixels(tmp_path: Path, fmt: str) -> None:
    source = noisy((50, 40))
    # The JPEG carries an EXIF APP1 segment, which must stay right after SOI.
    data = with_orientation(source, 1) if fmt == "JPEG" else encode(source, fmt)
    out = images.embed_metadata(data, META)
    assert images.read_metadata(out) == META
    assert out[:4] == data[:4]  # PNG signature / JPEG SOI and its first (APP1) segment
    before = Image.open(io.BytesIO(data))
    after = Image.open(io.BytesIO(out))
    assert after.format == fmt
    assert after.tobytes() == before.tobytes()
    if fmt == "PNG":
        assert after.text["Description"] == META["prompt"]  # Pillow reads our iTXt
    else:
        assert after.info["exif"] == before.info["exif"]
        assert b"nanobanana:" in after.info["comment"]
    again = images.embed_metadata(out, {"prompt": "second"})
    assert images.read_metadata(again) == {"prompt": "second"}
    assert len(again) < len(out)  # the old metadata was replaced, not kept

    path = tmp_path / f"x{images.extension_for(data)}"
    images.write_with_metadata(path, data, META)
    assert images.read_metadata(path) == META
    assert images.read_metadata(str(path)) == META
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left


def test_jpeg_metadata_larger_than_one_segment(tmp_path: Path) -> None:
    meta = {"prompt": "é" * 70_000}
    out = images.embed_metadata(encode(halves(), "JPEG"), meta)
    assert images.read_metadata(out) == meta
    Image.open(io.BytesIO(out)).load()


def test_other_formats_are_converted_to_png_for_metadata() -> None:
    out = images.embed_metadata(encode(halves(), "WEBP", lossless=True), META)
    assert images.extension_for(out) == ".png"
    assert images.read_metadata(out) == META
    assert Image.open(io.BytesIO(out)).convert("RGB").tobytes() == halves().tobytes()


def test_read_metadata_without_any() -> None:
    assert images.read_metadata(encode(halves(), "PNG")) == {}
    assert images.read_metadata(encode(halves(), "JPEG")) == {}
    assert images.read_metadata(b"not an image") == {}


def test_ipywidgets_7_upload_dict_expands() -> None:
    a = encode(halves(), "PNG")
    value = {"a.png": {"content": a, "metadata": {"name": "a.png"}},
             "b.png": {"content": b"junk", "metadata": {"name": "b.png"}}}
    with pytest.raises(ImageInputError, match=r"image #2 \(upload 'b\.png'\)"):
        images.to_image_urls(value)
    assert images.to_image_urls({"a.png": value["a.png"]}) == [data_uri(a, "image/png")]


def test_extension_for() -> None:
    assert images.extension_for(encode(halves(), "PNG")) == ".png"
    assert images.extension_for(encode(halves(), "JPEG")) == ".jpg"
    assert images.extension_for(encode(halves(), "WEBP")) == ".webp"
    assert images.extension_for(encode(halves(), "GIF")) == ".gif"
    assert images.extension_for(b"hello") == ".bin"
