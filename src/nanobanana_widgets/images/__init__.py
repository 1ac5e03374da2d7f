"""Image I/O on Pillow: the one input normaliser, safe downloads, thumbnails, metadata.

``sources`` (``to_image_url(s)``, ``load_image``), ``fetch`` (``download``), ``thumbnails``,
``metadata`` (embedded in PNG and JPEG files), ``files`` (saving), ``formats`` (what kind
of image bytes these are).
"""

from nanobanana_widgets.images._shared import DEFAULT_MAX_PIXELS
from nanobanana_widgets.images.fetch import DOWNLOAD_MAX_BYTES, download
from nanobanana_widgets.images.files import decode, save_generated, write_with_metadata
from nanobanana_widgets.images.formats import extension_for
from nanobanana_widgets.images.metadata import embed_metadata, read_metadata
from nanobanana_widgets.images.sources import load_image, to_image_url, to_image_urls
from nanobanana_widgets.images.thumbnails import thumbnail

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
