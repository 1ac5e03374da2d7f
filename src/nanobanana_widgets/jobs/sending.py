"""One row's submit, and what its answer means for the row (no threads, no state).

Only a 429 is sent again (it was refused, never billed). An account problem (token, balance)
or a service that cannot be reached pauses the job with nothing sent. A submit that may have
reached the service (a 5xx, a timeout or a break after sending, an unreadable answer) is never
resent: its row is *uncertain*, or submitted when its task id could be read. Any other
refusal (4xx) fails the row, unbilled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from nanobanana_widgets.jobs.rows import RowSpec
from nanobanana_widgets.service.errors import (
    APIConnectionError,
    AuthenticationError,
    MissingTokenError,
    NanoBananaError,
    NoBalanceError,
    PossiblyBilledError,
    RateLimitError,
    ServerError,
    describe_error,
)
from nanobanana_widgets.service.text import data_uri
from nanobanana_widgets.service.types import ImageRequest

if TYPE_CHECKING:
    from nanobanana_widgets.client import Client, Task

__all__ = ["Sent", "Verdict", "request_of", "send"]

Verdict = Literal["accepted", "rate_limited", "pause", "uncertain", "failed"]


@dataclass(frozen=True)
class Sent:
    """What a submit came to: its verdict, and the task, task id, error, ``Retry-After``
    (for a 429) and the monotonic time it was sent."""

    verdict: Verdict
    sent_at: float
    task: Task | None = None
    task_id: str | None = None
    trace_id: str | None = None
    error: NanoBananaError | None = None
    retry_after: float | None = None


def request_of(spec: RowSpec, image_path: Callable[[str], Path]) -> ImageRequest:
    """The request a row sends: its kept input images read back as data URIs."""
    urls = []
    for ref in spec.images:
        if "url" in ref:
            urls.append(ref["url"])
        else:
            urls.append(data_uri(image_path(ref["path"]).read_bytes(),
                                 ref.get("mime") or "image/png"))
    return ImageRequest(action=spec.action, prompt=spec.prompt, model=spec.model,
                        count=spec.count, aspect_ratio=spec.aspect_ratio,
                        resolution=spec.resolution, image_urls=tuple(urls))


def send(client: Client, request: ImageRequest) -> Sent:
    """Submit ``request`` once (a 429 is not retried here) and say what it came to."""
    sent_at = time.monotonic()
    try:
        task = client.send(request, retry_rate_limit=False)
    except RateLimitError as exc:
        return Sent("rate_limited", sent_at, error=exc, retry_after=exc.retry_after)
    except (AuthenticationError, NoBalanceError, MissingTokenError) as exc:
        return Sent("pause", sent_at, error=NanoBananaError(
            f"Paused: {describe_error(exc)} Nothing was sent for the queued rows; fix it, "
            "then job.resume().", code=exc.code))
    except APIConnectionError as exc:
        return Sent("pause", sent_at, error=NanoBananaError(
            f"Paused: {describe_error(exc)} job.resume() tries again.", code=exc.code))
    except PossiblyBilledError as exc:
        if exc.task_id:
            return Sent("accepted", sent_at, task_id=exc.task_id, trace_id=exc.trace_id)
        return Sent("uncertain", sent_at, error=exc)
    except ServerError as exc:
        return Sent("uncertain", sent_at, error=exc)
    except NanoBananaError as exc:  # refused (4xx): nothing was billed
        return Sent("failed", sent_at, error=exc)
    return Sent("accepted", sent_at, task=task, task_id=task.id, trace_id=task.trace_id)
