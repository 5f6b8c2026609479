"""stream=true on /v1/audio/transcriptions: OpenAI's server-sent events through the real service.

Read with the `openai` SDK (typed events) and as raw SSE lines over httpx (what any other client sees).
"""

from __future__ import annotations

import json
import time

import httpx
import numpy as np
import openai
import pytest

from tests.support import SAMPLE_WAV, sample_samples, stm_text, wav_bytes, word_error_rate

pytestmark = pytest.mark.slow


def raw_events(server, data: dict, audio: bytes) -> tuple[httpx.Response, list[tuple[float, dict]]]:
    """POST with stream=true and read the SSE stream line by line: (response, [(seconds since the request
    was sent, event)])."""
    events: list[tuple[float, dict]] = []
    sent = time.monotonic()
    with httpx.stream("POST", f"{server.base_url}/audio/transcriptions", headers=server.headers(),
                      data={"stream": "true", **data}, files={"file": ("a.wav", audio, "audio/wav")},
                      timeout=300) as response:
        if response.status_code != 200:
            response.read()
            return response, events
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append((time.monotonic() - sent, json.loads(line[len("data: "):])))
            else:
                assert line == "", f"unexpected SSE line {line!r}"
    return response, events


def test_openai_sdk_streams_deltas_then_done(server):
    client = openai.OpenAI(base_url=server.base_url, api_key=server.key)
    with open(SAMPLE_WAV, "rb") as f:
        stream = client.audio.transcriptions.create(file=f, model="whisper-1", stream=True)
        events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[-1] == "transcript.text.done" and set(kinds[:-1]) == {"transcript.text.delta"}, kinds
    assert len(kinds) >= 2
    done = events[-1]
    assert "".join(e.delta for e in events[:-1]).strip() == done.text
    assert word_error_rate(stm_text(), done.text) <= 0.25
    assert done.usage.type == "duration" and done.usage.seconds == pytest.approx(30.0, abs=0.05)


def test_the_first_delta_of_a_long_file_comes_before_the_end(server):
    """9.5 minutes of speech (19 windows, batches of 4 in dev.yaml): the first batch's text arrives long
    before the last window is decoded."""
    audio = wav_bytes(np.tile(sample_samples(), 19))
    response, events = raw_events(server, {"model": "whisper-base", "response_format": "json"}, audio)
    assert response.status_code == 200, response.text
    deltas = [(t, e) for t, e in events if e["type"] == "transcript.text.delta"]
    done_at, done = events[-1]
    assert done["type"] == "transcript.text.done"
    assert len(deltas) >= 19, [e for _, e in events]  # at least one per window
    first_at = deltas[0][0]
    print(f"first delta {first_at:.2f} s, done {done_at:.2f} s, {len(deltas)} deltas")
    assert first_at < done_at / 2
    assert "".join(e["delta"] for _, e in deltas).strip() == done["text"]
    assert done["usage"] == {"type": "duration", "seconds": pytest.approx(570.0, abs=0.1)}
    # The same text as the same audio sent without stream.
    plain = server.post(data={"model": "whisper-base"}, files={"file": ("a.wav", audio, "audio/wav")})
    assert plain.status_code == 200 and plain.json()["text"] == done["text"]


def test_diarized_json_streams_speaker_segments(server):
    client = openai.OpenAI(base_url=server.base_url, api_key=server.key)
    with open(SAMPLE_WAV, "rb") as f:
        events = list(client.audio.transcriptions.create(
            file=f, model="whisper-1", response_format="diarized_json", stream=True))
    kinds = [e.type for e in events]
    assert kinds[-1] == "transcript.text.done"
    segments = [e for e in events if e.type == "transcript.text.segment"]
    assert len(segments) >= 2 and {s.speaker for s in segments} == {"SPEAKER_00", "SPEAKER_01"}
    assert [s.id for s in segments] == [f"seg_{i}" for i in range(len(segments))]
    for a, b in zip(segments, segments[1:]):  # two speakers' turns may overlap where both speak
        assert a.start <= a.end and a.start <= b.start and (a.speaker != b.speaker or a.end <= b.start)
    # Deltas first (as windows are decoded), then the turns (they need the whole file), then done.
    assert kinds.index("transcript.text.segment") > max(i for i, k in enumerate(kinds) if k == "transcript.text.delta")
    assert " ".join(s.text for s in segments).split() == events[-1].text.split()


def test_verbose_json_done_carries_the_verbose_body(server):
    """verbose_json streams deltas, then a done event with the rest of the verbose body: the same segments,
    words and speaker turns as the same request without stream (what the playground draws from)."""
    fields = {"model": "whisper-base", "response_format": "verbose_json", "diarize": "true",
              "timestamp_granularities[]": ["word", "segment"]}
    audio = SAMPLE_WAV.read_bytes()
    response, events = raw_events(server, fields, audio)
    assert response.status_code == 200, response.text
    done = events[-1][1]
    assert done["type"] == "transcript.text.done" and done["usage"]["seconds"] == pytest.approx(30.0, abs=0.05)
    plain = server.post(data=fields, files={"file": ("a.wav", audio, "audio/wav")})
    assert plain.status_code == 200, plain.text
    body = plain.json()
    for key in ("text", "language", "duration"):
        assert done[key] == body[key]
    assert [w["word"] for w in done["words"]] == [w["word"] for w in body["words"]]
    assert [t["speaker_id"] for t in done["speaker_segments"]] == [t["speaker_id"] for t in body["speaker_segments"]]
    assert len(done["segments"]) == len(body["segments"]) >= 2


@pytest.mark.parametrize("fmt", ["text", "srt", "vtt"])
def test_stream_with_a_text_format_is_refused(server, fmt):
    response, _ = raw_events(server, {"response_format": fmt}, wav_bytes(sample_samples()[:16000]))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "stream"


def test_an_error_before_the_first_window_is_an_ordinary_error_response(server):
    response, events = raw_events(server, {}, b"this is not audio at all, only text" * 10)
    assert response.status_code == 415 and events == []
    assert response.json()["error"]["code"] == "unsupported_container"
    response, _ = raw_events(server, {"stream": "maybe"}, wav_bytes(sample_samples()[:16000]))
    assert response.status_code == 400 and response.json()["error"]["param"] == "stream"


def test_silence_streams_only_done(server):
    response, events = raw_events(server, {}, wav_bytes(np.zeros(16000 * 3, dtype=np.float32)))
    assert response.status_code == 200
    assert [e for _, e in events] == [{"type": "transcript.text.done", "text": "",
                                       "usage": {"type": "duration", "seconds": 3.0}}]
