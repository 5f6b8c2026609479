"""Words + speaker turns -> speaker-attributed words, segments and speaker turns. Pure functions.

Speakers are named here and only here (`speaker_names`): SPEAKER_00, SPEAKER_01, ... in order of first
appearance, so a name never depends on the clustering's label order.

Words are matched against pyannote's *exclusive* diarization (one speaker at a time), so a word in
overlapped speech still goes to one speaker: the one it overlaps most, or the nearest turn when it overlaps
none (Whisper's word times and pyannote's turns do not line up exactly, and VAD pads speech).
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import replace
from typing import Iterable, Optional, Sequence

from serve_app.pipeline.types import Segment, SpeakerSegment, Transcript, Turn, Word

FALLBACK_SPEAKER = "SPEAKER_00"  # when diarization found no speech at all but Whisper heard words


def speaker_at(start: float, end: float, turns: Sequence[Turn], starts: Optional[list[float]] = None) -> Optional[str]:
    """The speaker whose turns overlap [start, end] the most; the nearest turn's speaker if none overlaps.
    `turns` are sorted by start and do not overlap; `starts` is [t.start for t in turns], for bisect."""
    if not turns:
        return None
    starts = starts if starts is not None else [t.start for t in turns]
    # Turns do not overlap, so only those from just before `start` up to `end` can touch the word.
    lo = max(0, bisect.bisect_right(starts, start) - 1)
    hi = bisect.bisect_right(starts, end)
    overlap: Counter[str] = Counter()
    for t in turns[lo:hi]:
        o = min(end, t.end) - max(start, t.start)
        if o > 0:
            overlap[t.speaker] += o
    if overlap:
        return min(overlap.items(), key=lambda kv: (-kv[1], kv[0]))[0]  # ties: the lower label
    # Nearest turn: the one ending before the word or the one starting after it.
    candidates = turns[max(0, lo - 1) : hi + 1]
    return min(candidates, key=lambda t: max(t.start - end, start - t.end, 0.0)).speaker


def speaker_names(labels: Iterable[str]) -> dict[str, str]:
    """Label -> SPEAKER_00, SPEAKER_01, ... in order of first appearance in `labels`."""
    names: dict[str, str] = {}
    for label in labels:
        if label not in names:
            names[label] = f"SPEAKER_{len(names):02d}"
    return names


def group_turns(words: Sequence[Word], turns: Sequence[Turn] = ()) -> list[SpeakerSegment]:
    """Consecutive words of one speaker form a turn. Turns are in order and never overlap.

    Whisper's word times cover less than the speech (pauses inside a word run, soft onsets), so each
    turn is widened to the diarization turns of its speaker that it overlaps, as far as its neighbours
    allow. `turns` carry the final speaker labels."""
    groups: list[SpeakerSegment] = []
    for w in words:
        if groups and groups[-1].speaker_id == w.speaker_id:
            groups[-1].words.append(w)
            groups[-1].end = max(groups[-1].end, w.end)
        else:
            start = max(w.start, groups[-1].end) if groups else w.start
            groups.append(SpeakerSegment(speaker_id=w.speaker_id, start=start, end=max(start, w.end), words=[w]))
    for i, g in enumerate(groups):
        own = [t for t in turns if t.speaker == g.speaker_id and t.start < g.end and t.end > g.start]
        if not own:
            continue
        floor = groups[i - 1].end if i > 0 else 0.0
        ceiling = groups[i + 1].start if i + 1 < len(groups) else float("inf")
        g.start = max(floor, min(g.start, min(t.start for t in own)))
        g.end = max(g.end, min(ceiling, max(t.end for t in own)))
    return groups


def _majority(speakers: Sequence[str]) -> Optional[str]:
    if not speakers:
        return None
    counts = Counter(speakers)
    # Ties go to the speaker who spoke first in the segment.
    return max(counts, key=lambda s: (counts[s], -speakers.index(s)))


def assign_speakers(transcript: Transcript, turns: Sequence[Turn]) -> Transcript:
    """A copy of `transcript` with a speaker on every word and segment, and its speaker turns.

    `turns` is the exclusive diarization, sorted by start, non-overlapping."""
    turns = sorted(turns, key=lambda t: t.start)
    starts = [t.start for t in turns]

    # The diarization's label for each word, and for each segment that has no word timings (its own times).
    raw_words = [
        [speaker_at(w.start, w.end, turns, starts) or FALLBACK_SPEAKER for w in seg.words]
        for seg in transcript.segments
    ]
    raw_segments = [
        None if seg.words else (speaker_at(seg.start, seg.end, turns, starts) or FALLBACK_SPEAKER)
        for seg in transcript.segments
    ]
    # Named by first appearance in the transcript: the first voice heard in the response is SPEAKER_00.
    names = speaker_names(
        label for seg_words, seg_label in zip(raw_words, raw_segments) for label in (seg_words or [seg_label])
    )

    segments: list[Segment] = []
    for seg, seg_speakers, seg_label in zip(transcript.segments, raw_words, raw_segments):
        words = [replace(w, speaker_id=names[s]) for w, s in zip(seg.words, seg_speakers)]
        speaker = _majority([w.speaker_id for w in words]) if words else names[seg_label]
        segments.append(replace(seg, words=words, speaker_id=speaker))

    merged = replace(transcript, segments=segments)
    named_turns = [replace(t, speaker=names[t.speaker]) for t in turns if t.speaker in names]
    merged.speaker_segments = group_turns(merged.words, named_turns)
    return merged
