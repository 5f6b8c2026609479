"""Wire models of the public API (docs/API.md), in the order the docs list them.

The multipart form is parsed once, into `TranscriptionRequest`, whose validators own every rule
and name the offending `param`. Transcriptions and translations share it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from serve_app.errors import InvalidRequest
from serve_app.pipeline.formatting import JSON, TEXT, on_wire, render_text
from serve_app.pipeline.languages import LANGUAGES
from serve_app.pipeline.types import DecodeOptions, Rendered, Segment, Task, Transcript

ResponseFormat = Literal["json", "verbose_json", "text", "srt", "vtt", "diarized_json"]
Granularity = Literal["segment", "word"]

_BOOL_STRINGS = {"true": True, "1": True, "false": False, "0": False}
# Whisper reads at most the last 223 tokens of a prompt, and no token covers more than a few dozen
# characters: a longer prompt is cut here, once, to its tail (what the model would read anyway).
MAX_PROMPT_CHARS = 8000
# Hotwords are names and terms, not a transcript: a few hundred characters (the backend keeps at most 111
# of their tokens, half of what Whisper reads before a window).
MAX_HOTWORDS_CHARS = 500
# OpenAI's known speakers: up to 4, each a 2-10 s clip sent as a data URL (any container `file` takes).
MAX_KNOWN_SPEAKERS = 4
MAX_SPEAKER_NAME_CHARS = 64
REFERENCE_SECONDS = (2.0, 10.0)
# A data URL is a form field, held in memory: 10 s of 48 kHz 16-bit stereo WAV is 1.9 MB, 2.6 MB as base64.
MAX_REFERENCE_FIELD_CHARS = 3 * 1024 * 1024
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?((?:;[\w.+-]+=[^;,]*)*);base64,", re.IGNORECASE)
_GENERATED_NAME = re.compile(r"SPEAKER_\d+")


class TranscriptionRequest(BaseModel):
    """Every form field of POST /v1/audio/transcriptions and /v1/audio/translations but `file`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    task: Task = "transcribe"
    model: Optional[str] = None  # None: the configured default model
    language: str = "en"
    prompt: Optional[str] = None
    hotwords: Optional[str] = Field(None, max_length=MAX_HOTWORDS_CHARS)  # faster-whisper's
    response_format: ResponseFormat = "json"
    temperature: float = Field(0.0, ge=0.0, le=1.0, allow_inf_nan=False)
    timestamp_granularities: list[Granularity] = Field(default_factory=lambda: ["segment"])
    diarize: bool = False
    stream: bool = False  # server-sent events (OpenAI's shape) instead of one body
    min_speakers: Optional[int] = Field(None, ge=1, le=64)
    max_speakers: Optional[int] = Field(None, ge=1, le=64)
    include: list[Literal["logprobs"]] = Field(default_factory=list)  # OpenAI's include[]
    known_speaker_names: list[str] = Field(default_factory=list)  # OpenAI's known_speaker_names[]
    known_speaker_references: list[str] = Field(default_factory=list)  # data URLs of 2-10 s clips

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        value = value.strip().lower()
        if value != "auto" and value not in LANGUAGES:
            raise ValueError("must be `auto` or an ISO 639-1 code that Whisper knows, such as `en`, `de`, `ja`")
        return value

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: Optional[str]) -> Optional[str]:
        return value[-MAX_PROMPT_CHARS:] if value else value

    @field_validator("diarize", "stream", mode="before")
    @classmethod
    def _bool(cls, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        parsed = _BOOL_STRINGS.get(str(value).strip().lower())
        if parsed is None:
            raise ValueError("must be `true` or `false`")
        return parsed

    @field_validator("timestamp_granularities", mode="before")
    @classmethod
    def _granularities(cls, value: Any) -> list[str]:
        # Together sends a string or a JSON list; OpenAI repeats `timestamp_granularities[]`.
        values = value if isinstance(value, list) else [value]
        out: list[str] = []
        for v in values:
            v = str(v).strip()
            if v.startswith("["):
                try:
                    parsed = json.loads(v)
                except json.JSONDecodeError:
                    raise ValueError("is not a valid JSON list") from None
                out.extend(str(p) for p in (parsed if isinstance(parsed, list) else [parsed]))
            else:
                out.extend(p.strip() for p in v.split(",") if p.strip())
        return out

    @model_validator(mode="after")
    def _rules(self) -> "TranscriptionRequest":
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise _param_error("min_speakers", "must not be greater than max_speakers")
        if self.task == "translate" and (self.diarize or self.response_format == "diarized_json"):
            raise _param_error("response_format" if not self.diarize else "diarize", "is not available for translations")
        if "logprobs" in self.include and (self.response_format != "json" or self.wants_diarization):
            # as OpenAI: token log probabilities come with the plain json transcription only
            raise _param_error("include", "`logprobs` is available with response_format `json` only, without diarize")
        if self.known_speaker_names or self.known_speaker_references:
            self._check_known_speakers()
        if self.stream and self.response_format in ("text", "srt", "vtt"):
            raise _param_error("stream", f"is not available with response_format `{self.response_format}`: "
                                         "stream a json, verbose_json or diarized_json transcription")
        return self

    def _check_known_speakers(self) -> None:
        names, refs = self.known_speaker_names, self.known_speaker_references
        if not self.wants_diarization:
            raise _param_error("known_speaker_names", "needs diarization: `diarize=true` or `diarized_json`")
        if len(names) > MAX_KNOWN_SPEAKERS:
            raise _param_error("known_speaker_names", f"names at most {MAX_KNOWN_SPEAKERS} speakers")
        if len(names) != len(refs):
            raise _param_error("known_speaker_references",
                               f"must have one clip per name ({len(refs)} references for {len(names)} names)")
        for name in names:
            if not name.strip() or len(name) > MAX_SPEAKER_NAME_CHARS:
                raise _param_error("known_speaker_names", f"must be 1 to {MAX_SPEAKER_NAME_CHARS} characters each")
            if _GENERATED_NAME.fullmatch(name.strip()):
                raise _param_error("known_speaker_names", f"must not look like a generated label ({name!r})")
        if len({n.strip() for n in names}) != len(names):
            raise _param_error("known_speaker_names", "must all differ")
        for i, ref in enumerate(refs):
            if len(ref) > MAX_REFERENCE_FIELD_CHARS or not _DATA_URL.match(ref.strip()):
                raise _param_error("known_speaker_references",
                                   f"entry {i} must be a base64 data URL (data:audio/wav;base64,...) of at most "
                                   f"{MAX_REFERENCE_FIELD_CHARS} characters")

    def known_speakers(self) -> list[tuple[str, bytes]]:
        """(name, the reference clip's bytes) per known speaker; a payload that is not base64 -> 400."""
        out = []
        for i, (name, ref) in enumerate(zip(self.known_speaker_names, self.known_speaker_references)):
            ref = ref.strip()
            payload = ref[_DATA_URL.match(ref).end():]
            try:
                out.append((name.strip(), base64.b64decode(payload, validate=True)))
            except (binascii.Error, ValueError):
                raise InvalidRequest(f"`known_speaker_references[{i}]` is not valid base64.",
                                     param="known_speaker_references") from None
        return out

    @property
    def wants_diarization(self) -> bool:
        return self.diarize or self.response_format == "diarized_json"

    @property
    def word_granularity(self) -> bool:
        """Words in the response: only verbose_json carries timestamps."""
        return self.response_format == "verbose_json" and "word" in self.timestamp_granularities

    @property
    def wants_words(self) -> bool:
        # Word timings are needed for word granularity and for assigning words to speakers.
        return self.word_granularity or self.wants_diarization

    @property
    def wants_timestamps(self) -> bool:
        """Segment times in the response, or needed to build it (words, speaker turns)."""
        return self.response_format not in ("json", "text") or self.wants_words

    def decode_options(self) -> DecodeOptions:
        return DecodeOptions(
            task=self.task,
            language=None if self.language == "auto" else self.language,
            prompt=self.prompt or None,
            hotwords=(self.hotwords or "").strip() or None,
            temperature=self.temperature,
            word_timestamps=self.wants_words,
            timestamps=self.wants_timestamps,
            logprobs="logprobs" in self.include,
        )

    @classmethod
    def from_form(cls, fields: dict[str, list[str]], task: Task) -> "TranscriptionRequest":
        """Build from multipart fields (name -> every value sent under it); raise InvalidRequest."""
        data: dict[str, Any] = {"task": task}
        for name, values in fields.items():
            key = name[:-2] if name.endswith("[]") else name
            if key not in cls.model_fields or key == "task" or not values:
                continue
            if key in ("timestamp_granularities", "include", "known_speaker_names", "known_speaker_references"):
                data.setdefault(key, []).extend(values)
            else:
                data[key] = values[-1]
        if task == "translate":
            for key in ("diarize", "min_speakers", "max_speakers"):
                if key in data:
                    raise InvalidRequest(f"`{key}` is not a parameter of translations.", param=key)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _from_validation(exc) from None


class _ParamError(ValueError):
    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def _param_error(param: str, message: str) -> _ParamError:
    return _ParamError(param, message)


def _from_validation(exc: ValidationError) -> InvalidRequest:
    err = exc.errors()[0]
    ctx_error = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _ParamError):
        return InvalidRequest(f"`{ctx_error.param}` {ctx_error}.", param=ctx_error.param)
    param = str(err["loc"][0]) if err.get("loc") else None
    message = err.get("msg", "is invalid").removeprefix("Value error, ")
    return InvalidRequest(f"Invalid `{param}`: {message}.", param=param)


