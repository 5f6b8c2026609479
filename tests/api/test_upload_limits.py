"""Upload limits while the body streams, sent byte by byte over a raw socket as a hostile client would:
a chunked body past the cap is cut off with 413 as soon as it passes it, a slow or stalled body gets 408,
and the bytes in flight in the Ingress have a ceiling across requests (503 + Retry-After)."""

from __future__ import annotations

import time

import pytest

from tests.api.settings import LIMITS
from tests.support import RawUpload

pytestmark = pytest.mark.slow

PREAMBLE = RawUpload.preamble("whisper-tiny.en")
MB = 1_000_000


def assert_error(status, body, expected_status, code=None):
    assert status == expected_status, body
    assert set(body) == {"error"} and body["error"]["message"], body
    if code:
        assert body["error"]["code"] == code, body


def test_a_chunked_upload_past_the_cap_is_cut_off_with_413(server):
    cap = LIMITS["max_upload_bytes"]
    upload = RawUpload(server)
    upload.send(PREAMBLE)
    block = b"\0" * MB
    while upload.sent < 3 * cap and not upload.answered() and upload.send(block):
        pass
    status, _, body = upload.response()
    assert_error(status, body, 413)
    # (Ray's proxy answers: its cap is the upload's plus room for the other form fields.)
    assert body["error"]["param"] == "file" and "limit of 41000000 bytes" in body["error"]["message"]
    # Refused when the cap was passed, not after the whole body (sockets buffer a few MB on the way).
    assert upload.sent < cap + 16 * MB, f"sent {upload.sent} bytes before the answer"


def test_a_trickling_upload_gets_408(server):
    upload = RawUpload(server)
    upload.send(PREAMBLE)
    start = time.monotonic()
    while time.monotonic() - start < 30 and not upload.answered() and upload.send(b"\0" * 1000):
        time.sleep(0.5)  # 2 kB/s: under the minimum rate, never idle for long
    status, _, body = upload.response()
    assert_error(status, body, 408, "upload_timeout")


def test_a_stalled_upload_gets_408(server):
    upload = RawUpload(server, length=len(PREAMBLE) + 5 * MB)
    upload.send(PREAMBLE + b"\0" * 1000)  # then nothing
    status, _, body = upload.response(timeout=30)
    assert_error(status, body, 408, "upload_timeout")


def test_upload_bytes_in_flight_have_a_ceiling_across_requests(server, clip):
    ceiling = LIMITS["max_uploads_in_flight_bytes"]
    size = LIMITS["max_upload_bytes"]  # each at the cap: two fit under the ceiling, a third does not
    holders = [RawUpload(server, length=size) for _ in range(2)]
    for h in holders:
        h.send(PREAMBLE)
    time.sleep(1)
    third = RawUpload(server, length=size)
    status, headers, body = third.response()
    assert_error(status, body, 503, "overloaded")
    assert int(headers["retry-after"]) >= 1
    assert 3 * size > ceiling >= 2 * size
    for h in holders:
        h.sock.close()
    # Their reservations go back when they end: a normal request passes again.
    time.sleep(1)
    r = server.post(data={"model": "whisper-tiny.en"}, files={"file": ("a.wav", clip)})
    assert r.status_code == 200 and "hello" in r.json()["text"].lower()
