"""Bad input, keys and URL inputs: every failure is a 4xx in the error envelope."""

from __future__ import annotations

import httpx
import pytest

from tests.api.settings import ALLOWED_HOST
from tests.support import LocalHTTPServer, assert_envelope

pytestmark = pytest.mark.slow


def post(server, data=None, files=None, headers=None, path="/audio/transcriptions"):
    return server.post(data=data, files=files, headers=headers, path=path, timeout=120)


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"temperature": "1.5"}, "temperature"),
        ({"temperature": "-0.1"}, "temperature"),
        ({"temperature": "warm"}, "temperature"),
        ({"response_format": "xml"}, "response_format"),
        ({"timestamp_granularities[]": "char"}, "timestamp_granularities"),
        ({"language": "xx"}, "language"),
        ({"diarize": "maybe"}, "diarize"),
        ({"min_speakers": "0"}, "min_speakers"),
        ({"min_speakers": "3", "max_speakers": "2"}, "min_speakers"),
        ({"model": "whisper-huge"}, "model"),
        ({"max_speakers": "two"}, "max_speakers"),
    ],
)
def test_bad_parameters_get_400_with_param(server, clip, fields, param):
    assert_envelope(post(server, data=fields, files={"file": ("a.wav", clip)}), 400, param)


def test_unknown_model_lists_served_names(server, clip):
    r = post(server, data={"model": "whisper-huge"}, files={"file": ("a.wav", clip)})
    assert "whisper-base" in r.json()["error"]["message"]


def test_english_only_model_refuses_translation_and_other_languages(server, clip):
    assert_envelope(post(server, {"model": "whisper-tiny.en"}, {"file": ("a.wav", clip)}, path="/audio/translations"), 400, "model")
    assert_envelope(post(server, {"model": "whisper-tiny.en", "language": "de"}, {"file": ("a.wav", clip)}), 400, "language")


@pytest.mark.parametrize(
    "payload, status",
    [
        (b"", 400),
        (b"this is plain text, not audio at all" * 10, 415),  # no accepted container's signature
        (b"MZ\x90\x00" + bytes(range(256)) * 20, 415),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", 400),  # a WAV that does not decode
    ],
    ids=["empty", "text", "executable", "broken wav"],
)
def test_undecodable_files_get_4xx(server, clip, payload, status):
    assert_envelope(post(server, files={"file": ("audio.wav", payload)}), status, "file")
    # ...and the service answers the next good request correctly.
    r = post(server, data={"model": "whisper-tiny.en"}, files={"file": ("a.wav", clip)})
    assert r.status_code == 200 and "hello" in r.json()["text"].lower()


def test_missing_file_and_non_url_string(server):
    assert_envelope(post(server, data={"model": "whisper-1"}), 400, "file")
    assert_envelope(post(server, data={"file": "not-a-url.wav"}), 400, "file")


def test_not_multipart_is_400(server):
    r = httpx.post(f"{server.base_url}/audio/transcriptions", headers=server.headers(), json={"file": "x"}, timeout=30)
    assert_envelope(r, 400)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic sk-test-key-one"}, {"Authorization": "Bearer"}, {"Authorization": "Bearer sk-test-key-one-and-more"}],
)
def test_missing_or_wrong_key_is_401(server, clip, headers):
    r = post(server, files={"file": ("a.wav", clip)}, headers=headers)
    assert_envelope(r, 401)
    assert r.headers["www-authenticate"] == "Bearer"
    r = httpx.get(f"{server.base_url}/models", headers=headers, timeout=30)
    assert_envelope(r, 401)


def test_second_key_works(server, clip):
    from tests.api.settings import API_KEYS

    r = post(server, data={"model": "whisper-tiny.en"}, files={"file": ("a.wav", clip)},
             headers={"Authorization": f"Bearer {API_KEYS[1]}"})
    assert r.status_code == 200


def test_unknown_route_is_enveloped_404(server):
    assert_envelope(httpx.get(f"{server.base_url}/nothing-here", headers=server.headers(), timeout=30), 404)


def test_url_input_fetched_from_allowed_private_host(server, clip):
    with LocalHTTPServer(ALLOWED_HOST, clip) as http:
        url = f"http://{ALLOWED_HOST}:{http.port}/clip.wav"
        # A URL arrives as a plain `file` form field with no filename (what API.md says Together sends;
        # together==3.1.1 itself refuses a str client-side, so this goes over plain HTTP).
        r = post(server, data={"model": "openai/whisper-large-v3", "language": "en"}, files={"file": (None, url)})
        assert r.status_code == 200, r.text
        assert r.request.headers["content-type"].startswith("multipart/form-data")
        assert "hello" in r.json()["text"].lower()
        assert http.seen == ["/clip.wav"]


def test_url_input_to_loopback_refused_without_a_request(server, clip):
    # 127.0.0.1 is not in the allowed networks (the default config allows none).
    with LocalHTTPServer("127.0.0.1", clip) as http:
        url = f"http://127.0.0.1:{http.port}/clip.wav"
        assert_envelope(post(server, files={"file": (None, url)}), 400, "file")
        assert_envelope(post(server, data={"file": url}), 400, "file")  # urlencoded, same rules
        assert http.seen == []
