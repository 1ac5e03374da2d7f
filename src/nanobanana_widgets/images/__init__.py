"""Image I/O on Pillow: the one input normaliser, safe downloads, thumbnails, metadata.

``sources`` (``to_image_url(s)``, ``load_image``), ``fetch`` (``download``), ``http`` (the
one HTTP exchange with a total deadline, also under the client's transport),
``thumbnails``, ``metadata`` (embedded in PNG and JPEG files), ``files`` (saving under safe
names), ``formats`` (what kind of image bytes these are).
"""

from nanobanana_widgets.images._shared import DEFAULT_MAX_PIXELS, RESULT_MAX_PIXELS
from nanobanana_widgets.images.fetch import (
    DOWNLOAD_DEADLINE_FACTOR,
    DOWNLOAD_MAX_BYTES,
    check_url,
    download,
    url_problem,
)
from nanobanana_widgets.images.files import decode, safe_name, save_generated, write_with_metadata
from nanobanana_widgets.images.formats import extension_for
from nanobanana_widgets.images.http import Answer, AnswerTooLarge, Wire, WireError
from nanobanana_widgets.images.metadata import embed_metadata, read_metadata
from nanobanana_widgets.images.sources import load_image, to_image_url, to_image_urls
from nanobanana_widgets.images.thumbnails import thumbnail

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DOWNLOAD_DEADLINE_FACTOR",
    "DOWNLOAD_MAX_BYTES",
    "RESULT_MAX_PIXELS",
    "Answer",
    "AnswerTooLarge",
    "Wire",
    "WireError",
    "check_url",
    "decode",
    "download",
    "embed_metadata",
    "extension_for",
    "load_image",
    "read_metadata",
    "safe_name",
    "save_generated",
    "thumbnail",
    "to_image_url",
    "to_image_urls",
    "url_problem",
    "write_with_metadata",
]
