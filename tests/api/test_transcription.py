"""The transcription API end to end: real app, real models, real HTTP, the official SDKs."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import openai
import pytest
import yaml
from together import Together

from tests.support import CONTAINERS, SAMPLE_WAV, encode, espeak, sample_samples, stm_text, wav_bytes, word_error_rate

pytestmark = pytest.mark.slow

VERBOSE_SEGMENT_FIELDS = {
    "id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob", "compression_ratio", "no_speech_prob",
}


def test_together_example_transcribes_sample_within_wer(server):
    # The Together API reference example, verbatim but for base_url (and the key of this test server).
    # NOTE: together>=2 joins "/v1/audio/..." onto base_url itself, so its base_url has no /v1.
    client = Together(base_url=server.root_url, api_key=server.key)
    response = client.audio.transcriptions.create(
        file=open(SAMPLE_WAV, "rb"),
        model="openai/whisper-large-v3",
        language="en",
    )
    print(response.text)
    wer = word_error_rate(stm_text(), response.text)
    print(f"WER vs sample.stm (whisper-base): {wer:.3f}")
    assert wer <= 0.25


def test_openai_verbose_json_with_words_and_segments(server):
    client = openai.OpenAI(base_url=server.base_url, api_key=server.key)
    with open(SAMPLE_WAV, "rb") as f:
        result = client.audio.transcriptions.create(
            file=f, model="whisper-1", response_format="verbose_json", timestamp_granularities=["word", "segment"]
        )
    body = result.model_dump()
    assert body["task"] == "transcribe"
    assert body["language"] == "english"
    assert body["duration"] == pytest.approx(30.0, abs=0.05)
    assert body["segments"], "no segments"
    for i, seg in enumerate(body["segments"]):
        assert VERBOSE_SEGMENT_FIELDS <= set(seg), f"segment {i} lacks {VERBOSE_SEGMENT_FIELDS - set(seg)}"
        assert seg["id"] == i
        assert 0 <= seg["start"] <= seg["end"] <= body["duration"]
        assert seg["tokens"] and all(isinstance(t, int) and t > 0 for t in seg["tokens"])
        assert -5 < seg["avg_logprob"] < 0 and seg["compression_ratio"] > 0
        assert 0 <= seg["no_speech_prob"] <= 1 and 0 <= seg["temperature"] <= 1
    words = body["words"]
    assert len(words) > 50
    assert [w["id"] for w in words] == list(range(len(words)))
    starts = [w["start"] for w in words]
    assert starts == sorted(starts), "word start times are not monotonic"
    for w in words:
        assert 0 <= w["start"] <= w["end"] <= body["duration"]
    assert " ".join(w["word"] for w in words).split() == body["text"].split()


def test_segments_only_when_words_not_asked(server):
    r = server.post(data={"response_format": "verbose_json"}, files={"file": ("s.wav", SAMPLE_WAV.read_bytes())})
    assert r.status_code == 200, r.text
    assert "words" not in r.json() and r.json()["segments"]


@pytest.mark.parametrize("kind", list(CONTAINERS))
def test_every_container_decodes(server, kind):
    container, codec, rate, layout = CONTAINERS[kind]
    clip = sample_samples()[int(6.3 * 16000) : int(14.4 * 16000)]  # "Hello? Hello? Oh, hello. ..."
    data = encode(clip, container, codec, rate, layout)
    ext = kind.split("-")[0]
    r = server.post(data={"model": "whisper-tiny.en", "response_format": "verbose_json"}, files={"file": (f"clip.{ext}", data)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["duration"] == pytest.approx(len(clip) / 16000, abs=0.1)
    assert "hello" in body["text"].lower()


def test_language_auto_detects_german_and_translation_gives_english(server):
    german = espeak("Guten Tag. Ich heiße Anna und ich wohne in Berlin. Heute ist das Wetter sehr schön.", "de")
    client = openai.OpenAI(base_url=server.base_url, api_key=server.key)
    detected = client.audio.transcriptions.create(
        file=("de.wav", german), model="whisper-1", response_format="verbose_json", language="auto"
    )
    assert detected.language == "german"
    assert "berlin" in detected.text.lower()
    translated = client.audio.translations.create(file=("de.wav", german), model="whisper-1", response_format="verbose_json")
    assert translated.model_dump()["task"] == "translate"
    assert "berlin" in translated.text.lower()
    assert re.search(r"\b(my name|today|weather|live)\b", translated.text.lower()), translated.text


def test_text_srt_vtt_bodies(server):
    client = openai.OpenAI(base_url=server.base_url, api_key=server.key)
    data = SAMPLE_WAV.read_bytes()
    text = client.audio.transcriptions.create(file=("s.wav", data), model="whisper-1", response_format="text")
    assert isinstance(text, str) and "New Jersey" in text and not text.lstrip().startswith("{")

    stamp = r"(\d\d):(\d\d):(\d\d)[,.](\d\d\d)"
    srt = client.audio.transcriptions.create(file=("s.wav", data), model="whisper-1", response_format="srt")
    blocks = [b for b in srt.strip().split("\n\n") if b.strip()]
    assert blocks
    for n, block in enumerate(blocks, start=1):
        lines = block.split("\n")
        assert lines[0] == str(n)
        m = re.fullmatch(stamp.replace("[,.]", ",") + " --> " + stamp.replace("[,.]", ","), lines[1])
        assert m, lines[1]
        assert lines[2].strip()

    vtt = client.audio.transcriptions.create(file=("s.wav", data), model="whisper-1", response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n")
    cues = [b for b in vtt.split("\n\n")[1:] if b.strip()]
    assert len(cues) == len(blocks)
    for cue in cues:
        timing, *rest = cue.split("\n")
        assert re.fullmatch(stamp.replace("[,.]", r"\.") + " --> " + stamp.replace("[,.]", r"\."), timing), timing
        assert rest and rest[0].strip()


def test_silence_gives_empty_text(server):
    silence = wav_bytes(np.zeros(16000 * 10, dtype=np.float32))
    for model in ("whisper-base", "whisper-tiny.en"):
        r = server.post(data={"model": model}, files={"file": ("silence.wav", silence)})
        assert r.status_code == 200, r.text
        assert r.json() == {"text": "", "usage": {"type": "duration", "seconds": 10.0}}


def test_concurrent_requests_share_batches(server):
    """Eight requests in flight: the ASR deployment decodes windows of different requests together."""
    data = SAMPLE_WAV.read_bytes()

    def one(_):
        return server.post(files={"file": ("s.wav", data)}, timeout=600)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(one, range(8)))
    texts = set()
    sizes: list[int] = []
    for r in responses:
        assert r.status_code == 200, r.text
        texts.add(r.json()["text"])
        sizes += [int(s) for s in r.headers["x-asr-batch-sizes"].split(",") if s]
    print("batch sizes seen:", sizes)
    assert max(sizes) > 1
    # Batching must not change the answer: every request got the same text.
    assert len(texts) == 1


def test_models_lists_served_models_and_aliases(server):
    client = openai.OpenAI(base_url=server.base_url, api_key=server.key)
    cards = {m.id: m.model_dump() for m in client.models.list()}
    assert {"whisper-base", "whisper-tiny.en", "openai/whisper-large-v3", "whisper-1"} <= set(cards)
    assert cards["openai/whisper-large-v3"]["root"] == "whisper-base"
    assert cards["whisper-tiny.en"]["root"] == "whisper-tiny.en"


def test_route_without_v1_prefix(server):
    r = httpx.post(
        f"{server.root_url}/audio/transcriptions",
        headers=server.headers(),
        files={"file": ("s.wav", wav_bytes(sample_samples()[int(6.3 * 16000) : int(10 * 16000)]))},
        data={"model": "whisper-tiny.en"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    assert "hello" in r.json()["text"].lower()


def _base_batch_size(server) -> int:
    """whisper-base's `max_batch_size` in the config the test server runs."""
    deployments = yaml.safe_load(server.config_path.read_text())["applications"][0]["deployments"]
    return next(d["user_config"]["max_batch_size"] for d in deployments if d["name"] == "WhisperASR-whisper-base")


