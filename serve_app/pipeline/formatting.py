"""A Transcript as text, srt and vtt (the JSON formats are the models in serve_app/protocol.py). Times are
computed in integer milliseconds."""

from __future__ import annotations

from typing import Iterable

from serve_app.pipeline.types import Segment, Transcript

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


def _ms(seconds: float) -> int:
    return max(0, int(round(seconds * 1000)))


def on_wire(seconds: float) -> float:
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


def render_text(t: Transcript, response_format: str) -> str:
    if response_format == "text":
        return t.text + "\n" if t.text else ""
    if response_format == "srt":
        return to_srt(t)
    if response_format == "vtt":
        return to_vtt(t)
    raise ValueError(f"{response_format!r} is not a text format")
