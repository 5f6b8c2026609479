"""The realtime WebSocket (/v1/realtime) through the real service: Together's dialect over a raw WebSocket
(as Together documents it), OpenAI's through the `openai` SDK's realtime client. Recorded speech is sent at
real-time pace and in bursts; a session's text is checked against the file transcription of the same audio.
"""

from __future__ import annotations

import asyncio
import audioop  # G.711 test audio from the standard library, not from the code under test (gone in 3.13)
import base64
import functools
import json
import time
from urllib.parse import urlencode

import numpy as np
import openai
import pytest
import websockets

from tests.api.settings import REALTIME
from tests.support import SAMPLE_WAV, sample_samples, stm_text, word_error_rate

pytestmark = pytest.mark.slow

RATE = 16_000
COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"
FAILED = "conversation.item.input_audio_transcription.failed"


def ws_url(server, **query) -> str:
    return server.base_url.replace("http", "ws", 1) + "/realtime" + ("?" + urlencode(query) if query else "")


def speech(seconds: float) -> np.ndarray:
    """`seconds` of sample.wav from its first word ("Hello?" at 6.7 s)."""
    return sample_samples()[RATE * 6 : int(RATE * (6 + seconds))]


def pcm16(samples: np.ndarray, rate: int = RATE) -> bytes:
    """16-bit PCM; at 16 kHz exactly the WAV's samples (decoded as int16 / 32768)."""
    if rate != RATE:  # a polyphase filter, not the server's resampler
        from scipy.signal import resample_poly
        samples = resample_poly(samples, rate // 1000, RATE // 1000)
    return np.clip(np.round(samples * 32768), -32768, 32767).astype("<i2").tobytes()


def append(data: bytes) -> str:
    return json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(data).decode()})


@functools.lru_cache(maxsize=None)
def _file_text(base_url: str, key: str, model: str) -> str:
    client = openai.OpenAI(base_url=base_url, api_key=key)
    with open(SAMPLE_WAV, "rb") as f:
        return client.audio.transcriptions.create(file=f, model=model).text


def file_text(server, model: str) -> str:
    """The same audio through POST /v1/audio/transcriptions: what a session's text is held to."""
    return _file_text(server.base_url, server.key, model)


async def read_until(ws, done, timeout: float = 180) -> list[dict]:
    """Events (with their arrival time in `_t`) until `done(events)` is true."""
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    while not done(events):
        message = await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
        events.append({**json.loads(message), "_t": time.monotonic()})
    return events


def all_answered(events: list[dict]) -> bool:
    """Something was committed, and every item started has been committed and answered (completed or
    failed)."""
    started = {e["item_id"] for e in events if e["type"] == "input_audio_buffer.speech_started"}
    committed = {e["item_id"] for e in events if e["type"] == "input_audio_buffer.committed"}
    answered = {e["item_id"] for e in events if e["type"] in (COMPLETED, FAILED)}
    return bool(committed) and started <= committed <= answered


def assert_as_accurate_as_the_file(server, model: str, text: str, what: str) -> None:
    """A session's text is held to the file transcription of the same audio: no more than 0.10 worse
    against the reference transcript. (Word for word, the two differ by about as much as the file
    transcription itself does between two batchings of this two-speaker phone call; both are printed.)"""
    file = file_text(server, model)
    session_wer, file_wer = word_error_rate(stm_text(), text), word_error_rate(stm_text(), file)
    print(f"{what}: WER {session_wer:.3f} (the file transcription: {file_wer:.3f}); "
          f"against the file transcription {word_error_rate(file, text):.3f}\n  file:    {file}\n  session: {text}")
    assert session_wer <= file_wer + 0.10


def session_text(events: list[dict]) -> str:
    return " ".join(e["transcript"] for e in events if e["type"] == COMPLETED)


