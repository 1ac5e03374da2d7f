"""Pixel work on decoded images: EXIF orientation, colour modes, scaling and encoding to
fit a size (private to ``images``)."""

from __future__ import annotations

import io
import math
import os
import struct
import threading
import zlib
from typing import Any, Final

from PIL import Image, ImageOps

from nanobanana_widgets.images._shared import HINT_FORMATS
from nanobanana_widgets.service.errors import ImageInputError
from nanobanana_widgets.service.text import data_uri as _data_uri
from nanobanana_widgets.service.text import data_uri_length as _data_uri_length

_JPEG_QUALITIES: Final = (90, 85, 78, 70)
_MIN_SIDE: Final = 16
_ORIENTATION_TAG: Final = 0x0112


def orientation(img: Image.Image) -> int:
    """The EXIF orientation of ``img`` (1, upright, when absent or corrupt)."""
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # corrupt EXIF: treat as upright
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def transpose(img: Image.Image) -> Image.Image:
    """``img`` turned upright by its EXIF orientation (as it is when that fails)."""
    if orientation(img) == 1:
        return img
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block must not make a good image unusable
        return img


def from_array(array: Any, label: str) -> Image.Image:
    """A numpy array (HxW, HxWx3 or HxWx4; uint8, uint16, bool or floats in 0..1) as an
    8-bit image; raises :class:`ImageInputError` naming ``label``."""
    import numpy as np

    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise ImageInputError(
            label, f"has shape {a.shape}; expected HxW, HxWx3 or HxWx4",
            hint="For channels-first arrays use array.transpose(1, 2, 0).",
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageInputError(label, "has no pixels", hint="Pass a non-empty array.")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ImageInputError(label, "contains NaN or infinite values",
                                  hint="Replace them, e.g. with numpy.nan_to_num.")
        low, high = float(a.min()), float(a.max())
        if low < -1e-6 or high > 1 + 1e-6:
            raise ImageInputError(
                label, f"is a float array with values from {low:g} to {high:g}; "
                "float images must be in 0..1",
                hint="Divide by 255 (or your maximum), or convert to uint8.",
            )
        a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.integer):
        if a.dtype == np.uint16:
            a = ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
        elif a.dtype != np.uint8:
            low, high = int(a.min()), int(a.max())
            if low < 0 or high > 255:
                raise ImageInputError(
                    label, f"is an integer array with values from {low} to {high}",
                    hint="Use uint8 values in 0..255 or floats in 0..1.",
                )
            a = a.astype(np.uint8)
    else:
        raise ImageInputError(label, f"has dtype {a.dtype}, which is not an image type",
                              hint="Use uint8 values in 0..255 or floats in 0..1.")
    return Image.fromarray(np.ascontiguousarray(a))


def _to_8bit_gray(img: Image.Image) -> Image.Image:
    """Scale 16/32-bit integer or float gray images to 8-bit ``L``."""
    if img.mode != "F":
        img = img.convert("I")
    extrema = img.getextrema()
    low = float(extrema[0])  # type: ignore[arg-type]  # one band: (min, max) numbers
    high = float(extrema[1])  # type: ignore[arg-type]
    if img.mode == "F" and low >= 0.0 and high <= 1.0:
        return img.point(lambda v: v * 255.0 + 0.5).convert("L")
    if img.mode == "I" and low >= 0 and high <= 255:
        return img.convert("L")
    if img.mode == "I" and low >= 0 and high <= 65535:
        return img.point(lambda v: v * (1 / 257) + 0.5).convert("L")
    span = (high - low) or 1.0
    return img.point(lambda v: (v - low) * (255.0 / span) + 0.5).convert("L")


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    profile = img.info.get("icc_profile")
    if profile:
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            dst = ImageCms.createProfile("sRGB")
            out = ImageCms.profileToProfile(img, src, dst, outputMode="RGB")
            if out is not None:
                return out
        except Exception:  # no littlecms or a broken profile: plain conversion below
            pass
    return img.convert("RGB")


def normalise_mode(img: Image.Image) -> tuple[Image.Image, bytes | None]:
    """An 8-bit ``L``, ``LA``, ``RGB`` or ``RGBA`` image and the ICC profile to keep."""
    icc = img.info.get("icc_profile") or None
    mode = img.mode
    has_transparency = "transparency" in img.info
    if mode in ("L", "RGB"):
        out = img.convert("RGBA" if mode == "RGB" else "LA") if has_transparency else img
    elif mode in ("LA", "RGBA"):
        out = img
    elif mode in ("P", "PA"):
        out = img.convert("RGBA" if has_transparency or mode == "PA" else "RGB")
    elif mode == "1":
        out = img.convert("L")
    elif mode == "La":
        out = img.convert("LA")
    elif mode == "RGBa":
        out = img.convert("RGBA")
    elif mode == "CMYK":
        out, icc = _cmyk_to_rgb(img), None
    elif mode.startswith("I") or mode == "F":
        out, icc = _to_8bit_gray(img), None
    else:  # RGBX, YCbCr, LAB, HSV, ...
        out = img.convert("RGB")
        if mode in ("LAB", "HSV"):
            icc = None
    if out.mode in ("LA", "RGBA"):
        alpha_low = out.getchannel("A").getextrema()[0]
        if isinstance(alpha_low, (int, float)) and alpha_low >= 255:
            out = out.convert("L" if out.mode == "LA" else "RGB")
    if out.mode == "L" and icc is not None and not _icc_is_gray(icc):
        icc = None
    return out, icc


