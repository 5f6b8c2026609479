"""Uploads that are not audio in an accepted container, sent as an attacker would, against the running
service: each is refused with 415 in the envelope within 2 s, no file is read (the playlists point at a
real WAV in the decoder's working directory), no socket is opened (the decoder's sockets are checked), and
the service answers the next good request."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from harness.procs import replica_pids
from tests.hostile_media import UDP_PORT, hostile_files, udp_sockets
from tests.api.settings import ALLOWED_HOST
from tests.support import LocalHTTPServer, assert_envelope, wav_bytes

pytestmark = pytest.mark.slow

FAMILIES = list(hostile_files("x.wav"))


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


@pytest.fixture(scope="module")
def decoders():
    """The decoder replicas' pids, with a real 7 s WAV named target.wav in each one's working directory:
    the file a playlist would make the decoder read."""
    pids = replica_pids("AudioDecoder")
    assert pids, "no AudioDecoder replica process found"
    planted = []
    for pid in pids:
        path = Path(os.readlink(f"/proc/{pid}/cwd")) / "target.wav"
        if not path.exists():
            path.write_bytes(wav_bytes((0.3 * np.sin(np.arange(16000 * 7) / 5)).astype(np.float32)))
            planted.append(path)
    yield pids
    for path in planted:
        path.unlink(missing_ok=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_hostile_upload_is_refused_quickly_and_touches_nothing(server, decoders, family):
    payload = hostile_files("target.wav")[family]
    start = time.monotonic()
    r = server.post(files={"file": ("audio.wav", payload)}, timeout=60)
    elapsed = time.monotonic() - start
    assert_envelope(r, 415, "file")
    assert r.json()["error"]["code"] == "unsupported_container"
    assert elapsed < 2, f"{family}: answered after {elapsed:.1f} s"
    udp = udp_sockets()
    assert UDP_PORT not in udp.values(), f"{family}: something bound UDP port {UDP_PORT}"
    for pid in decoders:
        assert not _socket_inodes(pid) & set(udp), f"{family}: the decoder (pid {pid}) holds a UDP socket"


def test_ten_sdp_uploads_at_once_do_not_stop_decoding(server, clip):
    import concurrent.futures

    payload = hostile_files("target.wav")["sdp, unicast"]
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: server.post(files={"file": ("a.sdp", payload)}, timeout=60), range(10)))
    assert [a.status_code for a in answers] == [415] * 10
    r = server.post(data={"model": "whisper-tiny.en"}, files={"file": ("a.wav", clip)}, timeout=60)
    assert r.status_code == 200 and "hello" in r.json()["text"].lower()


@pytest.mark.parametrize("family", ["ffconcat", "sdp, unicast", "sbagen tones", "hls playlist"])
def test_hostile_download_is_refused_like_an_upload(server, decoders, family):
    # The same rules for a URL input: the bytes fetched from an allowed host are probed the same way.
    with LocalHTTPServer(ALLOWED_HOST, hostile_files("target.wav")[family]) as host:
        r = server.post(files={"file": (None, f"http://{ALLOWED_HOST}:{host.port}/a.wav")}, timeout=60)
        assert host.seen, "the allowed host was never asked"
    assert_envelope(r, 415, "file")
    assert UDP_PORT not in udp_sockets().values()
