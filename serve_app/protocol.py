"""Wire models of the public API (docs/API.md), in the order the docs list them.

The multipart form is parsed once, into `TranscriptionRequest`, whose validators own every rule
and name the offending `param`. Transcriptions and translations share it.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from serve_app.errors import InvalidRequest
from serve_app.pipeline.languages import LANGUAGES
from serve_app.pipeline.types import DecodeOptions, Task

ResponseFormat = Literal["json", "verbose_json", "text", "srt", "vtt", "diarized_json"]
Granularity = Literal["segment", "word"]

_BOOL_STRINGS = {"true": True, "1": True, "false": False, "0": False}
# Whisper reads at most the last 223 tokens of a prompt, and no token covers more than a few dozen
# characters: a longer prompt is cut here, once, to its tail (what the model would read anyway).
MAX_PROMPT_CHARS = 8000


class TranscriptionRequest(BaseModel):
    """Every form field of POST /v1/audio/transcriptions and /v1/audio/translations but `file`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    task: Task = "transcribe"
    model: Optional[str] = None  # None: the configured default model
    language: str = "en"
    prompt: Optional[str] = None
    response_format: ResponseFormat = "json"
    temperature: float = Field(0.0, ge=0.0, le=1.0, allow_inf_nan=False)
    timestamp_granularities: list[Granularity] = Field(default_factory=lambda: ["segment"])
    diarize: bool = False
    min_speakers: Optional[int] = Field(None, ge=1, le=64)
    max_speakers: Optional[int] = Field(None, ge=1, le=64)

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

    @field_validator("diarize", mode="before")
    @classmethod
    def _diarize(cls, value: Any) -> bool:
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
        return self

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
            temperature=self.temperature,
            word_timestamps=self.wants_words,
            timestamps=self.wants_timestamps,
        )

    @classmethod
    def from_form(cls, fields: dict[str, list[str]], task: Task) -> "TranscriptionRequest":
        """Build from multipart fields (name -> every value sent under it); raise InvalidRequest."""
        data: dict[str, Any] = {"task": task}
        for name, values in fields.items():
            key = name[:-2] if name.endswith("[]") else name
            if key not in cls.model_fields or key == "task" or not values:
                continue
            if key == "timestamp_granularities":
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
