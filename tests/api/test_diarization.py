"""Speaker diarization through the API: the Diarizer beside ASR, merged into words and speaker turns."""

from __future__ import annotations

import itertools

import numpy as np
import openai
import pytest
from pyannote.core import Annotation, Segment
from together import Together

from serve_app.eval.diarization import der, sample_item
from tests.support import SAMPLE_WAV, stm_turns, wav_bytes

pytestmark = pytest.mark.slow


def reference_speaker(start: float, end: float, turns) -> str:
    """The sample.stm speaker at a word's midpoint (the nearest line when it falls between lines)."""
    mid = (start + end) / 2
    return min(turns, key=lambda t: max(t[1] - mid, mid - t[2], 0.0))[0]


def best_mapping_accuracy(pairs: list[tuple[str, str]]) -> float:
    hyp = sorted({h for h, _ in pairs})
    ref = sorted({r for _, r in pairs})
    best = 0
    for perm in itertools.permutations(ref + [None] * max(0, len(hyp) - len(ref)), len(hyp)):
        mapping = dict(zip(hyp, perm))
        best = max(best, sum(mapping[h] == r for h, r in pairs))
    return best / len(pairs)


@pytest.fixture(scope="module")
def together_diarized(server):
    client = Together(base_url=server.root_url, api_key=server.key)
    response = client.audio.transcriptions.create(
        file=open(SAMPLE_WAV, "rb"),
        model="openai/whisper-large-v3",
        language="en",
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
        diarize=True,
    )
    return response.model_dump()


def test_together_diarize_gives_two_speakers_on_the_right_words(together_diarized):
    body = together_diarized
    words = body["words"]
    assert words and all(w["speaker_id"] for w in words)
    assert {w["speaker_id"] for w in words} == {"SPEAKER_00", "SPEAKER_01"}
    assert words[0]["speaker_id"] == "SPEAKER_00"  # labels in order of first appearance
    turns = stm_turns()
    pairs = [(w["speaker_id"], reference_speaker(w["start"], w["end"], turns)) for w in words]
    accuracy = best_mapping_accuracy(pairs)
    print(f"words with the sample.stm speaker (best mapping): {accuracy:.3f} of {len(pairs)}")
    assert accuracy >= 0.90


def test_speaker_segments_group_words_and_score_well(together_diarized):
    body = together_diarized
    segments = body["speaker_segments"]
    # Every word in exactly one speaker segment, in order, with the same word objects.
    assert [w for s in segments for w in s["words"]] == body["words"]
    for a, b in zip(segments, segments[1:]):
        # In order; turns of two speakers may overlap where both speak, one speaker's never do, and one
        # speaker has two turns in a row only across a pause.
        assert a["start"] <= b["start"]
        assert a["speaker_id"] != b["speaker_id"] or b["words"][0]["start"] - a["words"][-1]["end"] > 0
        assert a["speaker_id"] != b["speaker_id"] or a["end"] <= b["start"]
    for s in segments:
        assert {w["speaker_id"] for w in s["words"]} == {s["speaker_id"]}
        assert s["text"] == " ".join(w["word"] for w in s["words"])
    assert all(seg["speaker_id"] in {"SPEAKER_00", "SPEAKER_01"} for seg in body["segments"])
    # DER of the returned turns against the reference turns, collar 0.25 s.
    hyp = Annotation(uri="sample")
    for s in segments:
        hyp[Segment(s["start"], s["end"])] = s["speaker_id"]
    score = der([sample_item()], {"sample": hyp}, 0.25)
    print(f"DER (collar 0.25) of the API's speaker_segments on sample.wav: {score:.4f}")
    assert score <= 0.10


def test_openai_diarized_json(server):
    client = openai.OpenAI(base_url=server.base_url, api_key=server.key)
    with open(SAMPLE_WAV, "rb") as f:
        result = client.audio.transcriptions.create(file=f, model="whisper-1", response_format="diarized_json")
    assert type(result).__name__ == "TranscriptionDiarized"  # the SDK parsed it into its own model
    assert result.task == "transcribe" and result.duration == pytest.approx(30.0, abs=0.05)
    assert result.segments and {s.speaker for s in result.segments} == {"SPEAKER_00", "SPEAKER_01"}
    assert [s.id for s in result.segments] == [f"seg_{i}" for i in range(len(result.segments))]
    assert all(s.type == "transcript.text.segment" and s.start <= s.end for s in result.segments)
    assert " ".join(s.text for s in result.segments) == result.text


def test_speaker_count_hints_reach_the_diarizer(server):
    r = server.post(data={"diarize": "true", "max_speakers": "1", "response_format": "verbose_json"},
                    files={"file": ("sample.wav", SAMPLE_WAV.read_bytes())})
    assert r.status_code == 200, r.text
    assert {s["speaker_id"] for s in r.json()["speaker_segments"]} == {"SPEAKER_00"}


def test_undiarized_response_has_no_speakers(server):
    r = server.post(data={"response_format": "verbose_json", "timestamp_granularities[]": "word"},
                    files={"file": ("sample.wav", SAMPLE_WAV.read_bytes())})
    body = r.json()
    assert "speaker_segments" not in body and all("speaker_id" not in w for w in body["words"])


def test_diarize_on_silence_is_empty_not_an_error(server):
    r = server.post(data={"diarize": "true", "response_format": "verbose_json"},
                    files={"file": ("silence.wav", wav_bytes(np.zeros(16000 * 3, dtype=np.float32)))})
    assert r.status_code == 200, r.text
    assert r.json()["speaker_segments"] == [] and r.json()["text"] == ""
