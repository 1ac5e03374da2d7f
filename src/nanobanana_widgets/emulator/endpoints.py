"""The emulator's API: what each request gets, per API.md.

``POST /nano-banana/images`` (and ``/gemini/images``) validates and makes a task, answering
at once (``async``/``callback_url``) or when it finishes; ``POST /nano-banana/tasks`` looks
tasks up (``retrieve``, ``retrieve_batch``); ``GET /files/<task>-<i>.png`` serves the images.
Queued or random faults (:meth:`EmulatorState.take_fault`) break requests on the way.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import urlsplit

from nanobanana_widgets.emulator.callbacks import Callbacks
from nanobanana_widgets.emulator.drawing import data_uri_size
from nanobanana_widgets.emulator.files import ImageFiles
from nanobanana_widgets.emulator.handler import BadBody, BodyTooLarge, Handler, error_body
from nanobanana_widgets.emulator.ratelimit import format_retry_after
from nanobanana_widgets.emulator.state import MAX_BATCH, TASK_FAULTS, EmulatorState, Fault, Task
from nanobanana_widgets.service.errors import InvalidParameterError
from nanobanana_widgets.service.models import DEFAULT_MODEL, MAX_IMAGE_BYTES, validate_request

__all__ = ["Endpoints"]

logger = logging.getLogger("nanobanana_widgets.emulator")

_IMAGES_PATHS: Final = frozenset({"/nano-banana/images", "/gemini/images"})
_TASKS_PATH: Final = "/nano-banana/tasks"

_HTML_502: Final = (
    b"<html><head><title>502 Bad Gateway</title></head><body>"
    b"<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>"
    b"</body></html>\n"
)


def _parse_json(body: bytes) -> tuple[Any, str | None]:
    """``(value, None)`` for a JSON body, ``(None, reason)`` for anything else."""
    try:
        return json.loads(body.decode("utf-8")), None
    except (UnicodeDecodeError, ValueError) as exc:
        return None, str(exc)


def _validate(payload: dict[str, Any]) -> tuple[int, str, str] | None:
    """``(status, code, message)`` of the first problem of an images request, else None."""
    if "async" in payload and not isinstance(payload["async"], bool):
        return 400, "bad_request", f"Invalid async: {payload['async']!r}. Expected a boolean."
    image_urls = payload.get("image_urls")
    if image_urls is not None and not isinstance(image_urls, list):
        return 400, "bad_request", "Invalid image_urls: expected a list of URLs."
    model = payload.get("model")
    count = payload.get("count")
    try:
        validate_request(
            action=payload.get("action"),  # type: ignore[arg-type]  # checked inside
            prompt=payload.get("prompt"),
            model=DEFAULT_MODEL if model is None else model,
            count=1 if count is None else count,
            aspect_ratio=payload.get("aspect_ratio"),
            resolution=payload.get("resolution"),
            image_urls=image_urls,
            callback_url=payload.get("callback_url"),
            images_field="image_urls",
        )
    except InvalidParameterError as exc:
        return 400, "bad_request", exc.message
    for i, url in enumerate(image_urls or []):
        if url.startswith("data:") and data_uri_size(url) > MAX_IMAGE_BYTES:
            return (
                413,
                "request_too_large",
                f"image_urls[{i}] is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB.",
            )
    return None


class Endpoints:
    """Answers every request of the emulator's server from its state, files and callbacks.

    ``tokens=None`` accepts any non-empty bearer token; a set accepts only those.
    """

    def __init__(
        self,
        state: EmulatorState,
        files: ImageFiles,
        callbacks: Callbacks,
        tokens: Iterable[str] | None,
    ) -> None:
        self._state = state
        self._files = files
        self._callbacks = callbacks
        self._tokens: frozenset[str] | None = None if tokens is None else frozenset(tokens)

    def respond(self, h: Handler) -> None:
        """Read the request's body and route it to its endpoint (404 ``no_api`` if none)."""
        path = urlsplit(h.path).path
        if len(path) > 1:
            path = path.rstrip("/")
        try:
            body = h.read_body()
        except BodyTooLarge:
            h.close_connection = True
            if path in _IMAGES_PATHS and h.command == "POST":
                self._state.count_submission()
            h.send_error_json(413, "request_too_large",
                              "The request body is larger than 64 MB.")
            return
        except BadBody as exc:
            h.send_error_json(400, "bad_request", f"Unreadable request body: {exc}.")
            return
        if h.command == "POST" and path in _IMAGES_PATHS:
            self._images(h, path, body)
        elif h.command == "POST" and path == _TASKS_PATH:
            self._tasks(h, path, body)
        elif h.command in ("GET", "HEAD") and path.startswith("/files/"):
            self._file(h, path)
        else:
            h.send_error_json(404, "no_api", f"No API at {h.command} {path}.")

    # --- the endpoints -------------------------------------------------------------------

    def _images(self, h: Handler, path: str, raw: bytes) -> None:
        payload, json_error = _parse_json(raw)
        self._state.count_submission(path, payload)
        if not self._check_auth(h):
            return
        if not self._within_limits(h):
            return
        fault = self._take_fault("images")
        task_fault: Fault | None = None
        if fault is not None:
            if fault.kind in TASK_FAULTS:
                task_fault = fault
            elif self._apply_transport_fault(h, fault):
                return
        if json_error is not None or not isinstance(payload, dict):
            if task_fault is not None:
                self._state.put_back(task_fault)
            reason = json_error or "the body must be a JSON object"
            h.send_error_json(400, "bad_request", f"Invalid JSON body: {reason}.")
            return
        problem = _validate(payload)
        if problem is not None:
            if task_fault is not None:
                self._state.put_back(task_fault)
            status, code, message = problem
            h.send_error_json(status, code, message)
            return

        task = self._state.new_task(payload, task_fault.kind if task_fault else None)
        callback_url = payload.get("callback_url")
        if isinstance(callback_url, str):
            self._callbacks.register(task, callback_url)
        if payload.get("async") is True or isinstance(callback_url, str):
            h.send_json(200, {"success": True, "task_id": task.id, "trace_id": task.trace_id})
            return
        self._answer_when_finished(h, task)

    def _answer_when_finished(self, h: Handler, task: Task) -> None:
        """The synchronous answer: wait for the task, then send its response."""
        stopping = self._state.stopping
        while True:
            now = time.time()
            if task.finished(now):
                break
            if stopping.is_set():
                h.close_connection = True  # the server is stopping: hang up without a word
                return
            remaining = task.finish_at - now
            task.done.wait(min(remaining, 0.5) if math.isfinite(remaining) else 0.5)
        self._state.settle(time.time())
        response = task.response(self._state.base_url)
        if response.get("success"):
            h.send_json(200, response)
            return
        code = response["error"]["code"]
        h.send_json(403 if code == "forbidden" else 500, response)

    def _tasks(self, h: Handler, path: str, raw: bytes) -> None:
        payload, json_error = _parse_json(raw)
        self._state.count_lookup(path, payload)
        if not self._check_auth(h):
            return
        fault = self._take_fault("tasks")
        if fault is not None and self._apply_transport_fault(h, fault):
            return
        if json_error is not None or not isinstance(payload, dict):
            problem = json_error or "the body must be a JSON object"
            h.send_error_json(400, "bad_request", f"Invalid JSON body: {problem}.")
            return
        action = payload.get("action")
        if action == "retrieve":
            task_id = payload.get("id")
            if not isinstance(task_id, str) or not task_id:
                h.send_error_json(400, "bad_request", "Invalid id: expected a task id string.")
                return
            record = self._state.lookup(task_id)
            if record is None:
                h.send_error_json(404, "not_found", f"No task with id {task_id!r}.")
                return
            h.send_json(200, record)
        elif action == "retrieve_batch":
            ids = payload.get("ids")
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                h.send_error_json(400, "bad_request",
                                  "Invalid ids: expected a list of task id strings.")
                return
            if len(ids) > MAX_BATCH:
                h.send_error_json(400, "bad_request",
                                  f"Too many ids: {len(ids)}; at most {MAX_BATCH} per request.")
                return
            items = self._state.lookup_batch(ids)
            h.send_json(200, {"items": items, "count": len(items)})
        else:
            h.send_error_json(
                400, "bad_request",
                f"Invalid action: {action!r}. Allowed values: retrieve, retrieve_batch.",
            )

    def _file(self, h: Handler, path: str) -> None:
        if h.command == "GET":
            self._state.count_download()
        fault = self._take_fault("files")
        if fault is not None and self._apply_transport_fault(h, fault):
            return
        data = self._files.get(path)
        if data is None:
            h.send_error_json(404, "not_found", f"No file at {path}.")
            return
        h.send(200, data, content_type="image/png",
               headers={"Cache-Control": "public, max-age=86400"})

    # --- on the way ----------------------------------------------------------------------

    def _take_fault(self, endpoint: str) -> Fault | None:
        """The fault this request meets, if any (queued first, then perhaps a random one)."""
        return self._state.take_fault(endpoint)

    def _within_limits(self, h: Handler) -> bool:
        """Whether the account's limits admit this submit; answers 429 if not (see
        :mod:`nanobanana_widgets.emulator.ratelimit`). Nothing is billed for a refusal."""
        state = self._state
        limiter = state.limiter
        if not limiter.active:
            return True
        refusal = limiter.admit(state.pending_count(), state.next_finish_in)
        if refusal is None:
            return True
        message = ("Too many requests; slow down." if refusal.reason == "rate" else
                   "Too many tasks running at once; wait for some to finish.")
        h.send_json(429, error_body("too_many_requests", message),
                    headers={"Retry-After": format_retry_after(refusal.retry_after)})
        return False

    def _check_auth(self, h: Handler) -> bool:
        """Whether the request carries an accepted token; answers 401 if not."""
        token = h.bearer_token()
        if token is None:
            h.send_error_json(
                401, "invalid_token",
                "Missing token: send an 'authorization: Bearer <token>' header.",
            )
            return False
        if self._tokens is not None and token not in self._tokens:
            h.send_error_json(401, "invalid_token", "The token is invalid.")
            return False
        return True

    def _apply_transport_fault(self, h: Handler, fault: Fault) -> bool:
        """Answer (or break) the request as ``fault`` says; ``True`` if it is done with."""
        kind = fault.kind
        logger.debug("injecting fault %s", kind)
        if kind == "slow_headers":
            stopping = self._state.stopping
            stopping.wait(fault.delay)
            if stopping.is_set():
                h.close_connection = True
                return True
            return False
        if kind == "reset":
            h.reset()
        elif kind == "rate_limit":
            h.send_json(
                429,
                error_body("too_many_requests", "Too many requests; slow down."),
                headers={"Retry-After": f"{fault.retry_after:g}"},
            )
        elif kind == "server_error":
            h.send_error_json(500, "api_error", "Internal server error.")
        elif kind == "forbidden":
            h.send_error_json(403, "forbidden", "The image provider refused this content.")
        elif kind == "used_up":
            h.send_error_json(403, "used_up", "Your balance is used up; top it up.")
        elif kind == "unauthorized":
            h.send_error_json(401, "invalid_token", "The token is invalid.")
        elif kind == "malformed_json":
            h.send(200, b'{"success": true, "task_id": "trunc')
        elif kind == "html_error":
            h.send(502, _HTML_502, content_type="text/html")
        elif kind == "empty_body":
            h.send(502, b"", content_type=None)
        else:  # a task-level fault on an endpoint without tasks: nothing to do
            return False
        return True
