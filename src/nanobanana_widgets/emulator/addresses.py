"""Addresses for the emulator: which hosts are this machine, and the base URL of a bound port."""

from __future__ import annotations

import ipaddress

__all__ = ["base_url", "is_loopback_host"]


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` is a loopback name or address (127.0.0.0/8, ``localhost``, ``::1``)."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url(host: str, port: int) -> str:
    """``http://host:port`` for a server bound to ``host``; a wildcard becomes loopback."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
