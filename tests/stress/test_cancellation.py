"""Cancellation reaches the work: requests whose clients leave (with Ray's `x-request-disconnect-disabled`
set, which this server's proxy honours: the stress app runs without serve_app/proxy.py) stop their
diarization, and the Diarizer, which runs one pipeline at a time, never runs two (its log says how many run
after every change)."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support import sample_samples, wav_bytes

pytestmark = pytest.mark.slow

# 8 minutes of speech: one diarization (about 40 s here) takes far longer than the clients below wait.
LONG = wav_bytes(np.concatenate([sample_samples()] * 16))
LINE = re.compile(r"^INFO (\S+ \S+) speech_Diarizer .*?-- diarizations: (running=(\d+)|a cancelled request)")


def diarizer_events(since: float) -> list[tuple[float, str, int]]:
    """(time, "running" | "stopping", count) from every Diarizer replica log of this Ray session."""
    events = []
    for path in Path("/tmp/ray/session_latest/logs/serve").glob("replica_speech_Diarizer_*.log"):
        for line in path.read_text(errors="replace").splitlines():
            m = LINE.match(line)
            if not m:
                continue
            t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if t >= since:
                events.append((t, "running" if m.group(3) else "stopping", int(m.group(3) or 0)))
    return sorted(events)


def leave_early(server, wait_s: float) -> str:
    """A diarized request whose client hangs up after `wait_s`, asking Ray not to notice."""
    headers = {**server.headers(), "x-request-disconnect-disabled": "?1", "x-request-timeout-seconds": "100000"}
    try:
        httpx.post(f"{server.base_url}/audio/transcriptions", headers=headers,
                   data={"model": "whisper-tiny.en", "diarize": "true"},
                   files={"file": ("long.wav", LONG)}, timeout=wait_s)
    except httpx.TimeoutException:
        return "left"
    return "answered"


def test_clients_that_leave_stop_their_diarization_and_one_stays_one(stressed, clip):
    since = time.time() - 1
    # Three clients leave mid-diarization, one after another and two at once.
    assert leave_early(stressed, 4) == "left"
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(lambda w: leave_early(stressed, w), [3, 5])) == ["left", "left"]
    # A request that stays gets its answer, from the same replica.
    r = stressed.post(data={"model": "whisper-tiny.en", "diarize": "true"}, files={"file": ("a.wav", clip)},
                      timeout=300)
    assert r.status_code == 200 and "hello" in r.json()["text"].lower()
    events = diarizer_events(since)
    counts = [n for _, kind, n in events if kind == "running"]
    print("Diarizer:", [(round(t - since, 1), kind, n) for t, kind, n in events])
    assert counts and max(counts) == 1, f"the Diarizer ran {max(counts)} pipelines at once"
    assert counts[-1] == 0
    stops = [t for t, kind, _ in events if kind == "stopping"]
    assert len(stops) >= 2, "cancelled diarizations were not stopped"
    # Each stopped run ended soon after its stop (a full run of this file takes far longer).
    for t in stops:
        ended = next(u for u, kind, n in events if u >= t and kind == "running" and n == 0)
        print(f"stopped {ended - t:.2f} s after the cancellation")
        assert ended - t < 20
