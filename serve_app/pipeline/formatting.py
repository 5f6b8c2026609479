"""Render a Transcript in each response_format. Times are computed in integer milliseconds."""

from __future__ import annotations

import json
from typing import Any, Iterable

from serve_app.pipeline.languages import LANGUAGES
from serve_app.pipeline.types import Rendered, Segment, Transcript, Word

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


def _ms(seconds: float) -> int:
    return max(0, int(round(seconds * 1000)))


def _sec(seconds: float) -> float:
    """Seconds on the wire: rounded to the millisecond, so every format agrees."""
    return _ms(seconds) / 1000


def _clock(seconds: float, sep: str) -> str:
    ms = _ms(seconds)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cues(segments: Iterable[Segment]) -> list[Segment]:
    return [s for s in segments if s.text.strip()]


def to_srt(t: Transcript) -> str:
    blocks = [
        f"{i}\n{_clock(s.start, ',')} --> {_clock(s.end, ',')}\n{s.text.strip()}\n"
        for i, s in enumerate(_cues(t.segments), start=1)
    ]
    return "\n".join(blocks)


def to_vtt(t: Transcript) -> str:
    blocks = [f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}\n{s.text.strip()}\n" for s in _cues(t.segments)]
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_verbose_json(t: Transcript, *, words: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task": t.task,
        "language": LANGUAGES.get(t.language, t.language),
        "duration": _sec(t.duration),
        "text": t.text,
        "segments": [
            {
                "id": i,
                "seek": s.seek,
                "start": _sec(s.start),
                "end": _sec(s.end),
                "text": s.text,
                "tokens": s.tokens,
                "temperature": s.temperature,
                "avg_logprob": s.avg_logprob,
                "compression_ratio": s.compression_ratio,
                "no_speech_prob": s.no_speech_prob,
                **({"speaker_id": s.speaker_id} if s.speaker_id else {}),
            }
            for i, s in enumerate(t.segments)
        ],
    }
    word_objects = [_word(i, w) for i, w in enumerate(t.words)]
    if words:
        body["words"] = word_objects
    if t.speaker_segments is not None:
        # The same word objects as `words`, so a word's `id` finds it there.
        ids = iter(word_objects)
        body["speaker_segments"] = [
            {
                "id": i,
                "speaker_id": turn.speaker_id,
                "start": _sec(turn.start),
                "end": _sec(turn.end),
                "text": turn.text,
                "words": [next(ids) for _ in turn.words],
            }
            for i, turn in enumerate(t.speaker_segments)
        ]
    return body


def _word(i: int, w: Word) -> dict[str, Any]:
    return {
        "id": i,
        "word": w.word.strip(),
        "start": _sec(w.start),
        "end": _sec(w.end),
        **({"speaker_id": w.speaker_id} if w.speaker_id else {}),
    }


def to_diarized_json(t: Transcript) -> dict[str, Any]:
    """OpenAI's diarized_json: one segment per speaker turn."""
    return {
        "task": t.task,
        "duration": _sec(t.duration),
        "text": t.text,
        "segments": [
            {
                "type": "transcript.text.segment",
                "id": f"seg_{i}",
                "start": _sec(turn.start),
                "end": _sec(turn.end),
                "text": turn.text,
                "speaker": turn.speaker_id,
            }
            for i, turn in enumerate(t.speaker_segments or [])
        ],
    }


def render(t: Transcript, response_format: str, *, words: bool) -> Rendered:
    if response_format == "text":
        return Rendered(body=t.text + "\n" if t.text else "", media_type=TEXT)
    if response_format == "srt":
        return Rendered(body=to_srt(t), media_type=TEXT)
    if response_format == "vtt":
        return Rendered(body=to_vtt(t), media_type=TEXT)
    if response_format == "verbose_json":
        return Rendered(body=json.dumps(to_verbose_json(t, words=words), ensure_ascii=False), media_type=JSON)
    if response_format == "diarized_json":
        return Rendered(body=json.dumps(to_diarized_json(t), ensure_ascii=False), media_type=JSON)
    if response_format == "json":
        return Rendered(body=json.dumps({"text": t.text}, ensure_ascii=False), media_type=JSON)
    raise ValueError(f"unknown response_format {response_format!r}")  # the request model forbids it