def test_batch_settings_change_live(server, tmp_path):
    """`max_batch_size` is user_config: `serve deploy` changes it in the running replica, no restart."""
    def deploy(max_batch_size: int) -> None:
        server.redeploy("WhisperASR-whisper-base", {"max_batch_size": max_batch_size},
                        tmp_path / f"batch{max_batch_size}.yaml")

    data = SAMPLE_WAV.read_bytes()
    original = _base_batch_size(server)
    assert original > 1

    def burst() -> list[int]:
        with ThreadPoolExecutor(max_workers=6) as pool:
            responses = list(pool.map(lambda _: server.post(files={"file": ("s.wav", data)}, timeout=600), range(6)))
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
        return [int(s) for r in responses for s in r.headers["x-asr-batch-sizes"].split(",") if s]

    deploy(1)
    try:
        deadline = time.monotonic() + 180
        sizes = burst()
        while max(sizes) > 1 and time.monotonic() < deadline:  # until the new user_config has landed
            time.sleep(2)
            sizes = burst()
        assert sizes and max(sizes) == 1, sizes
    finally:
        deploy(original)
    deadline = time.monotonic() + 180
    while max(burst()) == 1:
        assert time.monotonic() < deadline, f"max_batch_size did not go back to {original}"
        time.sleep(2)


def test_short_request_is_not_held_behind_a_long_file(server):
    """Each batch takes the windows due first, so a short request sent while a long file runs goes ahead of
    the file's remaining windows and is answered long before it ends (Serve's batch queue alone is first
    come, first served)."""
    samples = sample_samples()
    long_wav = wav_bytes(np.tile(samples, 10))  # 5 minutes: a dozen windows, more than one batch
    short_wav = wav_bytes(samples[int(6.4 * 16000) : int(11.4 * 16000)])
    finished: dict[str, float] = {}
    windows: dict[str, int] = {}
    batch = _base_batch_size(server)

    def send(name: str, payload: bytes, delay: float) -> None:
        time.sleep(delay)
        r = server.post(files={"file": (f"{name}.wav", payload)}, timeout=600)
        assert r.status_code == 200, r.text
        finished[name] = time.monotonic()
        windows[name] = len(r.headers["x-asr-batch-sizes"].split(","))

    with ThreadPoolExecutor(max_workers=2) as pool:
        # 3 s: the long file's windows are split and queued by then (VAD of 5 minutes takes well under that).
        futures = [pool.submit(send, "long", long_wav, 0), pool.submit(send, "short", short_wav, 3)]
        for f in futures:
            f.result()
    assert windows["long"] > batch, windows  # otherwise the long file fits in one batch and proves nothing
    assert finished["short"] < finished["long"], finished
