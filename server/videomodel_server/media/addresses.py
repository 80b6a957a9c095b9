"""Which IP addresses a media fetch may connect to: only globally routable unicast ones.

Pure functions (no DNS, no I/O), property-tested. The rule is an allow-list with holes punched
out, not a deny-list: an IPv4 address must not fall in any special-purpose block of the IANA
registry, and an IPv6 address must be global unicast (2000::/3) and not a special block either.
That rejects, among others: private (10/8, 172.16/12, 192.168/16, fc00::/7), loopback, link
local (169.254/16 incl. cloud metadata 169.254.169.254, fe80::/10), CGNAT 100.64/10,
multicast, reserved 240/4, broadcast, unspecified, benchmarking and documentation ranges,
IPv4-mapped and IPv4-compatible IPv6 (::ffff:0:0/96, ::/96), NAT64 (64:ff9b::/96,
64:ff9b:1::/48), 6to4 (2002::/16), Teredo (2001::/32) and the rest of 2001::/23: IPv6 forms
that embed an IPv4 address are refused outright rather than unwrapped, since the network may
route them to the embedded (possibly private) address.
"""

from __future__ import annotations

import ipaddress
from typing import Final

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4_BLOCKED: Final = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network", unspecified
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # CGNAT shared address space
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link local, cloud metadata
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # TEST-NET-1
        "192.31.196.0/24",  # AS112
        "192.52.193.0/24",  # AMT
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",  # private
        "192.175.48.0/24",  # AS112 direct delegation
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
    )
)

_V6_GLOBAL_UNICAST: Final = ipaddress.IPv6Network("2000::/3")
_V6_BLOCKED: Final = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "2001::/23",  # IETF protocol assignments, incl. Teredo 2001::/32, ORCHID, benchmarking
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4: embeds an IPv4 address
        "3fff::/20",  # documentation (RFC 9637)
        "2620:4f:8000::/48",  # AS112
    )
)


def refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` may not be fetched from, or None if it is global unicast.

    The reason is a category ("loopback", "private", ...), never the address itself, so it can
    go into a client-visible message.
    """
    if isinstance(address, ipaddress.IPv4Address):
        if address.is_loopback:
            return "loopback"
        if address.is_link_local:
            return "link-local"
        if address.is_multicast:
            return "multicast"
        if address.is_unspecified:
            return "unspecified"
        for net in _V4_BLOCKED:
            if address in net:
                return "private or reserved"
        return None
    if address.ipv4_mapped is not None:
        return "IPv4-mapped IPv6"
    if address.is_loopback:
        return "loopback"
    if address.is_unspecified:
        return "unspecified"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_site_local or address in ipaddress.IPv6Network("fc00::/7"):
        return "private"
    if address in ipaddress.IPv6Network("64:ff9b::/96") or address in ipaddress.IPv6Network("64:ff9b:1::/48"):
        return "NAT64"
    if address not in _V6_GLOBAL_UNICAST:
        return "reserved"
    if address in ipaddress.IPv6Network("2002::/16"):
        return "6to4"
    if address in ipaddress.IPv6Network("2001::/32"):
        return "Teredo"
    for net6 in _V6_BLOCKED:
        if address in net6:
            return "reserved"
    return None


def is_fetchable(address: IPAddress) -> bool:
    """True when ``address`` is global unicast (see :func:`refusal_reason`)."""
    return refusal_reason(address) is None


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address if ``host`` is an IP literal (``[v6]`` brackets allowed), else None.

    Only canonical literals are recognised here; odd numeric forms such as ``0x7f.1`` or
    ``2130706433`` go through the resolver, which turns them into addresses that are checked
    like any other resolved address.
    """
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if "%" in text:  # zone ids (fe80::1%eth0) are link-local by definition
        text = text.split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
