"""Which hosts GateHouse may send provider traffic to (saves, Test connection, models refresh).

An admin types a base URL and the server then makes requests to it: without a rule that is a
way to probe internal addresses from the server. `GATEHOUSE_PROVIDER_HOSTS` (comma-separated
host patterns such as `openrouter.ai,*.example.com,127.0.0.1`; unset: any host) limits where
provider URLs may point; link-local and cloud metadata addresses are refused always, by name,
by literal address, and (before Test connection and refresh connect) by every address the
name resolves to.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlparse

from . import settings

Resolver = Callable[[str], list[str]]

# Link-local covers 169.254.169.254 (AWS, GCP, Azure, OpenStack metadata) and fe80::/10.
_ALWAYS_REFUSED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",
        "fe80::/10",
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "fd00:ec2::254/128",  # AWS metadata over IPv6
    )
)
_METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.internal",
        "instance-data",
        "instance-data.ec2.internal",
    }
)


def refused_message(base_url: str) -> str:
    """The one text for a host GateHouse will not contact (the rule is not revealed)."""
    return (
        f"{_host_of(base_url)!r} is not an allowed provider host; ask the operator to add it "
        "to GATEHOUSE_PROVIDER_HOSTS (link-local and cloud metadata addresses are never allowed)"
    )


def allowed_patterns(env: Mapping[str, str] | None = None) -> list[str]:
    raw = settings.get("GATEHOUSE_PROVIDER_HOSTS", env) or ""
    return [p.strip().lower().rstrip(".") for p in raw.split(",") if p.strip()]


def host_error(
    base_url: str,
    env: Mapping[str, str] | None = None,
    *,
    resolve: bool = False,
    resolver: Resolver | None = None,
) -> str | None:
    """Why `base_url`'s host may not be contacted, or None.

    `resolve=True` also checks every address the host name resolves to (no connection is
    made); use it right before sending a request.
    """
    host = _host_of(base_url)
    if not host:
        return None  # the URL rules report a URL without a host
    if host in _METADATA_NAMES or _is_refused_address(host):
        return refused_message(base_url)
    patterns = allowed_patterns(env)
    if patterns and not any(fnmatch.fnmatchcase(host, p) for p in patterns):
        return refused_message(base_url)
    if resolve:
        try:
            addresses = (resolver or _resolve)(host)
        except OSError:
            return None  # unresolvable: the request itself fails with the uniform error
        if any(_is_refused_address(a) for a in addresses):
            return refused_message(base_url)
    return None


def _host_of(base_url: Any) -> str:
    try:
        host = urlparse(base_url).hostname if isinstance(base_url, str) else None
    except ValueError:
        return ""
    return (host or "").lower().rstrip(".")


def _is_refused_address(text: str) -> bool:
    address = _as_address(text)
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _ALWAYS_REFUSED_NETWORKS)


def _as_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        pass
    try:  # the decimal and hex forms (2852039166, 0xa9fea9fe) resolvers also accept
        return ipaddress.ip_address(int(text, 0))
    except ValueError:
        return None


def _resolve(host: str) -> list[str]:
    return [info[4][0] for info in socket.getaddrinfo(host, None)]
