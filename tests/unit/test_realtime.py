"""Realtime sessions (pipeline/realtime.py) without a server: the dialects' configuration, and the engine with a
loudness VAD and a fake transcriber whose text grows with the audio (so partial decodes agree on a prefix).
Every event a session sends is validated against the `openai` SDK's GA realtime types (but Together's
session shape, which the SDK does not know)."""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
import pytest
from openai.types import realtime as sdk

from serve_app.errors import InvalidRequest
from serve_app.pipeline.live import FRAME, AudioFormat, TurnDetection
from serve_app.pipeline.realtime import (
    RealtimeLimits,
    RealtimeSession,
    SessionSettings,
    apply_update,
    settings_from_query,
)

RATE = 16_000
WORDS = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen".split()
MODELS = {"whisper-tiny.en": "whisper-tiny.en", "whisper-base": "whisper-base", "whisper-1": "whisper-base"}
resolve = MODELS.get

SDK_EVENTS = {
    "session.created": sdk.SessionCreatedEvent, "session.updated": sdk.SessionUpdatedEvent,
    "input_audio_buffer.speech_started": sdk.InputAudioBufferSpeechStartedEvent,
    "input_audio_buffer.speech_stopped": sdk.InputAudioBufferSpeechStoppedEvent,
    "input_audio_buffer.committed": sdk.InputAudioBufferCommittedEvent,
    "input_audio_buffer.cleared": sdk.InputAudioBufferClearedEvent,
    "conversation.item.input_audio_transcription.delta": sdk.ConversationItemInputAudioTranscriptionDeltaEvent,
    "conversation.item.input_audio_transcription.completed":
        sdk.ConversationItemInputAudioTranscriptionCompletedEvent,
    "conversation.item.input_audio_transcription.failed": sdk.ConversationItemInputAudioTranscriptionFailedEvent,
    "error": sdk.RealtimeErrorEvent,
}


def loudness_vad():
    return lambda frame: 0.9 if float(np.abs(frame).mean()) > 0.1 else 0.0


def tone(kind: str, seconds: float) -> np.ndarray:
    n = int(round(seconds * RATE / FRAME)) * FRAME
    return np.full(n, 0.5 if kind == "speech" else 0.0, dtype=np.float32)


def pcm(samples: np.ndarray) -> str:
    return base64.b64encode((samples * 32767).astype("<i2").tobytes()).decode()


async def growing_text(model, samples, options, partial) -> str:
    """Two words per second of audio, always the same words: every decode extends the last."""
    await asyncio.sleep(0)
    return " ".join(WORDS[: max(1, int(len(samples) / RATE * 2))])


class Harness:
    def __init__(self, settings: SessionSettings | None = None, transcribe=growing_text,
                 limits: RealtimeLimits = RealtimeLimits(partial_interval_s=0.5)) -> None:
        self.events: list[dict] = []

        async def send(event: dict) -> None:
            cls = SDK_EVENTS.get(event["type"])
            if cls is not None and not (event["type"] == "session.created" and settings_of(event) == "together"):
                cls.model_validate(event)  # the SDK's own type, strictly
            json.dumps(event)
            self.events.append(event)

        self.session = RealtimeSession(settings or SessionSettings("together", "whisper-base"),
                                       transcribe=transcribe, make_vad=loudness_vad, send=send,
                                       resolve_model=resolve, limits=limits)

    async def feed(self, samples: np.ndarray, chunk_s: float = 0.1) -> None:
        step = int(chunk_s * RATE)
        for i in range(0, len(samples), step):
            await self.session.handle(json.dumps({"type": "input_audio_buffer.append", "audio": pcm(samples[i : i + step])}))
            await asyncio.sleep(0)

    def kinds(self) -> list[str]:
        return [e["type"] for e in self.events]

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["type"] == kind]


def settings_of(event: dict) -> str:
    return "together" if "model" in event.get("session", {}) else "openai"


COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"


# -- configuration --

def test_together_query_defaults_and_parameters():
    s = settings_from_query({"model": "whisper-tiny.en", "input_audio_format": "pcm_s16le_16000"}, "whisper-base", resolve)
    assert (s.dialect, s.model, s.audio_format, s.turn_detection) == ("together", "whisper-tiny.en",
                                                                      AudioFormat("pcm16", 16000), TurnDetection())
    s = settings_from_query({"model": "whisper-1", "threshold": "0.6", "min_silence_duration_ms": "300",
                             "max_speech_duration_s": "12", "language": "EN"}, "whisper-base", resolve)
    assert s.model == "whisper-base" and s.language == "en"
    assert s.turn_detection == TurnDetection(threshold=0.6, min_silence_duration_ms=300, max_speech_duration_s=12)
    assert settings_from_query({"turn_detection": "none"}, "whisper-base", resolve).turn_detection is None


def test_openai_intent_starts_with_24_khz_pcm():
    s = settings_from_query({"intent": "transcription", "model": "gpt-realtime"}, "whisper-base", resolve)
    assert (s.dialect, s.model, s.audio_format) == ("openai", "whisper-base", AudioFormat("pcm16", 24000))


