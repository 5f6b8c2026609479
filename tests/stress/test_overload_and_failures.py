"""Overload, the request time limit and dying replicas: every request ends, in time, with a correct 200
or an enveloped 5xx/429 that says when to retry; the service heals by itself."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.stress.settings import REQUEST_TIMEOUT_S, REQUEST_TIMEOUT_S_PER_AUDIO_S, TINY_LIMITS
from tests.support import SAMPLE_WAV, kill_replicas, sample_samples, wav_bytes

pytestmark = pytest.mark.slow

# An hour of speech for whisper-base: this machine decodes about 16 minutes of it in the 30 s time limit; 20
# minutes proved too little margin on CI's faster runner, which finished a stream inside the limit. Its
# limit is the longer one its length earns (45 s).
LONG_TILES = 120
LONG_LIMIT_S = max(REQUEST_TIMEOUT_S, LONG_TILES * 30 * REQUEST_TIMEOUT_S_PER_AUDIO_S)
CLIENT_TIMEOUT_S = LONG_LIMIT_S + 60  # a request still open after this has hung


def send(server, fields: dict, payload: bytes) -> tuple[int, dict, dict, float]:
    start = time.monotonic()
    r = server.post(data=fields, files={"file": ("a.wav", payload)}, timeout=CLIENT_TIMEOUT_S)
    try:
        body = r.json()
    except ValueError:
        body = {"not json": r.text[:300]}
    return r.status_code, dict(r.headers), body, time.monotonic() - start


def check_answer(status: int, headers: dict, body: dict, expect_word: str = "hello") -> None:
    if status == 200:
        assert expect_word in body["text"].lower(), body
    else:
        assert status in (429, 503, 504), (status, body)
        assert set(body) == {"error"} and body["error"]["message"], body
        if status in (429, 503):
            assert int(headers["retry-after"]) >= 1


def healthy(server, clip, model: str = "whisper-tiny.en") -> bool:
    status, _, body, _ = send(server, {"model": model}, clip)
    return status == 200 and "hello" in body["text"].lower()


def test_burst_of_64_gets_200s_and_503s_only(stressed, clip):
    with ThreadPoolExecutor(max_workers=64) as pool:
        results = list(pool.map(lambda _: send(stressed, {"model": "whisper-tiny.en"}, clip), range(64)))
    statuses = [r[0] for r in results]
    for status, headers, body, _ in results:
        check_answer(status, headers, body)
    print(f"burst of 64: {statuses.count(200)} x 200, {statuses.count(503)} x 503, "
          f"slowest {max(r[3] for r in results):.1f} s")
    assert set(statuses) <= {200, 503}
    assert statuses.count(200) >= TINY_LIMITS["max_ongoing_requests"] + TINY_LIMITS["max_queued_requests"]
    assert statuses.count(503) > 0  # the queue limit really bit
    assert healthy(stressed, clip)


def test_time_limit_gives_504_and_the_service_stays_healthy(stressed, clip):
    long_audio = wav_bytes(np.tile(sample_samples(), LONG_TILES))
    status, headers, body, elapsed = send(stressed, {"model": "whisper-base"}, long_audio)
    assert status == 504 and body["error"]["type"] == "timeout_error", body
    # Not at request_timeout_s: an hour of audio earns request_timeout_s_per_audio_s of each second.
    assert LONG_LIMIT_S > REQUEST_TIMEOUT_S and LONG_LIMIT_S <= elapsed < CLIENT_TIMEOUT_S, elapsed
    assert healthy(stressed, clip)
    # The cancelled file's windows left the ASR's batches: the same model answers the next request.
    assert healthy(stressed, clip, "whisper-base")


@pytest.mark.parametrize(
    "deployment, fields",
    [
        ("WhisperASR-whisper-base", {"model": "whisper-base"}),
        ("Diarizer", {"model": "whisper-tiny.en", "diarize": "true", "response_format": "verbose_json"}),
    ],
)
def test_killed_replica_fails_requests_cleanly_and_comes_back(stressed, clip, deployment, fields):
    payload = SAMPLE_WAV.read_bytes()
    results: list = []

    def client():
        results.append(send(stressed, fields, payload))

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.5)  # requests are in flight
    killed = kill_replicas(deployment)
    killed_at = time.monotonic()
    assert killed, f"no replica of {deployment} found"
    for t in threads:
        t.join(CLIENT_TIMEOUT_S + 10)
    assert len(results) == 6, "a request hung"
    for status, headers, body, elapsed in results:
        assert elapsed < CLIENT_TIMEOUT_S
        check_answer(status, headers, body, expect_word="jersey")
    # Serve replaces the replica; measure how long until a request to it succeeds again.
    while True:
        status, _, body, _ = send(stressed, fields, payload)
        if status == 200:
            break
        assert time.monotonic() - killed_at < 300, f"{deployment} did not come back: {body}"
        time.sleep(2)
    recovery = time.monotonic() - killed_at
    seen = sorted(r[0] for r in results)
    print(f"killed {deployment}: clients saw {seen}; a request succeeded again {recovery:.1f} s after the kill")
    assert healthy(stressed, clip)


def test_a_stream_past_the_time_limit_ends_with_an_error_event(stressed, clip):
    """stream=true on an hour of speech: deltas while the time allows, then the 504's envelope as the
    last event, and the stream ends; the rest of the file's windows leave the ASR's batches."""
    import json

    import httpx

    long_audio = wav_bytes(np.tile(sample_samples(), LONG_TILES))
    events = []
    with httpx.stream("POST", f"{stressed.base_url}/audio/transcriptions", headers=stressed.headers(),
                      data={"model": "whisper-base", "stream": "true"},
                      files={"file": ("a.wav", long_audio, "audio/wav")}, timeout=CLIENT_TIMEOUT_S) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: "):]))
    kinds = [e["type"] for e in events]
    print(f"{kinds.count('transcript.text.delta')} deltas before the time limit")
    assert kinds[0] == "transcript.text.delta" and kinds[-1] == "error"
    assert set(kinds[:-1]) == {"transcript.text.delta"}
    assert events[-1]["error"]["type"] == "timeout_error" and "time limit" in events[-1]["error"]["message"]
    assert healthy(stressed, clip, "whisper-base")