def test_together_session_at_real_time_pace(server):
    """100 ms chunks at real-time pace: speech started/stopped/committed per turn, partial deltas while a
    turn is still being spoken, completed texts in the order spoken, close to the file transcription. Turns
    of up to 15 s (a captioning client's choice; Together's default is 5 s): on this CPU a preview takes
    about a second, and a word needs two previews that agree before it is sent."""
    model = "whisper-base"

    async def run():
        async with websockets.connect(ws_url(server, model=model, input_audio_format="pcm_s16le_16000",
                                             max_speech_duration_s=15),
                                      additional_headers=server.headers()) as ws:
            created = json.loads(await ws.recv())
            pcm = pcm16(sample_samples())
            sent = asyncio.Event()  # (the last commit answers with the last item, or an error if none is open)
            reader = asyncio.ensure_future(read_until(ws, lambda ev: sent.is_set() and all_answered(ev)))
            started = time.monotonic()
            for i, offset in enumerate(range(0, len(pcm), 3200)):
                await ws.send(append(pcm[offset : offset + 3200]))
                await asyncio.sleep(max(0.0, started + (i + 1) * 0.1 - time.monotonic()))
            sent.set()
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            return created, await reader

    created, events = asyncio.run(run())
    assert created["type"] == "session.created"
    session = created["session"]
    assert session["model"] == model and session["input_audio_format"] == "pcm_s16le_16000"
    assert session["turn_detection"] == {"type": "server_vad", "threshold": 0.3, "min_silence_duration_ms": 500,
                                         "min_speech_duration_ms": 250, "max_speech_duration_s": 15.0,
                                         "speech_pad_ms": 250}  # Together's defaults but the one given
    items = [e["item_id"] for e in events if e["type"] == "input_audio_buffer.speech_started"]
    assert len(items) >= 2  # 24 s of conversation in turns of at most 15 s
    for item in items:
        kinds = [e["type"] for e in events if e.get("item_id") == item]
        assert kinds[0] == "input_audio_buffer.speech_started" and kinds[-1] == COMPLETED, kinds
        assert kinds.index("input_audio_buffer.speech_stopped") < kinds.index("input_audio_buffer.committed")
    assert [e["item_id"] for e in events if e["type"] == COMPLETED] == items  # in the order spoken
    # Partial deltas: some turn's first words arrive while it is still being spoken.
    early = [e for e in events if e["type"] == DELTA and e["_t"] < next(
        c["_t"] for c in events if c["type"] == "input_audio_buffer.committed" and c["item_id"] == e["item_id"])]
    assert early, "no delta arrived before its turn ended"
    # A delta cannot be taken back: where the final decode (beam search) changed a word two greedy previews
    # agreed on, the deltas differ from `completed`, whose text is the one to keep (0.23 in one run here).
    deltas = " ".join("".join(e["delta"] for e in events if e["type"] == DELTA and e["item_id"] == item)
                      for item in items)
    drift = word_error_rate(session_text(events), deltas)
    print(f"{len(early)} deltas before their turn ended; deltas against completed: WER {drift:.3f}")
    assert drift <= 0.35
    assert_as_accurate_as_the_file(server, model, session_text(events), "real-time session")


