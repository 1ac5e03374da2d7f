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
- **Read timeout, the call's deadline passing, connection reset or aborted after the
  request was sent, or a 2xx answer whose body cannot be read** (not JSON, nested 100,000
  levels deep, larger than 32 MiB, a deflate bomb): not sent again; raises
  :class:`~nanobanana_widgets.service.errors.PossiblyBilledError` (the original failure is
  its ``__cause__``; ``task_id`` is set when it could be found, even in a body that does
  not parse), so the task can be looked up later with ``Client.task(task_id)``.
- **Other 4xx** (bad parameters, authentication, balance, refused content, too large):
  never retried; raised as the mapped error class.
- **Task lookups** (``retrieve``, ``retrieve_batch``) cost nothing, so they are retried on
  connection errors, timeouts, 5xx, 429 and malformed bodies (bounded by ``max_retries``,
  with backoff).

**Deadlines.** Every call (one submit, one lookup, all its retries and waits included)
ends by its deadline, whatever the server does: the transport's exchange holds it for
headers and body alike, and no retry wait is started that would end after it.

Every answer is parsed by :func:`nanobanana_widgets.service.answers.parse_json` (bounded,
every string cleaned and scrubbed of registered secrets); headers quoted in an error (a
redirect's ``Location``) are cleaned the same way. The token is only ever sent in the
``authorization`` header.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from nanobanana_widgets.client.credentials import Credentials
from nanobanana_widgets.client.transport import Response, Transport, TransportError
from nanobanana_widgets.service import errors
from nanobanana_widgets.service.answers import (
    UnreadableAnswer,
    parse_json,
    records_in,
    task_id_in,
    task_id_in_text,
    trace_id_in_text,
)
from nanobanana_widgets.service.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    MalformedResponseError,
    NanoBananaError,
    PossiblyBilledError,
    RateLimitError,
    scrub_error,
)
from nanobanana_widgets.service.protocol import IMAGES_PATH, TASKS_PATH
from nanobanana_widgets.service.retry import RetryPolicy, failure_for_status, parse_retry_after
from nanobanana_widgets.service.text import clean_text, mask_url, short_url

__all__ = ["CONNECT_TIMEOUT", "DEADLINE_FACTOR", "ServiceCalls"]

logger = logging.getLogger("nanobanana_widgets.client")

CONNECT_TIMEOUT = 10.0
"""Seconds to open a connection (capped by the client's ``timeout``)."""

DEADLINE_FACTOR = 2.0
"""A call's default deadline, in multiples of the client's ``timeout``."""

TOO_LARGE = "response_too_large"
"""The ``code`` of a :class:`MalformedResponseError` for an answer over the size limit."""

_E = TypeVar("_E", bound=NanoBananaError)


