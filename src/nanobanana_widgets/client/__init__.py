"""The HTTP client for the Nano Banana service: requests, retries and one batched poller.

``client`` (the :class:`Client` façade), ``task`` (:class:`Task`, :class:`Progress`),
``poller`` (the one batched poller per client), ``listeners`` (who observes a client and
how they are called), ``calls`` (submit and lookup on the shared retry policy),
``transport`` (the wire, swappable), ``credentials`` (token and base URL).
"""

from nanobanana_widgets.client.client import Client
from nanobanana_widgets.client.credentials import LOOPBACK_PLACEHOLDER_TOKEN
from nanobanana_widgets.client.listeners import ClientListener
from nanobanana_widgets.client.task import Progress, ProgressCallback, Task
from nanobanana_widgets.client.transport import (
    RequestsTransport,
    Response,
    Transport,
    TransportError,
)
from nanobanana_widgets.service.protocol import (
    BASE_URL_ENV,
    DEFAULT_BASE_URL,
    IMAGES_PATH,
    TASKS_PATH,
    TOKEN_ENV,
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
    "RequestsTransport",
    "Response",
    "Task",
    "Transport",
    "TransportError",
]
