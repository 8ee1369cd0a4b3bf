"""Which network addresses a fetch may connect to (the SSRF rule, pure)."""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(specs: list[str]) -> list[IPNetwork]:
    return [ipaddress.ip_network(spec, strict=False) for spec in specs]


def unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d) or IPv4-compatible IPv6 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if int(address) >> 32 == 0 and int(address) > 1:  # deprecated ::a.b.c.d
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def refusal(address: IPAddress, allowed: list[IPNetwork]) -> str | None:
    """Why connecting to ``address`` is refused, or None when it is allowed.

    Public (globally routable, unicast) addresses are allowed; so is anything in
    the configured allow-list. Loopback, private, link-local (169.254.0.0/16,
    the cloud metadata address), shared, reserved and multicast ranges are not,
    whether written as IPv4 or hidden in IPv6.
    """
    inner = unwrap(address)
    if any(inner in net or address in net for net in allowed):
        return None
    if inner.is_loopback:
        return "a loopback address"
    if inner.is_link_local:
        return "a link-local address"
    if inner.is_private:
        return "a private address"
    if inner.is_multicast or inner.is_unspecified or inner.is_reserved or not inner.is_global:
        return "not a public address"
    return None
