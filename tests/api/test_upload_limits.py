"""Upload limits while the body streams, sent byte by byte over a raw socket as a hostile client would:
a chunked body past the cap is cut off with 413 as soon as it passes it, a slow or stalled body gets 408,
and the bytes in flight in the Ingress have a ceiling across requests (503 + Retry-After)."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.api.conftest import LIMITS
from tests.support import API_KEYS

pytestmark = pytest.mark.slow

BOUNDARY = "----limits"
PREAMBLE = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-tiny.en\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode()
MB = 1_000_000


class RawUpload:
    """One POST whose body is sent by hand: chunked (no Content-Length) unless `length` is given."""

    def __init__(self, server, length: int | None = None) -> None:
        host, port = server.root_url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.chunked = length is None
        framing = "Transfer-Encoding: chunked" if self.chunked else f"Content-Length: {length}"
        self.sock.sendall((f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {host}\r\n"
                           f"Authorization: Bearer {API_KEYS[0]}\r\n"
                           f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{framing}\r\n\r\n").encode())
        self.sent = 0

    def send(self, data: bytes) -> bool:
        """False once the server has stopped taking the body (it answered and closed, or reset)."""
        try:
            self.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data)
        except OSError:
            return False
        self.sent += len(data)
        return True

    def answered(self) -> bool:
        self.sock.setblocking(False)
        try:
            return bool(self.sock.recv(1, socket.MSG_PEEK))
        except BlockingIOError:
            return False
        except OSError:
            return True
        finally:
            self.sock.setblocking(True)

    def response(self, timeout: float = 30) -> tuple[int, dict, dict]:
        self.sock.settimeout(timeout)
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            raw += chunk
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            body += chunk
        self.sock.close()
        return int(lines[0].split()[1]), headers, json.loads(body or b"{}")


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
