"""SSRF guard: decide whether a webhook may connect to an address.

Python's :mod:`ipaddress` calls ``2002:7f00:1::`` (6to4 of 127.0.0.1) global, so every IPv6
address is unwrapped first (IPv4-mapped, IPv4-compatible, 6to4, Teredo, NAT64) and each
embedded IPv4 address is judged too. Loopback passes only with ``allow_loopback``; private
ranges only with ``allow_private``; link-local, multicast, reserved and unspecified never.
A host name passes only when *every* address it resolves to passes; the caller then connects
to the vetted address, so a second DNS answer cannot swap it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

__all__ = ["AddressRefused", "ResolutionFailed", "embedded_addresses", "check_address",
           "resolve_vetted"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPAT = ipaddress.ip_network("::/96")

Resolver = Callable[[str, int], list[str]]


class AddressRefused(ValueError):
    """The destination resolves to an address that webhooks may not reach."""


class ResolutionFailed(AddressRefused):
    """The name could not be resolved *now* (resolver down or timing out, no answer).

    Temporary: a delivery retries it with backoff (only an address the guard refuses is
    permanent). It is an :class:`AddressRefused` so that checks at registration, which must
    vet an address before storing it, still refuse a name they cannot resolve.
    """


def embedded_addresses(ip: IPAddress) -> list[IPAddress]:
    """``ip`` and every IPv4 address embedded in it (mapped, compatible, 6to4, Teredo, NAT64)."""
    out: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            out.append(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            out.append(ip.sixtofour)
        if ip.teredo is not None:
            out.extend(ip.teredo)
        if ip in _NAT64 or (ip in _IPV4_COMPAT and int(ip) > 1):
            out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return out


def _reason(ip: IPAddress, *, allow_loopback: bool, allow_private: bool) -> str | None:
    if ip.is_loopback:
        return None if allow_loopback else "loopback"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private or not ip.is_global:
        return None if allow_private else "private"
    return None


def check_address(address: str, *, allow_loopback: bool = False,
                  allow_private: bool = False) -> IPAddress:
    """Return the parsed address if webhooks may reach it, else raise :class:`AddressRefused`."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    for candidate in reversed(embedded_addresses(ip)):  # embedded first: clearer reasons
        why = _reason(candidate, allow_loopback=allow_loopback, allow_private=allow_private)
        if why is not None:
            via = "" if candidate == ip else f" (embeds {candidate})"
            raise AddressRefused(f"address {ip}{via} is {why}")
    return ip


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def resolve_vetted(host: str, port: int, *, allow_loopback: bool = False,
                   allow_private: bool = False, resolver: Resolver | None = None) -> IPAddress:
    """Resolve ``host`` and return an address to connect to; every answer must pass."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        literal = None
    if literal is not None:
        return check_address(str(literal), allow_loopback=allow_loopback,
                             allow_private=allow_private)
    try:
        answers = (resolver or _system_resolver)(host, port)
    except OSError as exc:  # socket.gaierror: EAI_AGAIN, EAI_NONAME during an outage, ...
        raise ResolutionFailed(f"cannot resolve {host}: {exc}") from exc
    if not answers:
        raise ResolutionFailed(f"{host} resolves to no address")
    vetted = [check_address(a, allow_loopback=allow_loopback, allow_private=allow_private)
              for a in dict.fromkeys(answers)]
    return vetted[0]