# --- responses ---------------------------------------------------------------------------------


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str
    root: str  # the served model this id runs on: aliases say what really answers


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# --- transcription responses (json, verbose_json, diarized_json; text/srt/vtt are pipeline/formatting.py) ---
# Field order is the order on the wire. Optional fields are left out when empty, as the hosted APIs do.


class UsageDuration(BaseModel):
    """OpenAI's usage for models billed by audio length: on json, verbose_json and the stream's last event."""

    type: Literal["duration"] = "duration"
    seconds: float


class Logprob(BaseModel):
    """One text token's log probability (include[]=logprobs)."""

    token: str
    logprob: float
    bytes: list[int]


def usage_of(t: Transcript) -> UsageDuration:
    return UsageDuration(seconds=on_wire(t.duration))


def logprobs_of(segments: list[Segment]) -> Optional[list[Logprob]]:
    if all(s.logprobs is None for s in segments):
        return None
    return [Logprob(token=lp.token, logprob=round(lp.logprob, 6), bytes=lp.bytes)
            for s in segments for lp in (s.logprobs or [])]


class TranscriptionJson(BaseModel):
    text: str
    logprobs: Optional[list[Logprob]] = None  # with include[]=logprobs
    usage: Optional[UsageDuration] = None


class TranscriptionWord(BaseModel):
    id: int
    word: str
    start: float
    end: float
    # How sure the model was of the word: the mean probability of its tokens (faster-whisper's, as speaches,
    # WhisperX and WhisperLive return it)
    probability: Optional[float] = None
    speaker_id: Optional[str] = None  # with diarization


