"""The package's exceptions: one root, one class per kind of failure.

Server refusals are mapped from the HTTP status and ``error.code`` of API.md's table.
Every error carries ``status_code``, ``code``, ``message`` and ``trace_id`` (``None`` when
not known). Errors caused by the caller's input are also ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, TypeVar

from nanobanana_widgets.service.answers import UnreadableAnswer, parse_json
from nanobanana_widgets.service.secrets import scrub
from nanobanana_widgets.service.shown import notebook_lines
from nanobanana_widgets.service.status import reason_in
from nanobanana_widgets.service.text import clean_text, short_repr, shorten

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CancelledError",
    "ContentRefusedError",
    "DownloadError",
    "ImageInputError",
    "InvalidParameterError",
    "MalformedResponseError",
    "MissingTokenError",
    "NanoBananaError",
    "NoBalanceError",
    "NotFoundError",
    "PossiblyBilledError",
    "RateLimitError",
    "RequestTooLargeError",
    "SaveError",
    "ServerError",
    "TaskFailedError",
    "WaitTimeoutError",
    "describe_error",
    "error_from_body",
    "error_from_response",
    "scrub_error",
]

MAX_SERVER_MESSAGE: Final = 500
"""Most characters of a server's own words quoted in an error message."""


class NanoBananaError(Exception):
    """Root of every error this package raises."""

    default_message = "The Nano Banana request failed."

    def __init__(
        self,
        message: str | None = None,
        *,
        status_code: int | None = None,
        code: str | None = None,
        trace_id: str | None = None,
        task_id: str | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.status_code = status_code
        self.code = code
        self.trace_id = trace_id
        self.task_id = task_id
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = [self.message]
        details = []
        if self.status_code is not None:
            details.append(f"HTTP {self.status_code}")
        if self.code:
            details.append(f"code {self.code}")
        if self.task_id:
            details.append(f"task {self.task_id}")
        if self.trace_id:
            details.append(f"trace id {self.trace_id}")
        if details:
            parts.append(f"({', '.join(details)})")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: the error's class and message, the
        user's line that led to it and how to see the full traceback (``%tb verbose``)."""
        return notebook_lines(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (type(self), self.message, self.status_code, self.code, self.trace_id, self.task_id),
            self.__dict__,
        )


def _rebuild(
    cls: type[NanoBananaError],
    message: str,
    status_code: int | None,
    code: str | None,
    trace_id: str | None,
    task_id: str | None,
) -> NanoBananaError:
    err = cls.__new__(cls)
    NanoBananaError.__init__(
        err, message, status_code=status_code, code=code, trace_id=trace_id, task_id=task_id
    )
    return err


# --- the caller's mistakes -------------------------------------------------------------


class InvalidParameterError(NanoBananaError, ValueError):
    """A request parameter is not acceptable; nothing was sent."""

    def __init__(
        self,
        field: str,
        value: Any,
        allowed: Iterable[Any] | None,
        *,
        hint: str | None = None,
    ) -> None:
        self.field = field
        self.value = value
        self.allowed = tuple(allowed) if allowed is not None else None
        shown = short_repr(value)
        message = f"Invalid {field}: {shown}."
        if self.allowed:
            message += " Allowed values: " + ", ".join(str(a) for a in self.allowed) + "."
        if hint:
            message += f" Expected {hint}."
        super().__init__(message, code="invalid_parameter")


class ImageInputError(NanoBananaError, ValueError):
    """An input image could not be used (unreadable, not an image, truncated, too big)."""

    def __init__(self, source: str, problem: str, *, hint: str | None = None) -> None:
        self.source = source
        self.problem = problem
        message = f"Input image {source}: {problem}."
        if hint:
            message += f" {hint}"
        super().__init__(message, code="invalid_image")


class MissingTokenError(NanoBananaError):
    """No API token was given or found in the environment."""

    default_message = (
        "No API token. Set the environment variable ACEDATACLOUD_API_TOKEN "
        "(get a token at https://platform.acedata.cloud), or pass Client(token=...). "
        "To work offline, start the emulator: "
        "`nanobanana_widgets.use_emulator()` in Python, or "
        "`python -m nanobanana_widgets.emulator` and point ACEDATACLOUD_API_BASE_URL at it."
    )

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, code="no_token")


# --- the service's refusals ------------------------------------------------------------


class APIError(NanoBananaError):
    """The service answered with an error."""


class BadRequestError(APIError, ValueError):
    """400: the service rejected the request's parameters."""

    default_message = "The service rejected the request as invalid."


class AuthenticationError(APIError):
    """401: the token is missing, invalid or expired."""

    default_message = (
        "The API token was refused. Check ACEDATACLOUD_API_TOKEN "
        "(tokens are at https://platform.acedata.cloud)."
    )


class NoBalanceError(APIError):
    """403 ``used_up``: the account has no balance left."""

    default_message = "The account has no balance left; top it up on platform.acedata.cloud."


