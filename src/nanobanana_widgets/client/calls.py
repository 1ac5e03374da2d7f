"""The two calls of the protocol, submit and look up, on the shared retry policy.

A generation is paid for, so a submit is sent again only when it certainly was not billed
(:mod:`nanobanana_widgets.service.retry` decides; this module applies it):

- **429 Too Many Requests** (refused, nothing billed): retried with jittered exponential
  backoff that honours ``Retry-After`` (each wait capped at 30 s), at most ``max_retries``
  times; then :class:`~nanobanana_widgets.service.errors.RateLimitError`.
- **Connection refused / could not be opened / connect timeout** (the request never left
  this machine): retried with the same backoff, at most ``max_retries`` times; then
  :class:`~nanobanana_widgets.service.errors.APIConnectionError`.
- **5xx on a submit**: not sent again, because the service may have started (and billed)
  the job; raises :class:`~nanobanana_widgets.service.errors.ServerError` saying so.
- **Read timeout, connection reset or aborted after the request was sent, or a 2xx answer
  whose body is not the expected JSON**: not sent again; raises
  :class:`~nanobanana_widgets.service.errors.PossiblyBilledError` (the original failure is
  its ``__cause__``; ``task_id`` is set when it could be read), so the task can be looked up
  later with ``Client.task(task_id)``.
- **Other 4xx** (bad parameters, authentication, balance, refused content, too large):
  never retried; raised as the mapped error class.
- **Task lookups** (``retrieve``, ``retrieve_batch``) cost nothing, so they are retried on
  connection errors, timeouts, 5xx, 429 and malformed bodies (bounded by ``max_retries``,
  with backoff).

The token is only ever sent in the ``authorization`` header, and is replaced by ``***`` in
any server text echoed into an error (:func:`scrub`).
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from nanobanana_widgets.client.credentials import Credentials
from nanobanana_widgets.client.transport import Response, Transport, TransportError
from nanobanana_widgets.service import errors
from nanobanana_widgets.service.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    MalformedResponseError,
    NanoBananaError,
    PossiblyBilledError,
    RateLimitError,
)
from nanobanana_widgets.service.protocol import IMAGES_PATH, TASKS_PATH
from nanobanana_widgets.service.retry import RetryPolicy, failure_for_status, parse_retry_after

__all__ = ["CONNECT_TIMEOUT", "ServiceCalls", "scrub"]

logger = logging.getLogger("nanobanana_widgets.client")

CONNECT_TIMEOUT = 10.0
"""Seconds to open a connection (capped by the client's ``timeout``)."""

_E = TypeVar("_E", bound=NanoBananaError)
_TASK_ID_RE = re.compile(r'"task_id"\s*:\s*"([^"\\]{1,200})"')
_TRACE_ID_RE = re.compile(r'"trace_id"\s*:\s*"([^"\\]{1,200})"')


def scrub(error: _E, token: str | None) -> _E:
    """Replace ``token`` in everything built from server text (message, code, ids).

    A short token (under 8 characters, never a real one) is replaced only as a whole
    word, so that it cannot mangle ordinary words in the message.
    """
    if not token:
        return error
    pattern = re.compile(
        re.escape(token) if len(token) >= 8 else rf"(?<![\w-]){re.escape(token)}(?![\w-])"
    )
    cleaned = pattern.sub("***", error.message)
    if cleaned != error.message:
        error.message = cleaned
        error.args = (error.message,)
    for name in ("code", "trace_id", "task_id"):
        value = getattr(error, name, None)
        if isinstance(value, str):
            setattr(error, name, pattern.sub("***", value))
    return error


class ServiceCalls:
    """Submits and lookups over a :class:`~nanobanana_widgets.client.transport.Transport`.

    ``policy`` and ``timeout`` (the read timeout of a lookup, in seconds) may be replaced
    at any time; ``sleep(seconds)`` waits between attempts (the client's raises
    ``CancelledError`` once it is closed).
    """

    def __init__(self, transport: Transport, credentials: Credentials, *,
                 policy: RetryPolicy, timeout: float,
                 sleep: Callable[[float], None]) -> None:
        self.transport = transport
        self.policy = policy
        self.timeout = timeout
        self._credentials = credentials
        self._sleep = sleep

    # -- submit ----------------------------------------------------------------------------

    def submit(self, payload: Mapping[str, Any], *, read_timeout: float,
               retry_rate_limit: bool = True) -> dict[str, Any]:
        """POST a submit; retry only what certainly did not reach the service (or 429).

        ``retry_rate_limit=False``: a 429 raises :class:`RateLimitError` at once (its
        ``retry_after`` set), for a caller that paces its own submits.
        """
        token, base = self._credentials.resolve()
        url = base + IMAGES_PATH
        body = json.dumps(payload).encode()
        timeout = (min(CONNECT_TIMEOUT, self.timeout), read_timeout)
        for attempt in itertools.count():
            try:
                resp = self.transport.post(url, body, headers=_headers(token),
                                           timeout=timeout, fresh_connection=True)
            except TransportError as exc:
                wait = self.policy.next_wait("submit", exc.failure, attempt)
                if wait is None:
                    err = self._unsent_submit(exc, base, attempt + 1)
                    raise err from err.__cause__
                logger.warning("Could not connect to %s (attempt %d of %d); retrying "
                               "in %.2f s.", base, attempt + 1, self.policy.max_retries + 1,
                               wait)
                self._sleep(wait)
                continue
            failure = failure_for_status(resp.status_code)
            if failure is None:
                return self._accepted(resp)
            err = self._refusal(resp, base, lookup=False)
            wait = self.policy.next_wait("submit", failure, attempt,
                                         retry_after=_rate_limit_wait(err))
            if failure == "rate_limited" and not retry_rate_limit:
                raise err
            if wait is not None:
                logger.warning("Rate limited (429) on submit; retrying in %.2f s "
                               "(retry %d of %d).", wait, attempt + 1, self.policy.max_retries)
                self._sleep(wait)
                continue
            if failure == "rate_limited":
                _append(err, f" Gave up after {attempt + 1} attempts.")
            elif failure == "server_error":
                _append(err, " The request was not sent again because it may have reached "
                             "the service and been billed.")
            raise err
        raise AssertionError("unreachable")  # pragma: no cover

    def _unsent_submit(self, exc: TransportError, base: str, attempts: int) -> NanoBananaError:
        """The error of a submit that got no answer and will not be sent again, with what
        caused it as its ``__cause__``."""
        err: NanoBananaError
        if exc.failure == "not_sent":
            cls = APITimeoutError if exc.timed_out else APIConnectionError
            err = cls(
                f"Could not connect to {base} after {attempts} attempt(s); nothing was sent. "
                "Check the network and ACEDATACLOUD_API_BASE_URL."
            )
            err.__cause__ = _cause(exc)
            return err
        if exc.failure == "tls":
            err = APIConnectionError(
                f"TLS failed while connecting to {base}; the request was not sent. "
                "Check the base URL and certificates."
            )
            err.__cause__ = _cause(exc)
            return err
        if exc.timed_out:
            what = "The request was sent but no answer arrived within the read timeout"
        else:
            what = "The connection broke after the request was sent"
        billed = PossiblyBilledError(
            f"{what}, so it was not sent again: it may have reached the service and been "
            "billed. Check your recent tasks before retrying."
        )
        billed.__cause__ = self._connection_error(exc, base)
        return billed

    def _accepted(self, resp: Response) -> dict[str, Any]:
        """The body of an accepted submit, or the error it carries; a body that cannot be
        read is :class:`PossiblyBilledError` (the job may exist)."""
        text = resp.text
        body = _loads(text)
        if isinstance(body, dict) and body.get("success") is False:
            raise self._scrubbed(errors.error_from_body(body, status_code=resp.status_code))
        if isinstance(body, dict) and isinstance(body.get("task_id"), str) and body["task_id"]:
            return body
        found = _TASK_ID_RE.search(text)
        trace = _TRACE_ID_RE.search(text)
        cause = MalformedResponseError(
            f"HTTP {resp.status_code} with a body that is not the expected JSON "
            f"({_describe_body(text)}).",
            status_code=resp.status_code,
        )
        task_id = found.group(1) if found else None
        hint = (f" Look the task up later with client.task({task_id!r})." if task_id
                else " Check your usage on platform.acedata.cloud before trying again.")
        err = PossiblyBilledError(
            "The service accepted the request but its answer could not be read, so it was not "
            "sent again; it may have been billed." + hint,
            status_code=resp.status_code, task_id=task_id,
            trace_id=trace.group(1) if trace else None,
        )
        raise self._scrubbed(err) from cause

    # -- lookup ----------------------------------------------------------------------------

    def lookup(self, payload: Mapping[str, Any], *, batch: bool = False) -> dict[str, Any]:
        """POST to the tasks endpoint, retrying transient failures (lookups are free).

        ``batch``: the answer must hold an ``items`` list.
        """
        token, base = self._credentials.resolve()
        url = base + TASKS_PATH
        body = json.dumps(payload).encode()
        timeout = (min(CONNECT_TIMEOUT, self.timeout), self.timeout)
        for attempt in itertools.count():
            retry_after: float | None = None
            err: NanoBananaError
            try:
                resp = self.transport.post(url, body, headers=_headers(token), timeout=timeout)
            except TransportError as exc:
                failure = exc.failure
                err = self._connection_error(exc, base)
            else:
                status = resp.status_code
                found = failure_for_status(status)
                if found == "refused":
                    raise self._refusal(resp, base, lookup=True)
                if found is not None:
                    failure = found
                    err = self._error_from(resp)
                    retry_after = _rate_limit_wait(err)
                else:
                    text = resp.text
                    answer = _loads(text)
                    if isinstance(answer, dict) and answer.get("success") is False:
                        raise self._scrubbed(errors.error_from_body(answer, status_code=status))
                    if isinstance(answer, dict) and (
                        not batch or isinstance(answer.get("items"), list)
                    ):
                        return answer
                    failure = "malformed"
                    err = MalformedResponseError(
                        f"The task lookup answered HTTP {status} with {_describe_body(text)}.",
                        status_code=status,
                    )
            wait = self.policy.next_wait("lookup", failure, attempt, retry_after=retry_after)
            if wait is None:
                raise err
            logger.warning("Task lookup failed (%s); retrying in %.2f s (retry %d of %d).",
                           type(err).__name__, wait, attempt + 1, self.policy.max_retries)
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- errors ----------------------------------------------------------------------------

    def _scrubbed(self, error: _E) -> _E:
        return scrub(error, self._credentials.token)

    def _error_from(self, resp: Response) -> APIError:
        """The mapped error of an answer that is not a success."""
        err = errors.error_from_response(
            resp.status_code, resp.text, content_type=resp.headers.get("content-type"),
            retry_after=parse_retry_after(resp.headers.get("retry-after")),
        )
        return self._scrubbed(err)

    def _refusal(self, resp: Response, base: str, *, lookup: bool) -> APIError:
        """The error of a final answer: a redirect (the base URL is wrong) or the mapped
        error of any other status."""
        status = resp.status_code
        if not 300 <= status < 400:
            return self._error_from(resp)
        if lookup:
            return APIError(
                f"The service answered the task lookup with a redirect (HTTP {status}); "
                f"check the base URL {base!r}.", status_code=status,
            )
        return APIError(
            f"The service answered with a redirect (HTTP {status}) to "
            f"{resp.headers.get('location', '?')!r}; check the base URL {base!r}.",
            status_code=status,
        )

    def _connection_error(self, exc: TransportError, base: str) -> APIConnectionError:
        """The package's error for a request that got no answer (``exc``'s cause chained)."""
        err: APIConnectionError
        if exc.timed_out:
            err = APITimeoutError(f"No answer from {base} within the timeout.")
        else:
            err = APIConnectionError(
                f"The connection to {base} failed ({exc.detail or type(exc).__name__})."
            )
        err.__cause__ = _cause(exc)
        return err


def _headers(token: str) -> dict[str, str]:
    return {
        "accept": "application/json",
        "content-type": "application/json",
        "authorization": f"Bearer {token}",
    }


def _cause(exc: TransportError) -> BaseException:
    """The library's exception behind a transport failure (the failure itself if none)."""
    return exc.__cause__ if exc.__cause__ is not None else exc


def _rate_limit_wait(err: NanoBananaError) -> float | None:
    return err.retry_after if isinstance(err, RateLimitError) else None


def _append(err: NanoBananaError, text: str) -> None:
    err.message += text
    err.args = (err.message,)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _describe_body(text: str) -> str:
    if not text.strip():
        return "an empty body"
    if "<html" in text[:500].lower():
        return "an HTML page"
    if _loads(text) is None:
        return "a body that is not valid JSON"
    return "JSON that lacks the expected fields"
