"""URL inputs that try to reach inside the network, or to hold the service: each is refused in the error
envelope, and a loopback server checks that no request ever reached it."""

from __future__ import annotations

import pytest

from tests.api.settings import ALLOWED_HOST, FETCH_CAPS, LIMITS
from tests.support import LocalHTTPServer, assert_envelope

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def loopback():
    """Servers on 127.0.0.1 and ::1 that must never be asked for anything."""
    with LocalHTTPServer("127.0.0.1", b"secret") as v4, LocalHTTPServer("::1", b"secret") as v6:
        yield v4, v6
        assert v4.seen == [] and v6.seen == [], "the service fetched a loopback URL"


LOOPBACK_URLS = [
    "http://127.0.0.1:{p}/a.wav",
    "http://127.1.2.3:{p}/a.wav",
    "http://localhost:{p}/a.wav",
    "http://LOCALHOST:{p}/a.wav",
    "HTTP://127.0.0.1:{p}/a.wav",
    "http://[::1]:{p6}/a.wav",
    "http://2130706433:{p}/a.wav",          # decimal
    "http://0x7f000001:{p}/a.wav",          # hex
    "http://0177.0.0.1:{p}/a.wav",          # octal
    "http://127.1:{p}/a.wav",               # short form
    "http://[::ffff:127.0.0.1]:{p}/a.wav",  # IPv4-mapped IPv6
    "http://0.0.0.0:{p}/a.wav",             # "this host": Linux connects it to loopback
    "http://user:pw@127.0.0.1:{p}/a.wav",
    "http://user:pw@example.com/a.wav",     # credentials are refused before any lookup
    "http://example.com@127.0.0.1:{p}/a.wav",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://[fe80::1]/a.wav",
    "http://10.0.0.1/a.wav",
    "http://192.168.1.1/a.wav",
    "http://does-not-resolve.invalid/a.wav",
    "http:///a.wav",
    "file:///etc/passwd",
    "ftp://127.0.0.1/a.wav",
    "gopher://127.0.0.1:{p}/_GET",
    "dict://127.0.0.1:{p}/",
]


@pytest.mark.parametrize("template", LOOPBACK_URLS)
def test_unsafe_url_refused_without_a_request(server, loopback, template):
    v4, v6 = loopback
    url = template.format(p=v4.port, p6=v6.port)
    assert_envelope(server.post(files={"file": (None, url)}), 400, "file")


def test_redirect_to_loopback_is_refused(server, loopback, clip):
    v4, _ = loopback
    target = f"http://127.0.0.1:{v4.port}/a.wav"
    with LocalHTTPServer(ALLOWED_HOST, redirect_to=lambda path: target) as allowed:
        r = server.post(files={"file": (None, f"http://{ALLOWED_HOST}:{allowed.port}/start.wav")})
        assert_envelope(r, 400, "file")
        assert allowed.seen == ["/start.wav"]  # the first hop was fetched, the loopback hop never was


def test_too_many_redirects(server):
    with LocalHTTPServer(ALLOWED_HOST, redirect_to=lambda path: path + "x") as loop:
        r = server.post(files={"file": (None, f"http://{ALLOWED_HOST}:{loop.port}/r")})
        assert_envelope(r, 400, "file")
        assert "redirect" in r.json()["error"]["message"]
        assert len(loop.seen) == FETCH_CAPS["max_redirects"] + 1


def test_download_over_the_size_cap(server, clip):
    big = clip * (LIMITS["max_download_bytes"] // len(clip) + 2)
    with LocalHTTPServer(ALLOWED_HOST, big) as http:
        r = server.post(files={"file": (None, f"http://{ALLOWED_HOST}:{http.port}/big.wav")})
        assert_envelope(r, 413, "file")  # API.md: over a size cap is 413


def test_stalling_server_hits_the_time_cap(server):
    with LocalHTTPServer(ALLOWED_HOST, drip_s=0.5) as slow:
        r = server.post(files={"file": (None, f"http://{ALLOWED_HOST}:{slow.port}/slow.wav")}, timeout=60)
        assert_envelope(r, 400, "file")
        assert "time" in r.json()["error"]["message"]


def test_service_still_fetches_good_urls_afterwards(server, clip):
    with LocalHTTPServer(ALLOWED_HOST, clip) as http:
        r = server.post(data={"model": "whisper-tiny.en"}, files={"file": (None, f"http://{ALLOWED_HOST}:{http.port}/ok.wav")})
        assert r.status_code == 200 and "hello" in r.json()["text"].lower()