class ContentRefusedError(APIError):
    """403 ``forbidden``: the provider refused the content (nothing was billed)."""

    default_message = (
        "The image provider refused this content (safety filter); nothing was billed. "
        "Rephrase the prompt or use other input images."
    )


class NotFoundError(APIError):
    """404: unknown endpoint or task."""

    default_message = "Not found: the endpoint or task does not exist."


class RequestTooLargeError(APIError, ValueError):
    """413: the request body is too large (e.g. an input image over 10 MB)."""

    default_message = "The request is too large: each input image must be under 10 MB."


class RateLimitError(APIError):
    """429: rate limited (after the client's bounded retries)."""

    default_message = "Rate limited by the service; wait a little and try again."

    def __init__(
        self, message: str | None = None, *, retry_after: float | None = None, **kwargs: Any
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class ServerError(APIError):
    """5xx: the service (or a proxy in front of it) failed."""

    default_message = "The service had an internal error."


class MalformedResponseError(APIError):
    """The service answered with something that is not the documented JSON."""

    default_message = "The service sent a response that is not the expected JSON."


class TaskFailedError(APIError):
    """A task finished without images, for a reason not covered by a more specific class."""

    default_message = "The task finished without producing images."


class PossiblyBilledError(NanoBananaError):
    """A submit may have reached the service, so it was not sent again.

    The request may have been billed. If ``task_id`` is set, look the task up later with
    ``Client.task(task_id)``. The original failure is the exception's ``__cause__``.
    """

    default_message = (
        "The request may have reached the service and been billed, so it was not sent again."
    )


# --- transport and waiting -------------------------------------------------------------


class APIConnectionError(NanoBananaError):
    """The service could not be reached."""

    default_message = "Could not connect to the service."


class APITimeoutError(APIConnectionError, TimeoutError):
    """A network operation took longer than its timeout."""

    default_message = "The service did not answer in time."


class WaitTimeoutError(NanoBananaError, TimeoutError):
    """A task was still running at the wait deadline; it may still finish later."""

    default_message = "The task did not finish before the deadline; it may still finish later."


class CancelledError(NanoBananaError):
    """Waiting was cancelled by the user (the task itself may still run and be billed)."""

    default_message = "Cancelled."


class DownloadError(NanoBananaError):
    """A result image could not be downloaded or is not a valid image."""

    default_message = "Could not download the image."


class SaveError(NanoBananaError, OSError):
    """A result image could not be written to a file (the folder cannot be written, the
    disk is full, the name is not a valid path)."""

    default_message = "Could not save the image."


# --- mapping ---------------------------------------------------------------------------

_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    413: RequestTooLargeError,
    429: RateLimitError,
}

_BY_CODE: dict[str, type[APIError]] = {
    "used_up": NoBalanceError,
    "forbidden": ContentRefusedError,
    "invalid_token": AuthenticationError,
    "token_expired": AuthenticationError,
    "no_api": NotFoundError,
    "request_too_large": RequestTooLargeError,
    "too_many_requests": RateLimitError,
    "api_error": ServerError,
    "bad_request": BadRequestError,
    "api_not_implemented": BadRequestError,
    "disabled": BadRequestError,
    "no_token": AuthenticationError,
}


def error_class_for(status_code: int | None, code: str | None) -> type[APIError]:
    """The error class for an HTTP status and an ``error.code`` (status ``None``: in a task)."""
    if status_code == 401:
        return AuthenticationError
    if status_code == 403:
        return _BY_CODE.get(code or "", APIError) if code in ("used_up", "forbidden") else APIError
    if status_code in _BY_STATUS:
        return _BY_STATUS[status_code]
    if status_code is not None and status_code >= 500:
        return ServerError
    if status_code is not None and status_code >= 400:
        return BadRequestError
    return _BY_CODE.get(code or "", TaskFailedError)


def error_from_body(
    body: Mapping[str, Any] | None,
    *,
    status_code: int | None = None,
    trace_id: str | None = None,
    task_id: str | None = None,
) -> APIError:
    """Build the mapped error from a decoded error body such as API.md's.

    The message is ``error.message``, ``error.detail``, a bare ``error`` string,
    ``message``, ``failure_reason`` or ``fail_reason`` (the vendor SDK's order), cleaned and
    cut to :data:`MAX_SERVER_MESSAGE` characters.
    """
    code: str | None = None
    message: str | None = None
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):
            raw_code = err.get("code")
            code = _field(raw_code) if isinstance(raw_code, (str, int)) else None
        message = _reason(body)
        raw_trace = body.get("trace_id")
        if trace_id is None and isinstance(raw_trace, str):
            trace_id = _field(raw_trace)
        raw_task = body.get("task_id")
        if task_id is None and isinstance(raw_task, str):
            task_id = _field(raw_task)
    cls = error_class_for(status_code, code)
    if message:
        message = _sentence(shorten(" ".join(message.split()), MAX_SERVER_MESSAGE))
        if cls.default_message and cls.default_message not in message:
            message = f"{cls.default_message} The service said: {message}"
    return cls(message, status_code=status_code, code=code, trace_id=trace_id, task_id=task_id)


