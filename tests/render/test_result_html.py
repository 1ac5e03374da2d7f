"""show(), image_html() and result_html(): grids of thumbnails with escaped captions."""

from __future__ import annotations

import base64
import io
import random
import re
from pathlib import Path

import pytest
from IPython.display import HTML
from PIL import Image

from nanobanana_widgets.client import Client
from nanobanana_widgets.render.results import image_html, render_html, result_html, show
from nanobanana_widgets.service.types import GeneratedImage, ImageRequest, Result
from support import png, png_data_uri

XSS_PROMPT = "<script>alert(1)</script> and <img src=x onerror=alert(1)>"
PHOTO = (640, 400)


def make_result(prompt: str = "a red fox", *, n: int = 1, url: str | None = None,
                model: str = "nano-banana-pro") -> Result:
    request = ImageRequest(action="generate", prompt=prompt, model=model, count=n,
                           aspect_ratio="16:9", resolution="2K")
    images = tuple(
        GeneratedImage(url=url or png_data_uri(png(("teal", "orange", "navy")[i % 3], PHOTO)),
                       prompt=prompt, task_id="task-123", index=i, request=request)
        for i in range(n)
    )
    return Result(task_id="task-123", trace_id="trace-456", request=request, images=images)


def thumbnails_in(markup: str) -> list[Image.Image]:
    found = re.findall(r'src="data:image/(jpeg|webp);base64,([A-Za-z0-9+/=]+)"', markup)
    return [Image.open(io.BytesIO(base64.b64decode(b64))) for _fmt, b64 in found]


def test_show_returns_an_html_display_object_with_a_responsive_grid() -> None:
    out = show(make_result(n=2))
    assert isinstance(out, HTML)
    markup = out.data
    assert "display:grid" in markup
    assert "grid-template-columns:repeat(auto-fill, minmax(" in markup
    assert len(thumbnails_in(markup)) == 2


def test_columns_fix_the_number_of_columns() -> None:
    markup = render_html(make_result(n=3), columns=2)
    assert "grid-template-columns:repeat(2, minmax(0, 1fr))" in markup
    with pytest.raises(ValueError, match="columns"):
        render_html(make_result(), columns=0)


def test_thumbnails_are_small_jpegs_never_full_size_pngs() -> None:
    rng = random.Random(7)
    noisy = Image.frombytes("RGB", (640, 400), rng.randbytes(640 * 400 * 3))
    buf = io.BytesIO()
    noisy.save(buf, "PNG")
    result = make_result(n=1, url=png_data_uri(buf.getvalue()))
    full = result.image.url
    markup = render_html(result, max_side=128)
    assert "data:image/png" not in markup
    assert full not in markup
    (thumb,) = thumbnails_in(markup)
    assert thumb.format == "JPEG"
    assert max(thumb.size) <= 128
    assert len(markup) < len(full) / 2


def test_captions_carry_prompt_model_and_task_id() -> None:
    markup = render_html(make_result("a red fox in snow"))
    assert "a red fox in snow" in markup
    assert "nano-banana-pro" in markup
    assert "task-123" in markup
    assert "16:9" in markup and "2K" in markup


def test_captions_can_be_switched_off() -> None:
    markup = render_html(make_result("a red fox in snow"), captions=False)
    assert "<figcaption" not in markup
    assert "a red fox in snow" in markup  # still the image's alt text (escaped)


def test_every_caption_is_escaped() -> None:
    result = make_result(XSS_PROMPT, model="nano-banana")
    for markup in (render_html(result), result_html(result), image_html(result.image),
                   result._repr_html_(), result.image._repr_html_()):
        assert "<script>" not in markup
        assert "<img src=x" not in markup
        assert "onerror=alert(1)>" not in markup
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup


def test_file_names_are_escaped(tmp_path: Path) -> None:
    path = tmp_path / "<img src=x onerror=alert(1)>.png"
    path.write_bytes(png(size=PHOTO))
    markup = render_html(path)
    assert "<img src=x" not in markup
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in markup
    assert len(thumbnails_in(markup)) == 1


def test_mixed_sources_and_nested_lists(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(png("red", PHOTO))
    pil = Image.new("RGBA", (300, 200), (0, 0, 255, 128))
    raw = png("green", (100, 100))
    markup = render_html([path, [pil, raw], make_result(n=2)])
    assert len(thumbnails_in(markup)) == 5
    assert "photo.png" in markup
    assert "PIL image 300×200" in markup
    assert "image (" in markup and "KB)" in markup


def test_an_unusable_item_becomes_a_card_not_an_exception(tmp_path: Path) -> None:
    notes = tmp_path / "<b>notes<b>.txt"
    notes.write_text("just some text, not a picture")
    markup = render_html([notes, png(size=PHOTO)])
    assert "Could not show this image" in markup
    assert "not an image" in markup
    assert "<b>notes" not in markup and "&lt;b&gt;notes" in markup
    assert len(thumbnails_in(markup)) == 1


def test_http_images_link_to_the_full_size_image_but_never_to_a_loopback_address(
        client: Client) -> None:
    result = client.generate("a lighthouse at dusk")
    url = result.image.url
    assert url.startswith("http://127.0.0.1")
    markup = result_html(result)
    assert "href=" not in markup and "127.0.0.1" not in markup  # dead once the kernel stops
    assert len(thumbnails_in(markup)) == 1
    assert result.task_id in markup

    cdn = "https://cdn.example.com/images/a.png"
    image = GeneratedImage(url=cdn, prompt="p", task_id="t-1",
                           request=ImageRequest(action="generate", prompt="p"))
    image._cache["data"] = result.image.bytes()
    markup = image_html(image)
    assert f'href="{cdn}"' in markup
    assert 'target="_blank"' in markup and 'rel="noopener noreferrer"' in markup


def test_only_http_urls_become_links() -> None:
    request = ImageRequest(action="generate", prompt="p")
    image = GeneratedImage(url="javascript:alert(1)", prompt="p", request=request)
    markup = image_html(image)
    assert "href=" not in markup
    assert '="javascript:' not in markup
    assert "Could not show this image" in markup


def test_a_result_without_images_shows_why() -> None:
    from nanobanana_widgets.service.errors import ContentRefusedError

    request = ImageRequest(action="generate", prompt="something refused")
    result = Result(task_id="t-9", trace_id="tr-9", request=request, images=(), status="failed",
                    error=ContentRefusedError(trace_id="tr-9", status_code=403, code="forbidden"))
    markup = result_html(result)
    assert "No image:" in markup
    assert "refused this content" in markup
    assert "tr-9" in markup
    assert "failed" in markup


def test_styles_follow_the_jupyterlab_theme() -> None:
    markup = render_html(make_result(n=2))
    colors = re.findall(r"(?<![-\w])(color|background)\s*:\s*([^;\"]+)", markup)
    assert colors
    for prop, value in colors:
        assert value.strip().startswith("var(--jp-"), (prop, value)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="max_side"):
        show(make_result(), max_side=5000)
    assert "Nothing to show" in render_html([])
