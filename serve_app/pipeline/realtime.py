"""Realtime transcription sessions (`/v1/realtime`): Together's and OpenAI's WebSocket dialects over one
engine. Pure asyncio: the WebSocket, the ASR and the VAD model come in as callables.

A session turns client events into audio (LiveAudio), audio into speech segments (SpeechSegmenter over
the session's own Silero state, or the client's commits when turn detection is off), and segments into
transcripts through `transcribe`, which the Ingress points at the ASR deployment: live segments meet file
windows and other sessions' segments in the same batches, due before them.

While a segment grows, it is decoded again every `partial_interval_s` of audio and the words two decodes
agree on go out as `delta`s (StablePrefix); when it closes, the final decode's text is `completed`. Items
complete in the order they were spoken. The dialects differ only in how a session is configured (the
query, `session.update` in OpenAI's GA and beta shapes, Together's `transcription_session.updated`) and in
how the session is echoed; every other event is the same, so a client of either reads what it expects.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable, Literal, Mapping, Optional

import numpy as np

from serve_app.errors import APIError, InvalidRequest, envelope, internal_error_envelope
from serve_app.pipeline.languages import LANGUAGES
from serve_app.pipeline.live import (
    AudioFormat,
    LiveAudio,
    SegmentClosed,
    SpeechSegmenter,
    SpeechStarted,
    SpeechStopped,
    StablePrefix,
    TurnDetection,
    words_of,
)
from serve_app.pipeline.types import SAMPLE_RATE, DecodeOptions
from serve_app.protocol import MAX_PROMPT_CHARS

logger = logging.getLogger(__name__)

Dialect = Literal["together", "openai"]

# (model, 16 kHz samples, options, partial) -> the text. Raises APIError for what the client got wrong.
Transcribe = Callable[[str, np.ndarray, DecodeOptions, bool], Awaitable[str]]
Send = Callable[[dict], Awaitable[None]]

MIN_COMMIT_S = 0.1  # a commit with less audio than this has nothing to transcribe (OpenAI's rule)


@dataclass(frozen=True)
class RealtimeLimits:
    partial_interval_s: float = 1.0  # decode a growing segment again after this much more audio
    max_buffer_s: float = 300.0  # audio a client may hold uncommitted when turn detection is off


@dataclass(frozen=True)
class SessionSettings:
    dialect: Dialect
    model: str
    audio_format: AudioFormat = AudioFormat()
    language: Optional[str] = None
    prompt: Optional[str] = None
    turn_detection: Optional[TurnDetection] = field(default_factory=TurnDetection)  # None: the client commits

    def options(self) -> DecodeOptions:
        return DecodeOptions(language=self.language, prompt=self.prompt)


# -- configuring a session: the query and the update events, in both dialects --

ResolveModel = Callable[[str], Optional[str]]  # a served name or alias -> the model's name; None if unknown

_OPENAI_FORMATS = {"pcm16": AudioFormat("pcm16", 24000), "g711_ulaw": AudioFormat("pcmu", 8000),
                   "g711_alaw": AudioFormat("pcma", 8000)}
_GA_TYPES = {"audio/pcm": "pcm16", "audio/pcmu": "pcmu", "audio/pcma": "pcma"}


def parse_format(value: Any, param: str) -> AudioFormat:
    """Together's `pcm_s16le_<rate>`, OpenAI's beta names (`pcm16` is 24 kHz) or GA objects
    (`{"type": "audio/pcm", "rate": 24000}`)."""
    try:
        if isinstance(value, str):
            if value in _OPENAI_FORMATS:
                return _OPENAI_FORMATS[value]
            if value.startswith("pcm_s16le_") and value[len("pcm_s16le_"):].isdigit():
                return AudioFormat("pcm16", int(value[len("pcm_s16le_"):]))
        elif isinstance(value, Mapping) and value.get("type") in _GA_TYPES:
            encoding = _GA_TYPES[value["type"]]
            rate = value.get("rate") or (24000 if encoding == "pcm16" else 8000)
            if encoding != "pcm16" and rate != 8000:
                raise ValueError("G.711 is 8000 Hz")
            return AudioFormat(encoding, int(rate))  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"Unsupported audio format {value!r}: {exc}.", param=param) from None
    raise InvalidRequest(
        f"Unsupported audio format {value!r}. Use pcm_s16le_16000 (Together), pcm16, g711_ulaw, g711_alaw, or "
        '{"type": "audio/pcm", "rate": 24000} (OpenAI).', param=param)


_VAD_NAMES = {  # every spelling a client may use -> TurnDetection's field
    "threshold": "threshold",
    "min_silence_duration_ms": "min_silence_duration_ms", "silence_duration_ms": "min_silence_duration_ms",
    "min_speech_duration_ms": "min_speech_duration_ms",
    "max_speech_duration_s": "max_speech_duration_s",
    "speech_pad_ms": "speech_pad_ms", "prefix_padding_ms": "speech_pad_ms",
}
_VAD_IGNORED = {"type", "create_response", "interrupt_response", "idle_timeout_ms"}  # meaningless here


def parse_turn_detection(value: Any, current: Optional[TurnDetection], param: str) -> Optional[TurnDetection]:
    """null / "none": the client commits. Otherwise server VAD, the given parameters over the current ones."""
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "manual", "false")):
        return None
    if isinstance(value, str) and value == "server_vad":
        return current or TurnDetection()
    if not isinstance(value, Mapping):
        raise InvalidRequest("turn_detection must be an object or null.", param=param)
    if value.get("type", "server_vad") != "server_vad":
        raise InvalidRequest(f"turn_detection type {value.get('type')!r} is not supported; use server_vad.",
                             param=f"{param}.type")
    fields: dict[str, Any] = {}
    for key, v in value.items():
        if key in _VAD_IGNORED:
            continue
        if key not in _VAD_NAMES:
            raise InvalidRequest(f"Unknown turn_detection parameter {key!r}.", param=f"{param}.{key}")
        if v is None:
            continue
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise InvalidRequest(f"turn_detection.{key} must be a number.", param=f"{param}.{key}")
        fields[_VAD_NAMES[key]] = v
    try:
        return replace(current or TurnDetection(), **fields)
    except ValueError as exc:
        raise InvalidRequest(f"Invalid turn_detection: {exc}.", param=param) from None


def _language(value: Any, param: str) -> Optional[str]:
    """An ISO 639-1 code Whisper knows; None (or "auto") detects it per segment."""
    if value is None or value in ("", "auto"):
        return None
    if not isinstance(value, str) or value.lower() not in LANGUAGES:
        raise InvalidRequest(f"Unsupported language {value!r}; use an ISO 639-1 code such as 'en'.", param=param)
    return value.lower()


def _model(name: Any, resolve: ResolveModel, param: str) -> str:
    model = resolve(name) if isinstance(name, str) else None
    if model is None:
        raise InvalidRequest(f"Unknown model {name!r}. See GET /v1/models.", param=param)
    return model


def _prompt(value: Any, param: str) -> Optional[str]:
    """As on the file routes: only the tail that Whisper reads is kept."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{param} must be a string.", param=param)
    return value[-MAX_PROMPT_CHARS:]


