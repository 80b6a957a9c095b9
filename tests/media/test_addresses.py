"""SSRF address rules (pure): only global unicast addresses are fetchable."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from videomodel_server.media.addresses import is_fetchable, parse_ip_literal, refusal_reason

V4 = st.integers(min_value=0, max_value=2**32 - 1).map(ipaddress.IPv4Address)
V6 = st.integers(min_value=0, max_value=2**128 - 1).map(ipaddress.IPv6Address)


def _in(net: str) -> st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    network = ipaddress.ip_network(net)
    return st.integers(0, network.num_addresses - 1).map(lambda i: network[i])


REFUSED_NETS = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "::/96",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "2001::/32",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
]


@pytest.mark.parametrize("net", REFUSED_NETS)
@given(data=st.data())
def test_special_ranges_are_refused(net: str, data: st.DataObject) -> None:
    address = data.draw(_in(net))
    assert not is_fetchable(address)
    reason = refusal_reason(address)
    assert reason and str(address) not in reason  # the reason is a category, never the address


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "93.184.216.34", "151.101.1.69", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_fetchable(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254", "100.100.100.200", "::ffff:169.254.169.254"])
def test_cloud_metadata_addresses_are_refused(address: str) -> None:
    assert not is_fetchable(ipaddress.ip_address(address))


@given(V4)
def test_fetchable_v4_is_global_unicast(address: ipaddress.IPv4Address) -> None:
    if is_fetchable(address):
        assert address.is_global and not address.is_multicast and not address.is_reserved


@given(V6)
def test_fetchable_v6_is_global_unicast(address: ipaddress.IPv6Address) -> None:
    if is_fetchable(address):
        assert address in ipaddress.ip_network("2000::/3")
        assert address.is_global and address.ipv4_mapped is None and address.sixtofour is None
        assert address.teredo is None


@given(V4)
def test_ipv4_embedded_in_ipv6_is_always_refused(address: ipaddress.IPv4Address) -> None:
    """Mapped, compatible, NAT64 and 6to4 forms of ANY IPv4 address (even public) are refused."""
    n = int(address)
    forms = [
        ipaddress.IPv6Address((0xFFFF << 32) | n),  # ::ffff:a.b.c.d
        ipaddress.IPv6Address(n),  # ::a.b.c.d
        ipaddress.IPv6Address((0x64FF9B << 96) | n),  # 64:ff9b::a.b.c.d
        ipaddress.IPv6Address((0x2002 << 112) | (n << 80)),  # 2002:aabb:ccdd::
    ]
    assert not any(is_fetchable(f) for f in forms)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("example.com", None),
        ("0x7f.1", None),
    ],
)
def test_parse_ip_literal(host: str, expected: str | None) -> None:
    parsed = parse_ip_literal(host)
    assert (str(parsed) if parsed else None) == expected