@pytest.mark.parametrize("query, param", [
    ({"model": "nope"}, "model"), ({"intent": "conversation"}, "intent"),
    ({"input_audio_format": "mp3"}, "input_audio_format"), ({"threshold": "x"}, "threshold"),
    ({"max_speech_duration_s": "45"}, "turn_detection"), ({"language": "xx"}, "language"),
])
def test_bad_queries_name_their_parameter(query, param):
    with pytest.raises(InvalidRequest) as err:
        settings_from_query(query, "whisper-base", resolve)
    assert err.value.param == param


def test_updates_in_every_shape():
    base = SessionSettings("openai", "whisper-base", AudioFormat("pcm16", 24000))
    ga = apply_update(base, {"type": "transcription", "audio": {"input": {
        "format": {"type": "audio/pcmu"}, "transcription": {"model": "whisper-tiny.en", "language": "en", "prompt": "Hi"},
        "turn_detection": {"type": "server_vad", "silence_duration_ms": 700, "prefix_padding_ms": 100}}}}, resolve)
    assert ga.audio_format == AudioFormat("pcmu", 8000) and (ga.model, ga.language, ga.prompt) == ("whisper-tiny.en", "en", "Hi")
    assert ga.turn_detection == TurnDetection(min_silence_duration_ms=700, speech_pad_ms=100)
    beta = apply_update(base, {"input_audio_format": "g711_alaw", "turn_detection": None,
                               "input_audio_transcription": {"model": "whisper-1"}}, resolve)
    assert beta.audio_format == AudioFormat("pcma", 8000) and beta.turn_detection is None
    together = apply_update(base, {"model": "whisper-tiny.en", "turn_detection": {"threshold": 0.4}}, resolve)
    assert together.model == "whisper-tiny.en" and together.turn_detection == TurnDetection(threshold=0.4)
    assert apply_update(base, {}, resolve) == base  # keys left out keep their value