def test_openai_sdk_transcription_session_in_a_burst(server):
    """The `openai` SDK's realtime client, `?intent=transcription`, a GA session.update with 24 kHz PCM,
    all the audio at once: typed events, and the text of the file transcription."""

    async def run():
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key=server.key)
        async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
            await conn.session.update(session={"type": "transcription", "audio": {"input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "whisper-1", "language": "en"},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 600, "prefix_padding_ms": 300}}}})
            pcm = pcm16(sample_samples(), 24000)
            for offset in range(0, len(pcm), 48000):
                await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[offset : offset + 48000]).decode())
            await conn.input_audio_buffer.commit()
            events = []
            async for event in conn:
                events.append(event)
                committed = {e.item_id for e in events if e.type == "input_audio_buffer.committed"}
                if committed and committed <= {e.item_id for e in events if e.type == COMPLETED}:
                    return events

    events = asyncio.run(run())
    assert isinstance(events[0], openai.types.realtime.SessionCreatedEvent)
    updated = events[1]
    assert isinstance(updated, openai.types.realtime.SessionUpdatedEvent)
    audio_input = updated.session.audio.input
    assert audio_input.format.rate == 24000 and audio_input.transcription.model == "whisper-base"
    turn = audio_input.turn_detection  # the parameters given, over Together's defaults
    assert (turn.threshold, turn.silence_duration_ms, turn.prefix_padding_ms) == (0.3, 600, 300)
    types = {type(e).__name__ for e in events}
    assert {"InputAudioBufferSpeechStartedEvent", "InputAudioBufferSpeechStoppedEvent",
            "InputAudioBufferCommittedEvent", "ConversationItemInputAudioTranscriptionCompletedEvent"} <= types
    completed = [e for e in events if e.type == COMPLETED]
    assert all(e.usage.type == "duration" and e.usage.seconds > 0 for e in completed)
    assert_as_accurate_as_the_file(server, "whisper-1", " ".join(e.transcript for e in completed),
                                   "burst session at 24 kHz")


def test_manual_commit_when_turn_detection_is_off(server):
    """Together's `transcription_session.updated` with turn_detection null: no VAD events, the client's
    commit makes the item."""
    model = "whisper-tiny.en"

    async def run():
        async with websockets.connect(ws_url(server, model=model, input_audio_format="pcm_s16le_16000"),
                                      additional_headers=server.headers()) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "transcription_session.updated", "session": {"turn_detection": None}}))
            updated = json.loads(await ws.recv())
            pcm = pcm16(sample_samples())
            for offset in range(0, len(pcm), RATE * 2):
                await ws.send(append(pcm[offset : offset + RATE * 2]))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            return updated, await read_until(ws, all_answered)

    updated, events = asyncio.run(run())
    assert updated["type"] == "transcription_session.updated" and updated["session"]["turn_detection"] is None
    assert [e["type"] for e in events][0] == "input_audio_buffer.committed"
    assert not any(e["type"].startswith("input_audio_buffer.speech") for e in events)
    assert [e["type"] for e in events][-1] == COMPLETED
    # The same samples, cut at the same pauses as the file route cuts them: the same text, near enough.
    wer = word_error_rate(file_text(server, model), session_text(events))
    print(f"manual commit of the whole clip against the file transcription: WER {wer:.3f}")
    assert wer <= 0.10