def settings_from_query(query: Mapping[str, str], default_model: str, resolve: ResolveModel) -> SessionSettings:
    """`?intent=transcription` is OpenAI's transcription session (PCM16 at 24 kHz until `session.update`);
    anything else is Together's (`model`, `input_audio_format`, `turn_detection` and its five parameters)."""
    if query.get("intent") == "transcription":
        # The SDK may put a realtime model in the URL: it names the transcription model only if served here.
        model = resolve(query["model"]) if query.get("model") else None
        return SessionSettings("openai", model or resolve(default_model) or default_model,
                               audio_format=_OPENAI_FORMATS["pcm16"])
    if query.get("intent"):
        raise InvalidRequest(f"Unsupported intent {query['intent']!r}: this server only transcribes.", param="intent")
    model = _model(query.get("model", default_model), resolve, "model")
    fmt = parse_format(query.get("input_audio_format", "pcm_s16le_16000"), "input_audio_format")
    turn: Optional[TurnDetection] = TurnDetection()
    if "turn_detection" in query:
        turn = parse_turn_detection(query["turn_detection"], turn, "turn_detection")
    vad = {k: query[k] for k in _VAD_NAMES if k in query}
    if vad:
        try:
            numbers = {k: float(v) for k, v in vad.items()}
        except ValueError:
            raise InvalidRequest("The turn detection parameters must be numbers.", param=next(iter(vad))) from None
        if turn is not None:
            turn = parse_turn_detection(numbers, turn, "turn_detection")
    return SessionSettings("together", model, audio_format=fmt, language=_language(query.get("language"), "language"),
                           prompt=_prompt(query.get("prompt"), "prompt"), turn_detection=turn)


