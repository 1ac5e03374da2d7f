"""Image I/O on Pillow: the one input normaliser, safe downloads, thumbnails, metadata."""

from nanobanana_widgets.images.core import (
    DEFAULT_MAX_PIXELS,
    DOWNLOAD_MAX_BYTES,
    decode,
    download,
    embed_metadata,
    extension_for,
    load_image,
    read_metadata,
    save_generated,
    thumbnail,
    to_image_url,
    to_image_urls,
    write_with_metadata,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DOWNLOAD_MAX_BYTES",
    "decode",
    "download",
    "embed_metadata",
    "extension_for",
    "load_image",
    "read_metadata",
    "save_generated",
    "thumbnail",
    "to_image_url",
    "to_image_urls",
    "write_with_metadata",
]