class ServiceCalls:
    """Submits and lookups over a :class:`~nanobanana_widgets.client.transport.Transport`.

    ``policy``, ``timeout`` (the read timeout of a lookup, in seconds) and ``deadline`` (the
    longest one call may take in all, retries included; ``None``: ``DEADLINE_FACTOR`` times
    ``timeout``) may be replaced at any time; ``sleep(seconds)`` waits between attempts (the
    client's raises ``CancelledError`` once it is closed).
    """

    def __init__(self, transport: Transport, credentials: Credentials, *,
                 policy: RetryPolicy, timeout: float,
                 sleep: Callable[[float], None], deadline: float | None = None) -> None:
        self.transport = transport
        self.policy = policy
        self.timeout = timeout
        self.deadline = deadline
        self._credentials = credentials
        self._sleep = sleep

    @property
    def call_deadline(self) -> float:
        """Seconds one call may take in all (``deadline``, else ``DEADLINE_FACTOR`` × timeout)."""
        return self.deadline if self.deadline is not None else DEADLINE_FACTOR * self.timeout

    # -- submit ----------------------------------------------------------------------------

    def submit(self, payload: Mapping[str, Any], *, read_timeout: float,
               deadline: float | None = None, retry_rate_limit: bool = True
               ) -> dict[str, Any]:
        """POST a submit; retry only what certainly did not reach the service (or 429).

        ``deadline``: seconds the whole call may take (default :attr:`call_deadline`).
        ``retry_rate_limit=False``: a 429 raises :class:`RateLimitError` at once (its
        ``retry_after`` set), for a caller that paces its own submits.
        """
        token, base = self._credentials.resolve()
        url = base + IMAGES_PATH
        base = mask_url(base)  # from here on only shown: credentials in it are masked
        body = json.dumps(payload).encode()
        total = deadline if deadline is not None else self.call_deadline
        ends = time.monotonic() + total
        timeout = (min(CONNECT_TIMEOUT, self.timeout), read_timeout)
        for attempt in itertools.count():
            try:
                resp = self.transport.post(url, body, headers=_headers(token),
                                           timeout=timeout, deadline=ends,
                                           fresh_connection=True)
            except TransportError as exc:
                wait = self.policy.next_wait("submit", exc.failure, attempt,
                                             time_left=ends - time.monotonic())
                if wait is None:
                    err = self._unsent_submit(exc, base, attempt + 1, total)
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
                                         retry_after=_rate_limit_wait(err),
                                         time_left=ends - time.monotonic())
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

    def _unsent_submit(self, exc: TransportError, base: str, attempts: int,
                       total: float) -> NanoBananaError:
        """The error of a submit that got no usable answer and will not be sent again, with
        what caused it as its ``__cause__``."""
        err: NanoBananaError
        if exc.failure == "not_sent":
            cls = APITimeoutError if exc.timed_out else APIConnectionError
            within = f" within the deadline of {total:g} s" if exc.deadline else ""
            err = cls(
                f"Could not connect to {base}{within} after {attempts} attempt(s); nothing "
                "was sent. Check the network and ACEDATACLOUD_API_BASE_URL."
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
        status = exc.status_code
        if exc.failure == "malformed" and status is not None and 400 <= status < 500:
            err = errors.error_class_for(status, None)(
                f"The service refused the request (HTTP {status}) with an answer that cannot "
                "be read (too large or in an unknown encoding).", status_code=status)
            err.__cause__ = _cause(exc)
            return err
        if exc.failure == "malformed":
            what = ("The service's answer was larger than the client reads" if exc.too_large
                    else "The service's answer could not be decoded")
            cause: NanoBananaError = MalformedResponseError(
                f"{what} ({exc.detail}).", status_code=status,
                code=TOO_LARGE if exc.too_large else None)
            cause.__cause__ = _cause(exc)
        else:
            cause = self._connection_error(exc, base, total)
        if exc.deadline:
            what = (f"No complete answer arrived within the call's deadline of {total:g} s, "
                    "so the request was not sent again")
        elif exc.failure == "malformed":
            what = f"{what}, so the request was not sent again"
        elif exc.timed_out:
            what = ("The request was sent but no answer arrived within the read timeout, so "
                    "it was not sent again")
        else:
            what = "The connection broke after the request was sent, so it was not sent again"
        found = task_id_in_text(exc.head) if exc.head else None
        hint = (f" Look the task up later with client.task({found!r})." if found
                else " Check your recent tasks before retrying.")
        billed = PossiblyBilledError(
            f"{what}: it may have reached the service and been billed.{hint}",
            status_code=status, task_id=found,
            trace_id=trace_id_in_text(exc.head) if exc.head else None,
        )
        billed.__cause__ = cause
        return scrub_error(billed)

    def _accepted(self, resp: Response) -> dict[str, Any]:
        """The body of an accepted submit, or the error it carries; a body that cannot be
        read is :class:`PossiblyBilledError` (the job may exist) with the task id when one
        can be found, even in a body that does not parse."""
        raw = resp.content
        reason = ""
        try:
            body = parse_json(raw)
        except UnreadableAnswer as exc:
            body, reason = None, exc.reason
        task_id = task_id_in(body)
        if isinstance(body, dict) and body.get("success") is False and not (
                task_id and not _has_code(body)):
            # A refusal. (success: false with a task id and no error code is, per the
            # vendor's SDK, a hiccup of a task that is running: it is accepted below.)
            raise self._scrubbed(errors.error_from_body(body, status_code=resp.status_code))
        if isinstance(body, dict) and task_id:
            body["task_id"] = task_id
            return body
        found = task_id_in_text(raw)
        cause = MalformedResponseError(
            f"HTTP {resp.status_code} with {_describe_body(raw, reason)}.",
            status_code=resp.status_code,
        )
        hint = (f" Look the task up later with client.task({found!r})." if found
                else " Check your usage on platform.acedata.cloud before trying again.")
        err = PossiblyBilledError(
            "The service accepted the request but its answer could not be read, so it was not "
            "sent again; it may have been billed." + hint,
            status_code=resp.status_code, task_id=found, trace_id=trace_id_in_text(raw),
        )
        raise self._scrubbed(err) from cause

    # -- lookup ----------------------------------------------------------------------------

    def lookup(self, payload: Mapping[str, Any], *, batch: bool = False,
               deadline: float | None = None) -> dict[str, Any]:
        """POST to the tasks endpoint, retrying transient failures (lookups are free).

        The answer is returned with its records under ``items`` (every shape the vendor's
        CLI accepts: ``items``, ``data`` as a list or an object, a bare record). ``batch``:
        the answer must hold records. An answer too large to read is final
        (:class:`MalformedResponseError` with code ``response_too_large``). ``deadline``:
        seconds the whole call may take (default :attr:`call_deadline`).
        """
        token, base = self._credentials.resolve()
        url = base + TASKS_PATH
        base = mask_url(base)  # from here on only shown: credentials in it are masked
        body = json.dumps(payload).encode()
        total = deadline if deadline is not None else self.call_deadline
        ends = time.monotonic() + total
        timeout = (min(CONNECT_TIMEOUT, self.timeout), self.timeout)
        for attempt in itertools.count():
            retry_after: float | None = None
            err: NanoBananaError
            try:
                resp = self.transport.post(url, body, headers=_headers(token),
                                           timeout=timeout, deadline=ends)
            except TransportError as exc:
                if exc.too_large:
                    raise MalformedResponseError(
                        f"The task lookup's answer is larger than the client reads "
                        f"({exc.detail}).", status_code=exc.status_code, code=TOO_LARGE,
                    ) from _cause(exc)
                failure = exc.failure
                err = self._connection_error(exc, base, total)
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
                    answer, reason = _parse(resp.content)
                    if isinstance(answer, dict) and answer.get("success") is False \
                            and records_in(answer) is None:
                        raise self._scrubbed(errors.error_from_body(answer, status_code=status))
                    records = records_in(answer)
                    if isinstance(answer, dict) and records is not None:
                        return {**answer, "items": records}
                    if isinstance(answer, dict) and not batch and not answer:
                        return {}
                    failure = "malformed"
                    err = MalformedResponseError(
                        f"The task lookup answered HTTP {status} with "
                        f"{_describe_body(resp.content, reason)}.",
                        status_code=status,
                    )
            wait = self.policy.next_wait("lookup", failure, attempt, retry_after=retry_after,
                                         time_left=ends - time.monotonic())
            if wait is None:
                raise err
            logger.warning("Task lookup failed (%s); retrying in %.2f s (retry %d of %d).",
                           type(err).__name__, wait, attempt + 1, self.policy.max_retries)
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- errors ----------------------------------------------------------------------------

    def _scrubbed(self, error: _E) -> _E:
        return scrub_error(error)

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
        location = clean_text(short_url(resp.headers.get("location", "?"), 120))
        return self._scrubbed(APIError(
            f"The service answered with a redirect (HTTP {status}) to {location!r}; check "
            f"the base URL {base!r}.", status_code=status,
        ))

    def _connection_error(self, exc: TransportError, base: str,
                          total: float) -> APIConnectionError:
        """The package's error for a request that got no answer (``exc``'s cause chained)."""
        err: APIConnectionError
        if exc.deadline:
            err = APITimeoutError(
                f"No complete answer from {base} within the deadline of {total:g} s.")
        elif exc.timed_out:
            err = APITimeoutError(f"No answer from {base} within the timeout.")
        elif exc.failure == "malformed":
            err = APIConnectionError(f"The answer from {base} could not be decoded "
                                     f"({exc.detail}).")
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


def _has_code(body: Mapping[str, Any]) -> bool:
    error = body.get("error")
    return isinstance(error, Mapping) and bool(error.get("code"))


def _parse(raw: bytes) -> tuple[Any, str]:
    """``(parsed answer, "")`` or ``(None, why it cannot be read)``."""
    try:
        return parse_json(raw), ""
    except UnreadableAnswer as exc:
        return None, exc.reason


def _describe_body(raw: bytes, reason: str = "") -> str:
    if not raw.strip():
        return "an empty body"
    if b"<html" in raw[:500].lower():
        return "an HTML page"
    if reason:
        return f"a body that is not usable JSON ({reason})"
    return "JSON that lacks the expected fields"