def apply_update(settings: SessionSettings, session: Any, resolve: ResolveModel) -> SessionSettings:
    """A `session` object from any of the update events: OpenAI's GA shape (`audio.input.{format,
    transcription, turn_detection}`), its beta shape (`input_audio_format`, `input_audio_transcription`,
    `turn_detection`) or Together's (`model`, `input_audio_format`, `turn_detection`, `language`, `prompt`).
    Keys left out keep their value; `turn_detection: null` turns server VAD off."""
    if not isinstance(session, Mapping):
        raise InvalidRequest("`session` must be an object.", param="session")
    if session.get("type") not in (None, "transcription"):
        raise InvalidRequest("Only transcription sessions are served here (session.type 'transcription').",
                             param="session.type")
    audio = session.get("audio") or {}
    audio_input = audio.get("input") if isinstance(audio, Mapping) else None
    if not isinstance(audio_input, (Mapping, type(None))):
        raise InvalidRequest("session.audio.input must be an object.", param="session.audio.input")
    changes: dict[str, Any] = {}
    # (where, its object, its name for the format, for the transcription settings)
    for where, source, fmt_key, tr_key in (("session.audio.input", audio_input or {}, "format", "transcription"),
                                           ("session", session, "input_audio_format", "input_audio_transcription")):
        if source.get(fmt_key) is not None:
            changes["audio_format"] = parse_format(source[fmt_key], f"{where}.{fmt_key}")
        if "turn_detection" in source:
            changes["turn_detection"] = parse_turn_detection(source["turn_detection"], settings.turn_detection,
                                                             f"{where}.turn_detection")
        transcription = source.get(tr_key)
        if transcription is not None:
            if not isinstance(transcription, Mapping):
                raise InvalidRequest(f"{where}.{tr_key} must be an object.", param=f"{where}.{tr_key}")
            changes.update(_transcription(transcription, resolve, f"{where}.{tr_key}"))
    changes.update(_transcription(session, resolve, "session"))  # Together's flat model, language, prompt
    return replace(settings, **changes)


def _transcription(source: Mapping, resolve: ResolveModel, param: str) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if source.get("model") is not None:
        changes["model"] = _model(source["model"], resolve, f"{param}.model")
    if "language" in source:
        changes["language"] = _language(source["language"], f"{param}.language")
    if "prompt" in source:
        changes["prompt"] = _prompt(source["prompt"], f"{param}.prompt")
    return changes


# -- how a session is shown back to its client --

def _format_name(fmt: AudioFormat, dialect: Dialect) -> Any:
    if dialect == "together":
        return f"pcm_s16le_{fmt.rate}" if fmt.encoding == "pcm16" else {"pcmu": "g711_ulaw", "pcma": "g711_alaw"}[fmt.encoding]
    return {"type": {"pcm16": "audio/pcm", "pcmu": "audio/pcmu", "pcma": "audio/pcma"}[fmt.encoding], "rate": fmt.rate}


def _turn_view(td: Optional[TurnDetection], dialect: Dialect) -> Optional[dict]:
    if td is None:
        return None
    view: dict[str, Any] = {"type": "server_vad", "threshold": td.threshold}
    if dialect == "openai":
        view.update(prefix_padding_ms=td.speech_pad_ms, silence_duration_ms=td.min_silence_duration_ms)
    else:
        view.update(min_silence_duration_ms=td.min_silence_duration_ms, speech_pad_ms=td.speech_pad_ms)
    view.update(min_speech_duration_ms=td.min_speech_duration_ms, max_speech_duration_s=td.max_speech_duration_s)
    return view