class TranscriptionSegment(BaseModel):
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    speaker_id: Optional[str] = None  # with diarization


class SpeakerSegment(BaseModel):
    """Together's `speaker_segments`: consecutive words of one speaker."""

    id: int
    speaker_id: str
    start: float
    end: float
    text: str
    words: list[TranscriptionWord]  # the same objects as the response's `words` (same `id`)


class TranscriptionVerbose(BaseModel):
    task: Task
    language: str  # the language's name, as OpenAI reports it ("english")
    duration: float
    text: str
    segments: list[TranscriptionSegment]
    words: Optional[list[TranscriptionWord]] = None  # with timestamp_granularities[]=word
    speaker_segments: Optional[list[SpeakerSegment]] = None  # with diarize=true
    usage: Optional[UsageDuration] = None


class DiarizedSegment(BaseModel):
    type: Literal["transcript.text.segment"] = "transcript.text.segment"
    id: str
    start: float
    end: float
    text: str
    speaker: str


class TranscriptionDiarized(BaseModel):
    """OpenAI's diarized_json: one segment per speaker turn."""

    task: Task
    duration: float
    text: str
    segments: list[DiarizedSegment]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: Optional[str] = None
    code: Optional[str] = None


class ErrorResponse(BaseModel):
    """The one error envelope (OpenAI's), on every route."""

    error: ErrorBody


