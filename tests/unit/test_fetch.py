"""Address classification and URL checks. Nothing here sends traffic anywhere."""

import ipaddress
import socket

import pytest

from serve_app.errors import InvalidRequest
from serve_app.pipeline.fetch import address_allowed, check_url, is_public_address, resolve_target

NON_PUBLIC = [
    "0.0.0.0", "0.1.2.3", "10.0.0.1", "100.64.0.1", "127.0.0.1", "127.255.255.254", "169.254.169.254",
    "172.16.0.1", "172.31.255.255", "192.0.0.1", "192.0.2.1", "192.168.1.1", "198.18.0.1", "198.51.100.1",
    "203.0.113.1", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
    "::", "::1", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "2001:db8::1", "::ffff:127.0.0.1",
    "::ffff:10.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1", "100::1",
    # more of the special-purpose registries: benchmarking, 6to4 relay, multicast scopes, site-local,
    # ORCHID, Teredo pointing inside, IPv4-compatible loopback
    "198.19.255.255", "192.88.99.1", "233.252.0.1", "fec0::1", "ff05::2", "ff0e::1", "2001:10::1",
    "2001:0:4136:e378:8000:63bf:80ff:fffe", "::127.0.0.1", "fe80::1%1",
]
PUBLIC = ["1.1.1.1", "8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", NON_PUBLIC)
def test_non_public_addresses(address):
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address):
    assert is_public_address(ipaddress.ip_address(address))


def test_allowed_networks_open_exactly_what_they_name():
    allowed = [ipaddress.ip_network("127.0.0.2/32")]
    assert address_allowed(ipaddress.ip_address("127.0.0.2"), allowed)
    assert address_allowed(ipaddress.ip_address("::ffff:127.0.0.2"), allowed)
    assert not address_allowed(ipaddress.ip_address("127.0.0.1"), allowed)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.wav", "http://localhost/a.wav", "http://[::1]/a.wav", "http://2130706433/a.wav",
        "http://0x7f000001/a.wav", "http://0177.0.0.1/a.wav", "http://[::ffff:127.0.0.1]/a.wav", "http://0.0.0.0/",
        "http://user:pw@127.0.0.1/", "HTTP://LOCALHOST/a.wav", "file:///etc/passwd", "ftp://127.0.0.1/a",
        "gopher://127.0.0.1/", "http://name-that-does-not-resolve.invalid/", "http:///nohost", "http://[::1",
    ],
)
def test_unsafe_urls_refused(url):
    with pytest.raises(InvalidRequest) as info:
        resolve_target(url, [])
    assert info.value.param == "file" and info.value.status == 400


def test_checked_address_is_the_one_connected_to():
    target = resolve_target("http://127.0.0.2:8080/x.wav?sig=1", [ipaddress.ip_network("127.0.0.0/8")])
    assert target.connect_url == "http://127.0.0.2:8080/x.wav?sig=1"
    assert target.host_header == "127.0.0.2:8080"


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://a.example/" + "x" * 3000, "longer than 2048"),
        ("http://\udcff.example/a.wav", "not valid text"),
        ("http://a b.example/a.wav", "spaces or control"),
        ("http://a.example/a\r\nX-Injected: 1", "spaces or control"),
        ("http://" + "a" * 64 + ".example/a.wav", "not a valid domain name"),
        ("http://a..example/a.wav", "not a valid domain name"),
    ],
)
def test_malformed_urls_are_400_with_a_reason(url, reason):
    with pytest.raises(InvalidRequest) as info:
        check_url(url) if "domain" not in reason else resolve_target(url, [])
    assert info.value.status == 400 and info.value.param == "file" and reason in info.value.message
    info.value.message.encode("utf-8")  # the envelope can always be rendered


def test_an_international_host_is_looked_up_in_its_ascii_form(monkeypatch):
    asked = []

    def fake_getaddrinfo(host, port, **kwargs):
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    target = resolve_target("https://exämple.com/a.wav", [])
    assert asked == ["xn--exmple-cua.com"] and target.host_header == "xn--exmple-cua.com"