def session_view(session_id: str, s: SessionSettings, shape: Literal["ga", "beta", "together"]) -> dict:
    transcription = {"model": s.model, "language": s.language, "prompt": s.prompt}
    base = {"id": session_id, "object": "realtime.transcription_session"}
    if shape == "ga":
        return {**base, "type": "transcription", "audio": {"input": {
            "format": _format_name(s.audio_format, "openai"), "transcription": transcription,
            "turn_detection": _turn_view(s.turn_detection, "openai")}}}
    if shape == "beta":
        fmt = s.audio_format
        name = "pcm16" if fmt.encoding == "pcm16" else {"pcmu": "g711_ulaw", "pcma": "g711_alaw"}[fmt.encoding]
        return {**base, "input_audio_format": name, "input_audio_transcription": transcription,
                "turn_detection": _turn_view(s.turn_detection, "openai")}
    return {**base, "model": s.model, "input_audio_format": _format_name(s.audio_format, "together"),
            "language": s.language, "prompt": s.prompt, "turn_detection": _turn_view(s.turn_detection, "together")}


def error_body(exc: BaseException) -> dict:
    """The API's error envelope's body for an event; a bug is logged and shown only by its request id."""
    if isinstance(exc, APIError):
        return envelope(exc)["error"]
    request_id = uuid.uuid4().hex
    logger.error("realtime session: unhandled error, request id %s", request_id, exc_info=exc)
    return internal_error_envelope(request_id)["error"]


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


# -- the session --

@dataclass
class _Item:
    """One committed (or growing) stretch of speech: one conversation item."""

    id: str
    previous: Optional[str]
    prefix: StablePrefix = field(default_factory=StablePrefix)
    decoded_at: int = 0  # samples of the segment the last partial decode saw
    partial: Optional[asyncio.Task] = None
    closed: bool = False


