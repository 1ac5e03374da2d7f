"""Links that outlive the kernel: which URLs may go into an output, and relative paths to
files that a Jupyter server (or a browser opening a saved page) can reach.

An output is read later, elsewhere: in a notebook reopened without its kernel, in an
nbconvert export, on Binder or JupyterHub, where ``127.0.0.1`` is the server, not the
reader's machine. So a link in an output is either

* a **relative path** to a file beside the notebook (or beside a report), which JupyterLab
  resolves to its ``/files/`` route and a browser resolves next to a saved HTML page, or
* an ``http(s)`` URL on a host that is **not** a loopback address.

Jupyter's file handler refuses hidden files (``ContentsManager.allow_hidden`` is off by
default), so a relative path with a component starting with ``.`` (the history's default
``.nanobanana/`` folder) is never used as a link: :func:`served_path` says so.

Pure functions over strings and paths; nothing is read or written here.
"""

from __future__ import annotations

import html
import ipaddress
import os
import urllib.parse
from pathlib import Path, PurePosixPath

__all__ = ["download_link_html", "is_loopback", "lasting_url", "relative_href", "served_path"]

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost",
                          "ip6-loopback"})


def is_loopback(url: str) -> bool:
    """Whether ``url`` points at this machine (``127.0.0.0/8``, ``::1``, ``0.0.0.0``,
    ``localhost`` and its subdomains): such a link dies with the process serving it and
    means another machine to a reader on Binder or JupyterHub."""
    try:
        host = (urllib.parse.urlsplit(url.strip()).hostname or "").rstrip(".").lower()
    except ValueError:  # a malformed URL (bad port, brackets) is no lasting link either
        return True
    if not host:
        return False
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return address.is_loopback or address.is_unspecified


def lasting_url(url: str | None) -> str | None:
    """``url`` when it is an ``http(s)`` URL that may go into an output (not on a
    loopback host), else ``None``."""
    if not isinstance(url, str):
        return None
    text = url.strip()
    if not text.lower().startswith(("http://", "https://")) or is_loopback(text):
        return None
    return text


def served_path(relative: str | PurePosixPath) -> bool:
    """Whether a path relative to the notebook stays inside its folder and has no hidden
    component (which Jupyter's file handler would refuse with a 404)."""
    parts = PurePosixPath(relative).parts
    return bool(parts) and not any(p in ("", ".", "..") or p.startswith(".") for p in parts)


def relative_href(path: str | os.PathLike[str], base: str | os.PathLike[str]) -> str | None:
    """The URL-quoted path of the file ``path`` relative to the folder ``base`` (the
    notebook's, or a report's), or ``None`` when it is outside ``base`` or hidden."""
    try:
        rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(base))
    except ValueError:
        return None
    posix = PurePosixPath(*rel.parts)
    if not served_path(posix):
        return None
    return "/".join(urllib.parse.quote(part, safe="") for part in posix.parts)


def download_link_html(href: str, filename: str) -> str:
    """A link that downloads the file at ``href`` (relative, or a lasting URL) under the
    name ``filename``: a real browser download."""
    esc = html.escape
    return (f'<a class="nbw-download" href="{esc(href, quote=True)}" '
            f'download="{esc(filename, quote=True)}" title="Download {esc(filename, quote=True)}"'
            f' style="display:inline-block;padding:2px 8px;border-radius:4px;'
            f'border:1px solid var(--jp-border-color1, rgba(128,128,128,0.5));'
            f'text-decoration:none;">⬇ Download {esc(filename)}</a>')
