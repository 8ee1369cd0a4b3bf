"""The SSRF rule: only public addresses, unless allow-listed; IPv4 hidden in IPv6 is unwrapped."""

import ipaddress

import pytest

from services.ingest.domain.addresses import parse_networks, refusal

BLOCKED = [
    "127.0.0.1",
    "127.8.9.10",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "::1",
    "fe80::1",
    "fc00::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "2002:7f00:1::1",  # 6to4 around 127.0.0.1
]


@pytest.mark.parametrize("address", BLOCKED)
def test_non_public_addresses_are_refused(address):
    assert refusal(ipaddress.ip_address(address), []) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address):
    assert refusal(ipaddress.ip_address(address), []) is None


def test_allow_list_opens_a_trusted_network_only():
    allow = parse_networks(["10.1.2.0/24", "127.0.0.1"])
    assert refusal(ipaddress.ip_address("10.1.2.3"), allow) is None
    assert refusal(ipaddress.ip_address("127.0.0.1"), allow) is None
    assert refusal(ipaddress.ip_address("::ffff:127.0.0.1"), allow) is None
    assert refusal(ipaddress.ip_address("10.1.3.3"), allow) is not None
    assert refusal(ipaddress.ip_address("127.0.0.2"), allow) is not None