class RealtimeSession:
    def __init__(
        self,
        settings: SessionSettings,
        *,
        transcribe: Transcribe,
        make_vad: Callable[[], Callable[[np.ndarray], float]],
        send: Send,
        resolve_model: ResolveModel,
        limits: RealtimeLimits = RealtimeLimits(),
    ) -> None:
        self.id = _id("sess")
        self.settings = settings
        self._transcribe = transcribe
        self._make_vad = make_vad
        self._send_raw = send
        self._resolve = resolve_model
        self.limits = limits
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()
        self._last_done: Optional[asyncio.Future] = None  # the previous item's completion was sent
        self._last_item: Optional[str] = None
        self._item: Optional[_Item] = None
        self._partial_cost = 0.0  # seconds the last preview took, queueing included
        self._closed = False
        self._reset_audio()

    # -- state --

    def _reset_audio(self) -> None:
        self._audio = LiveAudio(self.settings.audio_format)
        td = self.settings.turn_detection
        self._segmenter = SpeechSegmenter(td, self._make_vad()) if td is not None else None
        self._buffer: list[np.ndarray] = []  # turn detection off: audio since the last commit
        self._buffered = 0
        if self._item is not None:  # a growing segment is dropped with the audio it came from
            self._drop_item()

    def _drop_item(self) -> None:
        if self._item is not None and self._item.partial is not None:
            self._item.partial.cancel()
        self._item = None

    # -- events in --

    async def start(self) -> None:
        await self.send({"type": "session.created",
                         "session": session_view(self.id, self.settings, "ga" if self.settings.dialect == "openai" else "together")})

    async def handle(self, message: str | bytes) -> None:
        """One client message. A bad one gets an error event; the session goes on."""
        event_id = None
        try:
            if isinstance(message, bytes):
                raise InvalidRequest("Send events as JSON text frames.", code="invalid_event")
            try:
                event = json.loads(message)
            except ValueError:
                raise InvalidRequest("The event is not valid JSON.", code="invalid_json") from None
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                raise InvalidRequest("An event is a JSON object with a string `type`.", param="type",
                                     code="invalid_event")
            event_id = event.get("event_id")
            await self._dispatch(event)
        except APIError as exc:
            body = error_body(exc)
            if isinstance(event_id, str):
                body["event_id"] = event_id
            await self.send({"type": "error", "error": body})

    async def _dispatch(self, event: dict) -> None:
        kind = event["type"]
        if kind == "input_audio_buffer.append":
            await self._append(event.get("audio"))
        elif kind == "input_audio_buffer.commit":
            await self._commit()
        elif kind == "input_audio_buffer.clear":
            self._reset_audio()
            await self.send({"type": "input_audio_buffer.cleared"})
        elif kind in ("session.update", "transcription_session.update", "transcription_session.updated"):
            await self._update(kind, event.get("session"))
        else:
            raise InvalidRequest(f"Unknown event type {kind!r}.", param="type", code="unknown_event")

    async def _update(self, kind: str, session: Any) -> None:
        new = apply_update(self.settings, session, self._resolve)
        audio_changed = (new.audio_format, new.turn_detection) != (self.settings.audio_format,
                                                                   self.settings.turn_detection)
        if audio_changed:
            await self._close_segment()  # what was said so far is transcribed under the old settings
        self.settings = new
        if audio_changed:
            self._reset_audio()
        if kind == "session.update":
            await self.send({"type": "session.updated", "session": session_view(self.id, new, "ga")})
        else:
            shape = "beta" if self.settings.dialect == "openai" else "together"
            await self.send({"type": "transcription_session.updated", "session": session_view(self.id, new, shape)})

    async def _append(self, audio: Any) -> None:
        if not isinstance(audio, str):
            raise InvalidRequest("input_audio_buffer.append needs `audio`: base64 audio bytes.", param="audio")
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("`audio` is not valid base64.", param="audio", code="invalid_audio") from None
        samples = self._audio.decode(data)
        if self._segmenter is None:
            if self._buffered + len(samples) > self.limits.max_buffer_s * SAMPLE_RATE:
                raise InvalidRequest(
                    f"The input audio buffer holds at most {self.limits.max_buffer_s:g} s; commit it first. "
                    "This audio was dropped.", param="audio", code="input_audio_buffer_full")
            self._buffer.append(samples)
            self._buffered += len(samples)
            return
        # Silero over the new frames: a few ms per second of audio, off the event loop for a large append.
        events = await asyncio.to_thread(self._segmenter.feed, samples) if len(samples) > 8000 else \
            self._segmenter.feed(samples)
        await self._on_vad(events)
        self._maybe_partial()

    async def _commit(self) -> None:
        if self._segmenter is not None:
            if self._item is None:
                raise InvalidRequest("The input audio buffer holds no speech to commit.",
                                     code="input_audio_buffer_commit_empty")
            await self._close_segment()
            return
        samples = np.concatenate(self._buffer) if self._buffer else np.zeros(0, dtype=np.float32)
        if len(samples) < MIN_COMMIT_S * SAMPLE_RATE:
            raise InvalidRequest(f"The input audio buffer holds less than {MIN_COMMIT_S * 1000:g} ms of audio.",
                                 code="input_audio_buffer_commit_empty")
        self._buffer, self._buffered = [], 0
        item = self._open_item()
        await self._committed(item, samples)

    async def _close_segment(self) -> None:
        if self._segmenter is not None:
            await self._on_vad(self._segmenter.flush())

    # -- speech events --

    def _open_item(self) -> _Item:
        self._item = _Item(_id("item"), self._last_item)
        self._last_item = self._item.id
        return self._item

    async def _on_vad(self, events) -> None:
        for ev in events:
            if isinstance(ev, SpeechStarted):
                item = self._open_item()
                await self.send({"type": "input_audio_buffer.speech_started", "item_id": item.id,
                                 "audio_start_ms": int(round(ev.at_s * 1000))})
            elif isinstance(ev, SpeechStopped) and self._item is not None:
                await self.send({"type": "input_audio_buffer.speech_stopped", "item_id": self._item.id,
                                 "audio_end_ms": int(round(ev.at_s * 1000))})
            elif isinstance(ev, SegmentClosed) and self._item is not None:
                item = self._item
                if ev.split:  # the turn goes on past max_speech_duration_s: this part stops, the next starts
                    await self.send({"type": "input_audio_buffer.speech_stopped", "item_id": item.id,
                                     "audio_end_ms": int(round(ev.end_s * 1000))})
                await self._committed(item, ev.samples)
                if ev.split:
                    nxt = self._open_item()
                    await self.send({"type": "input_audio_buffer.speech_started", "item_id": nxt.id,
                                     "audio_start_ms": int(round(ev.end_s * 1000))})

    async def _committed(self, item: _Item, samples: np.ndarray) -> None:
        item.closed = True
        if item.partial is not None:
            item.partial.cancel()  # the final decode replaces it
        if self._item is item:
            self._item = None
        await self.send({"type": "input_audio_buffer.committed", "item_id": item.id, "previous_item_id": item.previous})
        previous, done = self._last_done, asyncio.get_running_loop().create_future()
        self._last_done = done
        self._spawn(self._final(item, samples, previous, done))

    def _maybe_partial(self) -> None:
        item = self._item
        if item is None or item.closed or (item.partial is not None and not item.partial.done()):
            return
        current = self._segmenter.current() if self._segmenter is not None else None
        # Under load a preview takes longer: wait for twice its last round trip in new audio, so that previews
        # never take more than about half of what the ASR has left (finals go first anyway).
        interval = max(self.limits.partial_interval_s, 2 * self._partial_cost)
        if current is None or len(current) - item.decoded_at < interval * SAMPLE_RATE:
            return
        item.decoded_at = len(current)
        item.partial = self._spawn(self._partial(item, current))

    # -- transcripts out --

    async def _partial(self, item: _Item, samples: np.ndarray) -> None:
        started = time.monotonic()
        try:
            text = await self._transcribe(self.settings.model, samples, self.settings.options(), True)
        except Exception:  # noqa: BLE001 - a failed partial is dropped; the final decode reports failures
            return
        self._partial_cost = time.monotonic() - started
        if item.closed:
            return
        delta = item.prefix.update(words_of(text))
        if delta:
            await self._delta(item, delta)

    async def _final(self, item: _Item, samples: np.ndarray, previous: Optional[asyncio.Future],
                     done: asyncio.Future) -> None:
        settings = self.settings
        try:
            try:
                text = (await self._transcribe(settings.model, samples, settings.options(), False)).strip()
                failure = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reported to the client as this item's failure
                text, failure = "", exc
            if previous is not None:
                await asyncio.shield(previous)  # items complete in the order they were spoken
            if failure is not None:
                await self.send({"type": "conversation.item.input_audio_transcription.failed", "item_id": item.id,
                                 "content_index": 0, "error": error_body(failure)})
                return
            rest = item.prefix.finish(words_of(text))
            if rest:
                await self._delta(item, rest)
            await self.send({"type": "conversation.item.input_audio_transcription.completed", "item_id": item.id,
                             "content_index": 0, "transcript": text,
                             "usage": {"type": "duration", "seconds": round(len(samples) / SAMPLE_RATE, 3)}})
        finally:
            if not done.done():
                done.set_result(None)

    async def _delta(self, item: _Item, delta: str) -> None:
        await self.send({"type": "conversation.item.input_audio_transcription.delta", "item_id": item.id,
                         "content_index": 0, "delta": delta})

    # -- plumbing --

    async def send(self, event: dict) -> None:
        if self._closed:
            return
        async with self._send_lock:
            await self._send_raw({"event_id": _id("event"), **event})

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("realtime session %s: a task failed: %r", self.id, task.exception())

    @property
    def busy(self) -> bool:
        """Decodes are still running for this session (it is not idle while it waits for them)."""
        return bool(self._tasks)

    async def drain(self) -> None:
        """Wait for every segment already committed to be answered (a client that ends its audio)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """The client left: cancel every decode this session still waits for, send nothing more."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
