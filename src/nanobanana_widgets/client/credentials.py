"""The token and base URL of a client, read at its first request (not at construction).

The token is registered with :mod:`nanobanana_widgets.service.secrets` when it is read, so
every server string parsed afterwards, and every error, has it replaced by ``***``.

``token`` defaults to ``$ACEDATACLOUD_API_TOKEN`` and the base URL to
``$ACEDATACLOUD_API_BASE_URL`` or ``https://api.acedata.cloud``. A loopback base URL without
a token gets a placeholder token: only a local emulator can live there, and it takes any.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from urllib.parse import urlsplit

from nanobanana_widgets.service.errors import (
    InvalidParameterError,
    MissingTokenError,
    NanoBananaError,
)
from nanobanana_widgets.service.protocol import BASE_URL_ENV, DEFAULT_BASE_URL, TOKEN_ENV
from nanobanana_widgets.service.secrets import register_secret

__all__ = ["LOOPBACK_PLACEHOLDER_TOKEN", "Credentials", "check_base_url", "is_loopback"]

LOOPBACK_PLACEHOLDER_TOKEN = "offline-emulator"
"""Sent when no token is set and the base URL is a loopback address (a local emulator)."""


class Credentials:
    """The token and base URL of one client, resolved once, at the first request."""

    def __init__(self, token: str | None, base_url: str | None) -> None:
        if base_url is not None:
            check_base_url(base_url)
        self._token_arg = token
        self._base_url_arg = base_url
        self._token: str | None = None
        self._base_url: str | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def token(self) -> str | None:
        """The resolved token (``None`` before the first request)."""
        return self._token

    @property
    def base_url(self) -> str:
        """The API base URL (from the argument, the environment, or the default)."""
        if self._base_url is not None:
            return self._base_url
        return (self._base_url_arg or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")

    @property
    def has_token(self) -> bool:
        """Whether a token is set (given, resolved, or in the environment)."""
        return bool(self._token or self._token_arg or os.environ.get(TOKEN_ENV))

    def resolve(self) -> tuple[str, str]:
        """The token and base URL, read at the first request (raises before any I/O)."""
        with self._lock:
            if self._closed:
                raise NanoBananaError("This client was closed; create a new Client.")
            if self._base_url is None:
                url = self._base_url_arg or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
                self._base_url = check_base_url(url)
            if self._token is None:
                raw = self._token_arg if self._token_arg is not None else os.environ.get(TOKEN_ENV)
                token = (raw or "").strip()
                if not token and is_loopback(self._base_url):
                    # Only a local emulator can live on loopback: it takes any token.
                    token = LOOPBACK_PLACEHOLDER_TOKEN
                if not token:
                    raise MissingTokenError()
                if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in token):
                    raise InvalidParameterError(
                        "token", "<hidden>", None,
                        hint=f"a token without spaces or control characters (check {TOKEN_ENV})",
                    )
                if token != LOOPBACK_PLACEHOLDER_TOKEN:
                    # From now on no server text keeps it: every answer is scrubbed.
                    register_secret(token)
                self._token = token
                if token != LOOPBACK_PLACEHOLDER_TOKEN:  # scrubbed from all text kept or shown
                    register_secret(token)
            return self._token, self._base_url

    def close(self) -> None:
        """Refuse every later :meth:`resolve` (a request under way finishes resolving first)."""
        with self._lock:
            self._closed = True


def is_loopback(url: str) -> bool:
    """True when ``url``'s host is this machine (127.0.0.0/8, ``localhost`` or ``::1``)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str) -> str:
    """``url`` without trailing slashes; raises :class:`InvalidParameterError` unless it is
    an http(s) URL with a host."""
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise InvalidParameterError(
            "base_url", url, None, hint="an http(s) URL such as https://api.acedata.cloud",
        )
    stripped = url.rstrip("/")
    if stripped.lower() in ("http:", "https:", "http:/", "https:/"):
        raise InvalidParameterError("base_url", url, None, hint="an http(s) URL with a host")
    return stripped