def _reason(body: Mapping[str, Any]) -> str | None:
    found = reason_in(body)
    return clean_text(found) if found is not None else None


def _field(value: str | int) -> str | None:
    """A code or an id from a server, cleaned and cut short (``None`` when blank)."""
    text = shorten(clean_text(str(value)).strip(), 200)
    return text or None


def error_from_response(
    status_code: int,
    text: str,
    *,
    content_type: str | None = None,
    retry_after: float | None = None,
) -> APIError:
    """Build the mapped error from a raw HTTP error response (JSON, HTML or empty).

    ``text`` is read with :func:`~nanobanana_widgets.service.answers.parse_json` (bounded,
    cleaned), so a body nested 100,000 levels deep is just "a body that is not JSON".
    """
    body: Any = None
    try:
        body = parse_json(text) if text.strip() else None
    except UnreadableAnswer:
        body = None
    if isinstance(body, Mapping):
        err = error_from_body(body, status_code=status_code)
    else:
        cls = error_class_for(status_code, None)
        what = (
            "an empty body"
            if not text.strip()
            else (
                "an HTML page"
                if "html" in (content_type or "").lower() or "<html" in text[:500].lower()
                else "a body that is not JSON"
            )
        )
        hint = (
            " This usually comes from a proxy or gateway in front of the service; try again later."
        )
        err = cls(
            f"{cls.default_message} The service answered HTTP {status_code} with {what}.{hint}",
            status_code=status_code,
        )
    if isinstance(err, RateLimitError):
        err.retry_after = retry_after
    return err


_E = TypeVar("_E", bound=NanoBananaError)


def scrub_error(error: _E) -> _E:
    """``error`` with every registered secret replaced by ``***`` in its message, code and
    ids (:func:`~nanobanana_widgets.service.secrets.scrub`); returns it."""
    cleaned = scrub(error.message)
    if cleaned != error.message:
        error.message = cleaned
        error.args = (cleaned,)
    for name in ("code", "trace_id", "task_id"):
        value = getattr(error, name, None)
        if isinstance(value, str):
            setattr(error, name, scrub(value))
    return error


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def not_confirmed_error(what: str, name: str, paid: int,
                        max_calls: int | None) -> NanoBananaError:
    """The error of waiting for a run that waits for its cost to be confirmed (it would
    never end): ``what`` names the run (``"grid"``), ``name`` what the user's code calls it
    (``"grid"``, ``"ab"``, ``"job"``)."""
    return NanoBananaError(
        f"This {what} has not started: it would make {paid} paid generations, more than "
        f"max_calls={max_calls}. Call {name}.confirm() (or click 'Run {paid} paid "
        f"generations') to start it, or {name}.cancel().", code="not_confirmed")


def describe_error(exc: BaseException) -> str:
    """The exception in plain words: its message (with trace id when known), no traceback."""
    if isinstance(exc, NanoBananaError):
        return str(exc)
    text = str(exc).strip()
    name = type(exc).__name__
    if isinstance(exc, (OSError, ValueError, TypeError)) and text:
        return f"{text} ({name})"
    return f"Unexpected error ({name}): {text}" if text else f"Unexpected error ({name})."


# --- the history (added for issue 11; kept at the end of the file) ---------------------


class HistoryError(NanoBananaError):
    """The history database or its folder could not be used; ``path`` names the file."""

    default_message = "The history could not be used."

    def __init__(self, message: str | None = None, *, path: str | None = None,
                 detail: str | None = None) -> None:
        self.path = path
        self.detail = detail
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_history_error, (type(self), self.message, self.path, self.detail),
                self.__dict__)


def _rebuild_history_error(cls: type[HistoryError], message: str, path: str | None,
                           detail: str | None) -> HistoryError:
    return cls(message, path=path, detail=detail)


class HistoryDamagedError(HistoryError):
    """The history file is not a database, or is truncated or corrupt (it is left as it is)."""

    default_message = "The history file is damaged."


class HistoryVersionError(HistoryError):
    """The history was written by a newer version of the package (its schema is newer)."""

    default_message = "The history was written by a newer nanobanana-widgets."


class HistoryAccessError(HistoryError):
    """The history's folder or file cannot be opened or created (permissions, read-only)."""

    default_message = "The history folder cannot be opened or written."


class HistoryBusyError(HistoryError):
    """Another process held the history's write lock for longer than ``busy_timeout``."""

    default_message = "The history is locked by another process."


class HistoryWriteError(HistoryError):
    """A write to the history failed (a full disk, an I/O error)."""

    default_message = "The history could not be written."


class HistoryWarning(UserWarning):
    """Shown in the cell output when the history needs the user's attention: a record that
    could not be saved yet, a damaged history set aside, an export that skipped a file."""


__all__ += [
    "HistoryAccessError",
    "HistoryBusyError",
    "HistoryDamagedError",
    "HistoryError",
    "HistoryVersionError",
    "HistoryWarning",
    "HistoryWriteError",
]