def _icc_is_gray(icc: bytes) -> bool:
    return len(icc) >= 20 and icc[16:20] == b"GRAY"


def flatten(img: Image.Image) -> Image.Image:
    """Composite an image with alpha onto white (for JPEG)."""
    if img.mode not in ("LA", "RGBA"):
        return img
    base_mode = "L" if img.mode == "LA" else "RGB"
    background = Image.new(base_mode, img.size, 255 if base_mode == "L" else (255, 255, 255))
    background.paste(img.convert(base_mode), mask=img.getchannel("A"))
    return background


def resize_to(img: Image.Image, max_side: int) -> Image.Image:
    """``img`` scaled down (LANCZOS) so its longest side is at most ``max_side``."""
    longest = max(img.size)
    if longest <= max_side:
        return img
    scale = max_side / longest
    if img.width >= img.height:
        size = (max_side, max(1, round(img.height * scale)))
    else:
        size = (max(1, round(img.width * scale)), max_side)
    return lanczos(img, size)


_PARALLEL_MIN_PIXELS: Final = 2_000_000


def lanczos(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """LANCZOS resize; big images are done in horizontal bands on several threads.

    Pillow releases the GIL while resampling, and ``box=`` lets each band read the source
    rows around it, so the bands join without seams (same pixels as one call, ±1).
    """
    workers = min(os.cpu_count() or 1, 4, max(1, size[1] // 256))
    if workers < 2 or size[0] * size[1] < _PARALLEL_MIN_PIXELS or img.mode in ("P", "1"):
        return img.resize(size, Image.Resampling.LANCZOS)
    bounds = [size[1] * i // workers for i in range(workers + 1)]
    ratio = img.height / size[1]
    bands: list[Image.Image | BaseException | None] = [None] * workers

    def work(i: int) -> None:
        top, bottom = bounds[i], bounds[i + 1]
        box = (0.0, top * ratio, float(img.width), bottom * ratio)
        try:
            bands[i] = img.resize((size[0], bottom - top), Image.Resampling.LANCZOS, box=box)
        except BaseException as exc:  # re-raised in the calling thread below
            bands[i] = exc

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(1, workers)]
    for thread in threads:
        thread.start()
    work(0)
    for thread in threads:
        thread.join()
    out = Image.new(img.mode, size)
    for i, band in enumerate(bands):
        if isinstance(band, BaseException):
            raise band
        assert band is not None
        out.paste(band, (0, bounds[i]))
    return out


def _encode_to_fit(img: Image.Image, icc: bytes | None, max_bytes: int, label: str) -> str:
    """PNG when there is transparency and it fits, else JPEG (stepping quality, then size)."""
    extra: dict[str, Any] = {"icc_profile": icc} if icc else {}
    if img.mode in ("LA", "RGBA"):
        buf = io.BytesIO()
        img.save(buf, "PNG", compress_level=6, **extra)
        if _data_uri_length(buf.tell(), "image/png") <= max_bytes:
            return _data_uri(buf.getvalue(), "image/png")
        img = flatten(img)
    current = img
    while True:
        size = 0
        for quality in _JPEG_QUALITIES:
            buf = io.BytesIO()
            current.save(buf, "JPEG", quality=quality, **extra)
            size = buf.tell()
            if _data_uri_length(size, "image/jpeg") <= max_bytes:
                return _data_uri(buf.getvalue(), "image/jpeg")
        longest = max(current.size)
        budget = max_bytes * 3 / 4
        factor = min(0.85, math.sqrt(budget / max(size, 1)) * 0.95)
        new_side = int(longest * factor)
        if new_side < _MIN_SIDE:
            raise ImageInputError(
                label, f"cannot be made to fit in {max_bytes} bytes",
                hint="Pass a larger max_bytes= or a smaller image.",
            )
        current = resize_to(img, new_side)  # from the original: no compounded blur


def encode_image(img: Image.Image, max_side: int, max_bytes: int, label: str) -> str:
    """Re-encode a decoded image (must run under :func:`quiet_pillow`)."""
    try:
        oriented = transpose(img)
        normal, icc = normalise_mode(oriented)
        scaled = resize_to(normal, max_side)
        return _encode_to_fit(scaled, icc, max_bytes, label)
    except ImageInputError:
        raise
    except (OSError, ValueError, MemoryError) as exc:
        raise ImageInputError(label, f"could not be converted ({exc})",
                              hint=HINT_FORMATS) from None


def load_pil(img: Image.Image, label: str) -> Image.Image:
    """A caller's ``PIL.Image`` loaded; a damaged file behind it raises
    :class:`ImageInputError`."""
    try:
        img.load()
    except (OSError, ValueError, SyntaxError, struct.error, EOFError, zlib.error) as exc:
        raise ImageInputError(label, f"could not be decoded ({exc})",
                              hint="The file behind this PIL image is damaged or truncated.") \
            from None
    return img
