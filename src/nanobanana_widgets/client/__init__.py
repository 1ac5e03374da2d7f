"""The HTTP client for the Nano Banana service: requests, retries and one batched poller."""

from nanobanana_widgets.client.core import (
    BASE_URL_ENV,
    DEFAULT_BASE_URL,
    IMAGES_PATH,
    LOOPBACK_PLACEHOLDER_TOKEN,
    TASKS_PATH,
    TOKEN_ENV,
    Client,
    ClientListener,
    Progress,
    ProgressCallback,
    Task,
)

__all__ = [
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "IMAGES_PATH",
    "LOOPBACK_PLACEHOLDER_TOKEN",
    "TASKS_PATH",
    "TOKEN_ENV",
    "Client",
    "ClientListener",
    "Progress",
    "ProgressCallback",
    "Task",
]
