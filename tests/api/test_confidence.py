"""Confidence through the running service: each word's `probability` in verbose_json (both SDKs),
OpenAI's `include[]=logprobs` on json and on streamed deltas, and `usage` on json and verbose_json."""

from __future__ import annotations

import math

import openai
import pytest
from together import Together

from tests.support import SAMPLE_WAV, assert_envelope

pytestmark = pytest.mark.slow


def test_words_carry_their_probability_through_both_sdks(server):
    with open(SAMPLE_WAV, "rb") as f:
        together = Together(base_url=server.root_url, api_key=server.key).audio.transcriptions.create(
            file=f, model="openai/whisper-large-v3", response_format="verbose_json",
            timestamp_granularities=["word"])
    body = together.model_dump()
    words = body["words"]
    assert len(words) > 50 and all(0 < w["probability"] <= 1 for w in words)
    # not a constant: clear words are surer than the rest
    assert max(w["probability"] for w in words) > 0.9 > min(w["probability"] for w in words)
    assert body["usage"] == {"type": "duration", "seconds": pytest.approx(30.0, abs=0.05)}
    with open(SAMPLE_WAV, "rb") as f:
        verbose = openai.OpenAI(base_url=server.base_url, api_key=server.key).audio.transcriptions.create(
            file=f, model="whisper-1", response_format="verbose_json", timestamp_granularities=["word"])
    assert [w.probability for w in verbose.words] == [w["probability"] for w in words]
    assert verbose.usage.type == "duration" and verbose.usage.seconds == pytest.approx(30.0, abs=0.05)


def test_json_logprobs_through_the_openai_sdk(server):
    client = openai.OpenAI(base_url=server.base_url, api_key=server.key)
    with open(SAMPLE_WAV, "rb") as f:
        result = client.audio.transcriptions.create(file=f, model="whisper-1", include=["logprobs"])
    assert result.usage.type == "duration" and result.usage.seconds == pytest.approx(30.0, abs=0.05)
    logprobs = result.logprobs
    assert len(logprobs) > 50
    # the tokens spell the text (windows joined by the space their first token starts with)
    assert "".join(lp.token for lp in logprobs).strip() == result.text
    assert all(lp.logprob <= 0 and bytes(int(b) for b in lp.bytes).decode() == lp.token for lp in logprobs)
    assert math.exp(max(lp.logprob for lp in logprobs)) > 0.9 and math.exp(min(lp.logprob for lp in logprobs)) < 0.5
    with open(SAMPLE_WAV, "rb") as f:
        plain = client.audio.transcriptions.create(file=f, model="whisper-1")
    assert plain.logprobs is None and plain.text == result.text  # scoring the text does not change it


def test_streamed_deltas_carry_their_tokens_logprobs(server):
    client = openai.OpenAI(base_url=server.base_url, api_key=server.key)
    with open(SAMPLE_WAV, "rb") as f:
        events = list(client.audio.transcriptions.create(file=f, model="whisper-1", include=["logprobs"], stream=True))
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    assert deltas and all(e.logprobs for e in deltas)
    for e in deltas:
        assert "".join(lp.token for lp in e.logprobs).strip() == e.delta.strip()
    assert events[-1].type == "transcript.text.done"


def test_logprobs_with_another_format_is_refused(server):
    r = server.post(data={"response_format": "verbose_json", "include[]": "logprobs"},
                    files={"file": ("a.wav", SAMPLE_WAV.read_bytes(), "audio/wav")})
    assert_envelope(r, 400, "include")