def verbose_json(t: Transcript, *, words: bool) -> TranscriptionVerbose:
    word_objects = [
        TranscriptionWord(id=i, word=w.word.strip(), start=on_wire(w.start), end=on_wire(w.end),
                          probability=round(float(w.probability), 4), speaker_id=w.speaker_id or None)
        for i, w in enumerate(t.words)
    ]
    ids = iter(word_objects)
    return TranscriptionVerbose(
        task=t.task,
        language=LANGUAGES.get(t.language, t.language),
        duration=on_wire(t.duration),
        text=t.text,
        segments=[
            TranscriptionSegment(
                id=i, seek=s.seek, start=on_wire(s.start), end=on_wire(s.end), text=s.text, tokens=s.tokens,
                temperature=s.temperature, avg_logprob=s.avg_logprob, compression_ratio=s.compression_ratio,
                no_speech_prob=s.no_speech_prob, speaker_id=s.speaker_id or None,
            )
            for i, s in enumerate(t.segments)
        ],
        words=word_objects if words else None,
        speaker_segments=None if t.speaker_segments is None else [
            SpeakerSegment(id=i, speaker_id=turn.speaker_id, start=on_wire(turn.start), end=on_wire(turn.end),
                           text=turn.text, words=[next(ids) for _ in turn.words])
            for i, turn in enumerate(t.speaker_segments)
        ],
        usage=usage_of(t),
    )


def diarized_json(t: Transcript) -> TranscriptionDiarized:
    return TranscriptionDiarized(
        task=t.task,
        duration=on_wire(t.duration),
        text=t.text,
        segments=[
            DiarizedSegment(id=f"seg_{i}", start=on_wire(turn.start), end=on_wire(turn.end), text=turn.text,
                            speaker=turn.speaker_id)
            for i, turn in enumerate(t.speaker_segments or [])
        ],
    )


def render(t: Transcript, response_format: str, *, words: bool) -> Rendered:
    """The response body for `response_format`: the JSON formats through the models above, the text ones
    through pipeline/formatting.py."""
    if response_format in ("text", "srt", "vtt"):
        return Rendered(body=render_text(t, response_format), media_type=TEXT)
    if response_format == "verbose_json":
        model: BaseModel = verbose_json(t, words=words)
    elif response_format == "diarized_json":
        model = diarized_json(t)
    elif response_format == "json":
        model = TranscriptionJson(text=t.text, logprobs=logprobs_of(t.segments),
                                  usage=usage_of(t))
    else:
        raise ValueError(f"unknown response_format {response_format!r}")  # the request model forbids it
    # json.dumps, not model_dump_json: the same float spelling as before the models existed.
    return Rendered(body=json.dumps(model.model_dump(exclude_none=True), ensure_ascii=False), media_type=JSON)


# --- stream=true: server-sent events (OpenAI's transcription stream) ----------------------------------


class TranscriptTextDelta(BaseModel):
    type: Literal["transcript.text.delta"] = "transcript.text.delta"
    delta: str
    logprobs: Optional[list[Logprob]] = None  # the delta's tokens, with include[]=logprobs


class TranscriptTextDone(BaseModel):
    """OpenAI's last event. With response_format=verbose_json (which OpenAI does not stream) it also carries
    the rest of the verbose_json body, so that one streamed request gives both the deltas and the segments,
    words and speaker turns (the playground reads them); the SDKs keep fields they do not know."""

    type: Literal["transcript.text.done"] = "transcript.text.done"
    text: str
    usage: UsageDuration
    task: Optional[Task] = None
    language: Optional[str] = None
    duration: Optional[float] = None
    segments: Optional[list[TranscriptionSegment]] = None
    words: Optional[list[TranscriptionWord]] = None
    speaker_segments: Optional[list[SpeakerSegment]] = None


class StreamError(BaseModel):
    """An error after the stream started (its 200 is sent): the envelope as an event, then the end. The
    `openai` SDK raises it as an APIError."""

    type: Literal["error"] = "error"
    error: ErrorBody


def sse(event: BaseModel) -> str:
    return f"data: {json.dumps(event.model_dump(exclude_none=True), ensure_ascii=False)}\n\n"


class DeltaText:
    """The text of each decoded window as a delta, so that the deltas joined are the final `text` (which
    has no leading space; a window that decoded to nothing sends no delta)."""

    def __init__(self) -> None:
        self._started = False

    def delta(self, segments: list[Segment]) -> Optional[TranscriptTextDelta]:
        text = "".join(s.text for s in segments)
        if not self._started:
            text = text.lstrip()
        if not text:
            return None
        self._started = True
        return TranscriptTextDelta(delta=text, logprobs=logprobs_of(segments))


def done_event(t: Transcript, verbose: Optional[TranscriptionVerbose] = None) -> TranscriptTextDone:
    # the verbose body's own objects, not a dump of them validated again (a long file has thousands of words)
    body = {} if verbose is None else {
        name: getattr(verbose, name) for name in TranscriptionVerbose.model_fields if name not in ("text", "usage")}
    return TranscriptTextDone(text=t.text, usage=usage_of(t), **body)