@pytest.mark.parametrize("session, param", [
    ({"type": "realtime"}, "session.type"),
    ({"turn_detection": {"type": "semantic_vad"}}, "session.turn_detection.type"),
    ({"turn_detection": {"eagerness": "low"}}, "session.turn_detection.eagerness"),
    ({"turn_detection": {"threshold": "high"}}, "session.turn_detection.threshold"),
    ({"audio": {"input": {"format": {"type": "audio/pcm", "rate": 4000}}}}, "session.audio.input.format"),
    ({"audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}}, "session.audio.input.transcription.model"),
    ({"input_audio_transcription": "whisper-1"}, "session.input_audio_transcription"),
])
def test_bad_updates_name_their_parameter(session, param):
    with pytest.raises(InvalidRequest) as err:
        apply_update(SessionSettings("openai", "whisper-base"), session, resolve)
    assert err.value.param == param


# -- the engine --

def test_a_turn_gives_partial_deltas_then_its_final_text():
    async def run():
        h = Harness(SessionSettings("together", "whisper-base", turn_detection=TurnDetection(max_speech_duration_s=8)))
        await h.session.start()
        await h.feed(np.concatenate([tone("silence", 0.5), tone("speech", 3.0), tone("silence", 1.0)]))
        await h.session.drain()
        return h

    h = asyncio.run(run())
    kinds = h.kinds()
    assert kinds[0] == "session.created"
    assert kinds.index("input_audio_buffer.speech_started") < kinds.index(DELTA) < kinds.index(
        "input_audio_buffer.speech_stopped") < kinds.index("input_audio_buffer.committed") < kinds.index(COMPLETED)
    completed = h.of(COMPLETED)[0]
    assert "".join(e["delta"] for e in h.of(DELTA)) == completed["transcript"]  # the deltas add up to it
    assert completed["usage"] == {"type": "duration", "seconds": pytest.approx(3.0 + 2 * 0.25, abs=0.05)}
    assert len({e["event_id"] for e in h.events}) == len(h.events)


def test_items_complete_in_the_order_spoken_even_when_a_later_one_decodes_first():
    async def slow_first(model, samples, options, partial):
        if not partial and len(samples) > 2 * RATE:
            await asyncio.sleep(0.3)
        return "long" if len(samples) > 2 * RATE else "short"

    async def run():
        h = Harness(transcribe=slow_first, limits=RealtimeLimits(partial_interval_s=30))
        await h.feed(np.concatenate([tone("speech", 2.5), tone("silence", 1.0), tone("speech", 0.5), tone("silence", 1.0)]))
        await h.session.drain()
        return h

    h = asyncio.run(run())
    assert [e["transcript"] for e in h.of(COMPLETED)] == ["long", "short"]
    first, second = h.of("input_audio_buffer.committed")
    assert second["previous_item_id"] == first["item_id"]


def test_a_turn_longer_than_max_speech_is_split_into_items():
    async def run():
        h = Harness(SessionSettings("together", "whisper-base", turn_detection=TurnDetection(max_speech_duration_s=2.0)))
        await h.feed(np.concatenate([tone("speech", 5.0), tone("silence", 1.0)]))
        await h.session.drain()
        return h

    h = asyncio.run(run())
    assert len(h.of(COMPLETED)) == 3
    assert len(h.of("input_audio_buffer.speech_started")) == len(h.of("input_audio_buffer.speech_stopped")) == 3


def test_manual_commits_and_their_errors():
    async def run():
        h = Harness(SessionSettings("together", "whisper-base", turn_detection=None),
                    limits=RealtimeLimits(max_buffer_s=3))
        await h.session.handle(json.dumps({"type": "input_audio_buffer.commit"}))  # nothing yet
        await h.feed(tone("speech", 2.0))
        await h.feed(tone("speech", 2.0), chunk_s=2.0)  # past the 3 s buffer: refused, dropped
        await h.session.handle(json.dumps({"type": "input_audio_buffer.commit"}))
        await h.session.drain()
        return h

    h = asyncio.run(run())
    errors = [e["error"]["code"] for e in h.of("error")]
    assert errors == ["input_audio_buffer_commit_empty", "input_audio_buffer_full"]
    assert "input_audio_buffer.speech_started" not in h.kinds()
    assert [e["transcript"] for e in h.of(COMPLETED)] == ["one two three"]  # 1.98 s (whole VAD frames)


def test_a_failed_item_reports_the_envelope_and_the_next_one_works():
    calls = []

    async def fail_once(model, samples, options, partial):
        calls.append(partial)
        if len([c for c in calls if not c]) == 1 and not partial:
            raise InvalidRequest("Model 'whisper-tiny.en' is English-only.", param="language")
        return "fine"

    async def run():
        h = Harness(transcribe=fail_once, limits=RealtimeLimits(partial_interval_s=30))
        for _ in range(2):
            await h.feed(np.concatenate([tone("speech", 1.0), tone("silence", 1.0)]))
        await h.session.drain()
        return h

    h = asyncio.run(run())
    failed = h.of("conversation.item.input_audio_transcription.failed")
    assert len(failed) == 1 and failed[0]["error"]["param"] == "language"
    assert [e["transcript"] for e in h.of(COMPLETED)] == ["fine"]


def test_a_bug_in_a_decode_shows_only_a_request_id():
    async def broken(model, samples, options, partial):
        raise RuntimeError("secret detail")

    async def run():
        h = Harness(transcribe=broken)
        await h.feed(np.concatenate([tone("speech", 1.0), tone("silence", 1.0)]))
        await h.session.drain()
        return h

    failed = asyncio.run(run()).of("conversation.item.input_audio_transcription.failed")[0]
    assert "request id" in failed["error"]["message"] and "secret" not in failed["error"]["message"]


def test_close_cancels_the_decodes_a_session_waits_for():
    cancelled = []

    async def forever(model, samples, options, partial):
        try:
            await asyncio.sleep(3600)
        finally:
            cancelled.append(partial)

    async def run():
        h = Harness(transcribe=forever)
        await h.feed(np.concatenate([tone("speech", 1.5), tone("silence", 1.0)]))
        await h.session.close()
        await h.session.handle(json.dumps({"type": "input_audio_buffer.commit"}))  # nothing is sent any more
        return h

    h = asyncio.run(run())
    assert False in cancelled  # the final decode
    assert COMPLETED not in h.kinds() and h.kinds()[-1] == "input_audio_buffer.committed"


def test_session_update_changes_the_format_and_is_echoed():
    async def run():
        h = Harness()
        await h.session.handle(json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {
            "input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None}}}}))
        # 1 s of 24 kHz audio becomes 1 s of 16 kHz audio in the buffer
        await h.session.handle(json.dumps({"type": "input_audio_buffer.append",
                                           "audio": base64.b64encode(np.full(24000, 8000, "<i2").tobytes()).decode()}))
        await h.session.handle(json.dumps({"type": "input_audio_buffer.commit"}))
        await h.session.handle(json.dumps({"type": "transcription_session.update", "session": {"input_audio_format": "pcm16"}}))
        await h.session.drain()
        return h

    h = asyncio.run(run())
    updated = h.of("session.updated")[0]["session"]
    assert updated["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert updated["audio"]["input"]["turn_detection"] is None
    assert h.of(COMPLETED)[0]["usage"]["seconds"] == pytest.approx(1.0, abs=0.01)
    # Together's session, in Together's names
    assert h.of("transcription_session.updated")[0]["session"]["input_audio_format"] == "pcm_s16le_24000"


@pytest.mark.parametrize("message, code", [
    ("{", "invalid_json"), (b"\x00", "invalid_event"), ('{"type": 3}', "invalid_event"),
    ('{"type": "response.create"}', "unknown_event"),
    ('{"type": "input_audio_buffer.append", "audio": "%%%"}', "invalid_audio"),
    ('{"type": "input_audio_buffer.append"}', None),
])
def test_bad_events_get_an_error_event(message, code):
    async def run():
        h = Harness()
        await h.session.handle(message)
        return h

    h = asyncio.run(run())
    assert h.kinds() == ["error"] and h.events[0]["error"]["code"] == code