def test_beta_session_update_with_g711_ulaw(server):
    """OpenAI's beta `transcription_session.update`: 8 kHz mu-law audio, manual commit."""
    samples = speech(8)
    ulaw = audioop.lin2ulaw(pcm16(samples, 8000), 2)

    async def run():
        async with websockets.connect(ws_url(server, intent="transcription"),
                                      additional_headers=server.headers()) as ws:
            created = json.loads(await ws.recv())
            await ws.send(json.dumps({"type": "transcription_session.update", "session": {
                "input_audio_format": "g711_ulaw", "turn_detection": None,
                "input_audio_transcription": {"model": "whisper-tiny.en"}}}))
            updated = json.loads(await ws.recv())
            await ws.send(append(ulaw))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            return created, updated, await read_until(ws, all_answered)

    created, updated, events = asyncio.run(run())
    assert created["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert updated["type"] == "transcription_session.updated"
    assert updated["session"]["input_audio_format"] == "g711_ulaw"
    assert "hello" in session_text(events).lower()


def test_the_browser_subprotocol_carries_the_key(server):
    async def run():
        async with websockets.connect(ws_url(server, intent="transcription"),
                                      subprotocols=["realtime", f"openai-insecure-api-key.{server.key}"]) as ws:
            return ws.subprotocol, json.loads(await ws.recv())

    subprotocol, created = asyncio.run(run())
    assert subprotocol == "realtime" and created["type"] == "session.created"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key"}], ids=["no key", "wrong key"])
def test_a_bad_key_gets_an_error_event_and_close_1008(server, headers):
    async def run():
        async with websockets.connect(ws_url(server, model="whisper-tiny.en"), additional_headers=headers) as ws:
            event = json.loads(await ws.recv())
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return event, ws.close_code

    event, code = asyncio.run(run())
    assert event["type"] == "error" and event["error"]["type"] == "authentication_error"
    assert code == 1008


def test_an_unknown_model_in_the_query_is_refused(server):
    async def run():
        async with websockets.connect(ws_url(server, model="no-such-model"), additional_headers=server.headers()) as ws:
            event = json.loads(await ws.recv())
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return event, ws.close_code

    event, code = asyncio.run(run())
    assert event["error"]["param"] == "model" and code == 1008


def test_bad_events_get_error_events_and_the_session_goes_on(server):
    async def run():
        async with websockets.connect(ws_url(server, model="whisper-tiny.en"), additional_headers=server.headers()) as ws:
            await ws.recv()
            errors = []
            for bad in ["not json", json.dumps({"type": "no.such.event", "event_id": "ev1"}),
                        json.dumps({"type": "input_audio_buffer.append", "audio": "***"}),
                        json.dumps({"type": "input_audio_buffer.commit"}),
                        json.dumps({"type": "transcription_session.updated",
                                    "session": {"turn_detection": {"threshold": 2}}}),
                        json.dumps({"type": "session.update", "session": {"audio": {"input": {
                            "format": {"type": "audio/opus"}}}}}),
                        b"\x00\x01binary"]:
                await ws.send(bad)
                errors.append(json.loads(await ws.recv()))
            await ws.send(append(pcm16(speech(6))))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            return errors, await read_until(ws, all_answered)

    errors, events = asyncio.run(run())
    assert [e["type"] for e in errors] == ["error"] * 7
    codes = [e["error"]["code"] for e in errors]
    assert codes[:4] == ["invalid_json", "unknown_event", "invalid_audio", "input_audio_buffer_commit_empty"]
    assert errors[1]["error"]["event_id"] == "ev1"
    assert errors[4]["error"]["param"] == "session.turn_detection"
    assert errors[5]["error"]["param"] == "session.audio.input.format"
    assert all(e["error"]["type"] == "invalid_request_error" and e["error"]["message"] for e in errors)
    assert "hello" in session_text(events).lower()


def test_an_item_the_model_cannot_transcribe_fails_and_the_session_goes_on(server):
    """French asked of an English-only model: the item's `failed` event carries the envelope."""

    async def run():
        async with websockets.connect(ws_url(server, model="whisper-tiny.en", language="fr", turn_detection="none"),
                                      additional_headers=server.headers()) as ws:
            await ws.recv()
            await ws.send(append(pcm16(speech(4))))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            failed = await read_until(ws, all_answered)
            await ws.send(json.dumps({"type": "transcription_session.updated", "session": {"language": "en"}}))
            await ws.send(append(pcm16(speech(6))))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            return failed, await read_until(ws, lambda ev: any(e["type"] == COMPLETED for e in ev))

    failed, events = asyncio.run(run())
    event = next(e for e in failed if e["type"] == FAILED)
    assert event["error"]["type"] == "invalid_request_error" and event["error"]["param"] == "language"
    assert "hello" in session_text(events).lower()


def test_past_the_session_limit_a_session_is_refused_and_a_closed_one_frees_its_place(server):
    async def run():
        open_ws, refused = [], None
        try:
            # A second Ingress replica (autoscaling) would hold its own sessions: keep opening until refused.
            for _ in range(2 * REALTIME["max_sessions"] + 1):
                ws = await websockets.connect(ws_url(server, model="whisper-tiny.en"), additional_headers=server.headers())
                event = json.loads(await ws.recv())
                if event["type"] == "error":
                    with pytest.raises(websockets.ConnectionClosed):
                        await ws.recv()
                    refused = (event, ws.close_code)
                    break
                open_ws.append(ws)
            accepted = len(open_ws)
            await open_ws.pop().close()
            await asyncio.sleep(0.5)
            async with websockets.connect(ws_url(server, model="whisper-tiny.en"), additional_headers=server.headers()) as ws:
                again = json.loads(await ws.recv())
            return accepted, refused, again
        finally:
            for ws in open_ws:
                await ws.close()

    accepted, refused, again = asyncio.run(run())
    assert refused is not None, f"{accepted} sessions were all accepted"
    event, code = refused
    assert accepted >= REALTIME["max_sessions"]
    assert event["error"]["type"] == "server_overloaded" and code == 1013
    assert again["type"] == "session.created"


def test_an_idle_session_is_closed_with_an_error_event(server):
    async def run():
        async with websockets.connect(ws_url(server, model="whisper-tiny.en"), additional_headers=server.headers()) as ws:
            await ws.recv()
            started = time.monotonic()
            event = json.loads(await asyncio.wait_for(ws.recv(), REALTIME["idle_timeout_s"] + 30))
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return event, time.monotonic() - started, ws.close_code

    event, waited, code = asyncio.run(run())
    assert event["type"] == "error" and event["error"]["code"] == "session_idle"
    assert waited >= REALTIME["idle_timeout_s"] - 1 and code == 1000
