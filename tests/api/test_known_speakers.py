"""Known speakers (OpenAI's known_speaker_names[] + known_speaker_references[]) through the openai SDK:
reference clips cut from one part of sample.wav name its speakers in another part."""

from __future__ import annotations

import base64

import numpy as np
import openai
import pytest

from serve_app.eval.diarization import sample_item
from tests.support import sample_samples, wav_bytes

pytestmark = pytest.mark.slow

RATE = 16_000
SPLIT_S = 18.0  # the request is sample.wav before this; the reference clips come from after it
# sample.rttm after 18 s: speaker90 alone 18.6-21.5 s and 27.9-30 s, speaker91 alone 21.8-27.85 s.
CLIPS = {"Alice": ("speaker90", [(18.6, 21.45), (27.9, 30.0)]), "Bob": ("speaker91", [(21.8, 27.8)])}


def data_url(samples: np.ndarray) -> str:
    return "data:audio/wav;base64," + base64.b64encode(wav_bytes(samples)).decode()


def cut(samples: np.ndarray, spans) -> np.ndarray:
    return np.concatenate([samples[int(a * RATE): int(b * RATE)] for a, b in spans])


@pytest.fixture(scope="module")
def parts():
    samples = sample_samples()
    return wav_bytes(samples[: int(SPLIT_S * RATE)]), {name: cut(samples, spans) for name, (_, spans) in CLIPS.items()}


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=server.key, max_retries=0)


def reference_speaker_at(t: float) -> str | None:
    """The sample.rttm speaker talking at `t` (None in silence or overlap)."""
    ref = sample_item().reference
    speaking = {label for seg, _, label in ref.itertracks(yield_label=True) if seg.start <= t <= seg.end}
    return speaking.pop() if len(speaking) == 1 else None


def test_reference_clips_name_the_speakers_in_another_part_of_the_recording(client, parts):
    audio, clips = parts
    assert all(2.0 <= len(c) / RATE <= 10.0 for c in clips.values())
    result = client.audio.transcriptions.create(
        file=("first.wav", audio), model="whisper-1", response_format="diarized_json",
        known_speaker_names=list(clips), known_speaker_references=[data_url(c) for c in clips.values()],
    )
    assert type(result).__name__ == "TranscriptionDiarized"
    assert {s.speaker for s in result.segments} == {"Alice", "Bob"}
    expected = {rttm: name for name, (rttm, _) in CLIPS.items()}
    checked = [(s.speaker, expected[r]) for s in result.segments
               if (r := reference_speaker_at((s.start + s.end) / 2)) is not None]
    right = sum(got == want for got, want in checked)
    print(f"segments named as sample.rttm says: {right} of {len(checked)}")
    assert len(checked) >= 3 and right / len(checked) >= 0.75


def test_known_names_reach_words_segments_and_turns_and_the_others_keep_labels(server, parts):
    audio, clips = parts
    r = server.post(data={"diarize": "true", "response_format": "verbose_json", "timestamp_granularities[]": "word",
                          "known_speaker_names[]": ["Bob"], "known_speaker_references[]": [data_url(clips["Bob"])]},
                    files={"file": ("first.wav", audio)})
    assert r.status_code == 200, r.text
    body = r.json()
    speakers = {w["speaker_id"] for w in body["words"]}
    assert speakers == {"Bob", "SPEAKER_00"}  # the unnamed speaker is numbered as if alone
    assert {s["speaker_id"] for s in body["segments"]} <= speakers
    assert {t["speaker_id"] for t in body["speaker_segments"]} == speakers


@pytest.mark.parametrize("names, refs, param", [
    (["Alice"], [1.0], "known_speaker_references"),  # a 1 s clip: too short
    (["Alice"], [11.0], "known_speaker_references"),  # 11 s: too long
    (["Alice"], ["text"], "known_speaker_references"),  # not audio
    (["A", "B", "C", "D", "E"], [3.0] * 5, "known_speaker_names"),  # more than 4
    (["Alice", "Bob"], [3.0], "known_speaker_references"),  # names and references of different lengths
])
def test_bad_references_are_400_with_param(client, parts, names, refs, param):
    audio, _ = parts
    samples = sample_samples()

    def ref(spec):
        if spec == "text":
            return "data:audio/wav;base64," + base64.b64encode(b"hello, not audio at all " * 40).decode()
        return data_url(samples[int(1 * RATE): int((1 + spec) * RATE)])

    with pytest.raises(openai.BadRequestError) as err:
        client.audio.transcriptions.create(file=("first.wav", audio), model="whisper-1",
                                           response_format="diarized_json", known_speaker_names=names,
                                           known_speaker_references=[ref(s) for s in refs])
    assert err.value.status_code == 400
    assert err.value.body["param"] == param, err.value.body
