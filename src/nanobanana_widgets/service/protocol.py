"""Where the service lives and how it is addressed: the base URL, the two endpoints, the
environment variables of the ecosystem and the largest lookup batch (``API.md``)."""

from __future__ import annotations

from typing import Final

__all__ = ["BASE_URL_ENV", "BATCH_SIZE", "DEFAULT_BASE_URL", "IMAGES_PATH", "MAX_ANSWER_BYTES",
           "MAX_JSON_DEPTH", "TASKS_PATH", "TOKEN_ENV"]

DEFAULT_BASE_URL: Final = "https://api.acedata.cloud"
"""The service's base URL."""

TOKEN_ENV: Final = "ACEDATACLOUD_API_TOKEN"
"""The environment variable holding the API token (the name the official tools read)."""

BASE_URL_ENV: Final = "ACEDATACLOUD_API_BASE_URL"
"""The environment variable holding another base URL (a proxy, or a local emulator)."""

IMAGES_PATH: Final = "/nano-banana/images"
"""``POST``: generate or edit (a submit; billed per image that succeeds)."""

TASKS_PATH: Final = "/nano-banana/tasks"
"""``POST``: look tasks up (``retrieve`` one, ``retrieve_batch`` many; free)."""

BATCH_SIZE: Final = 50
"""Most task ids per ``retrieve_batch`` request (what the official integrations send)."""

MAX_ANSWER_BYTES: Final = 32 * 1024 * 1024
"""Largest answer the client reads from the service, after decompression (32 MiB). Real
answers are a few kilobytes; a task record echoes its request, so an edit's record can
carry its input images (each at most 10 MB as a data URI). Reading stops at the limit."""

MAX_JSON_DEPTH: Final = 64
"""Deepest nesting of objects and lists accepted in an answer (real ones nest 4 levels)."""
