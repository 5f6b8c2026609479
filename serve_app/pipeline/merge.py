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
from typing import Collection, Iterable, Optional, Sequence

from serve_app.pipeline.types import Segment, SpeakerSegment, Transcript, Turn, Word

FALLBACK_SPEAKER = "SPEAKER_00"  # when diarization found no speech at all but Whisper heard words
DEFAULT_TURN_GAP_S = 0.5  # DiarizationConfig.turn_gap_s (the Merger deployment is bound with it)


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


def speaker_names(labels: Iterable[str], known: Collection[str] = ()) -> dict[str, str]:
    """Label -> SPEAKER_00, SPEAKER_01, ... in order of first appearance in `labels`; a `known` label (a name
    the client gave) keeps its name and takes no number."""
    names: dict[str, str] = {}
    numbered = 0
    for label in labels:
        if label in names:
            continue
        if label in known:
            names[label] = label
        else:
            names[label] = f"SPEAKER_{numbered:02d}"
            numbered += 1
    return names


def _uncovered(start: float, end: float, turns: Sequence[Turn]) -> float:
    """The longest stretch of [start, end] that no turn in `turns` (sorted by start) covers."""
    longest, at = 0.0, start
    for t in turns:
        if t.end <= at or t.start >= end:
            continue
        longest = max(longest, t.start - at)
        at = max(at, t.end)
    return max(longest, end - at)


STRETCHED_WORD_PAUSE_S = 0.3  # silence inside one word's span that no word has: Whisper stretched it


def _regions(turns: Iterable[Turn], gap_s: float = 0.0) -> list[tuple[float, float]]:
    """The stretches where the diarization hears anyone: its turns joined (across pauses up to `gap_s`),
    sorted."""
    out: list[list[float]] = []
    for t in sorted(turns, key=lambda t: t.start):
        if out and t.start <= out[-1][1] + gap_s:
            out[-1][1] = max(out[-1][1], t.end)
        else:
            out.append([t.start, t.end])
    return [(a, b) for a, b in out]


def word_spans(words: Sequence[Word], turns: Iterable[Turn]) -> list[tuple[float, float]]:
    """Where each word is taken to be said. Whisper sometimes stretches a word's start back over a silence
    to the previous word's end (a word "from 16.9 s to 26.3 s" after 9 s of nobody speaking): when the
    diarization hears nobody for more than STRETCHED_WORD_PAUSE_S inside a word, the word starts where the
    last stretch of speech it overlaps begins. The response keeps Whisper's times; speakers and turns use
    these."""
    regions = _regions(turns)
    starts = [a for a, _ in regions]
    spans = []
    for w in words:
        i = bisect.bisect_left(starts, w.end) - 1  # the last stretch of speech that starts before the word ends
        start = w.start
        if i >= 0 and regions[i][0] > w.start:
            # The longest silence between the word's start and that stretch (the stretches are disjoint and
            # sorted; the first one looked at is the one the word starts in, or the last before it).
            silent, at = 0.0, w.start
            for a, b in regions[max(0, bisect.bisect_right(starts, w.start) - 1): i + 1]:
                silent, at = max(silent, a - at), max(at, b)
            if silent > STRETCHED_WORD_PAUSE_S:
                start = regions[i][0]
        spans.append((start, max(start, w.end)))
    return spans


def group_turns(
    words: Sequence[Word], turns: Sequence[Turn] = (), gap_s: float = DEFAULT_TURN_GAP_S,
    speech: Optional[Sequence[Turn]] = None, spans: Optional[Sequence[tuple[float, float]]] = None,
) -> list[SpeakerSegment]:
    """Consecutive words of one speaker form a turn, unless a pause longer than `gap_s` separates them
    (no words, and no diarized speech of that speaker). Turns are in order of start.

    Whisper's word times cover less than the speech (pauses inside a word run, soft onsets), so each
    turn is widened to the diarized speech of its speaker that it overlaps. `speech` is the diarization
    with overlap (the pipeline's own turns): a turn then widens into its neighbours' time where the
    diarization hears both speakers at once, as it does in a meeting. Without it the widening uses `turns`
    and stops at the neighbours, so turns never overlap. A speaker's own turns never overlap each other.
    `turns` and `speech` carry the final speaker labels; `spans` is word_spans(words, ...) when the caller
    has it already."""
    overlapping = speech is not None
    by_speaker: dict[Optional[str], list[Turn]] = {}
    for t in sorted(speech if overlapping else turns, key=lambda t: t.start):
        by_speaker.setdefault(t.speaker, []).append(t)
    if spans is None:
        spans = word_spans(words, speech if overlapping else turns)
    groups: list[SpeakerSegment] = []
    for w, (w_start, w_end) in zip(words, spans):
        last = groups[-1] if groups else None
        if (last is not None and last.speaker_id == w.speaker_id
                and (w_start - last.end <= gap_s
                     or _uncovered(last.end, w_start, by_speaker.get(w.speaker_id, ())) <= gap_s)):
            last.words.append(w)
            last.end = max(last.end, w_end)
        else:
            start = max(w_start, last.end) if last is not None else w_start
            groups.append(SpeakerSegment(speaker_id=w.speaker_id, start=start, end=max(start, w_end), words=[w]))
    # Where each turn's speaker speaks next (its next turn's start, before widening): one pass from the end.
    next_own: list[float] = [float("inf")] * len(groups)
    seen: dict[Optional[str], float] = {}
    for i in range(len(groups) - 1, -1, -1):
        next_own[i] = seen.get(groups[i].speaker_id, float("inf"))
        seen[groups[i].speaker_id] = groups[i].start
    # Each speaker's diarized speech, joined across pauses no longer than the gap: a turn widens to the
    # stretches it overlaps, so speech of its speaker just before its first word or after its last word
    # (a breath, a drawn-out "so...", words Whisper did not transcribe) belongs to the turn.
    blocks = {speaker: _regions(own, gap_s) for speaker, own in by_speaker.items()}
    last_end: dict[Optional[str], float] = {}  # each speaker's latest turn end, as widened
    for i, g in enumerate(groups):
        own = [(a, b) for a, b in blocks.get(g.speaker_id, ()) if a < g.end and b > g.start]
        if own:
            if overlapping:
                # Not before the previous turn starts (turns stay in order), nor into the speaker's own
                # previous turn; not past the next turn's end, nor into the speaker's own next turn.
                later = next_own[i]
                floor = max(groups[i - 1].start if i > 0 else 0.0, last_end.get(g.speaker_id, 0.0))
                ceiling = min(groups[i + 1].end if i + 1 < len(groups) else float("inf"), later)
            else:
                floor = groups[i - 1].end if i > 0 else 0.0
                ceiling = groups[i + 1].start if i + 1 < len(groups) else float("inf")
            g.start = max(floor, min(g.start, min(a for a, _ in own)))
            g.end = max(g.end, min(ceiling, max(b for _, b in own)))
        last_end[g.speaker_id] = g.end
    return groups


def _majority(speakers: Sequence[str]) -> Optional[str]:
    if not speakers:
        return None
    counts = Counter(speakers)
    # Ties go to the speaker who spoke first in the segment.
    return max(counts, key=lambda s: (counts[s], -speakers.index(s)))


def assign_speakers(
    transcript: Transcript, turns: Sequence[Turn], gap_s: float = DEFAULT_TURN_GAP_S,
    speech: Optional[Sequence[Turn]] = None,
) -> Transcript:
    """A copy of `transcript` with a speaker on every word and segment, and its speaker turns (none spans a
    pause longer than `gap_s`).

    `turns` is the exclusive diarization, sorted by start, non-overlapping; words are matched against it.
    `speech`, the diarization with overlap, is what the speaker turns widen to (see group_turns)."""
    turns = sorted(turns, key=lambda t: t.start)
    starts = [t.start for t in turns]
    # Where each word is said, once for the whole transcript: its speaker and its turn both read it.
    spans = word_spans(transcript.words, speech if speech is not None else turns)
    spans_left = iter(spans)

    # The diarization's label for each word, and for each segment that has no word timings (its own times).
    raw_words = [
        [speaker_at(*next(spans_left), turns, starts) or FALLBACK_SPEAKER for _ in seg.words]
        for seg in transcript.segments
    ]
    raw_segments = [
        None if seg.words else (speaker_at(seg.start, seg.end, turns, starts) or FALLBACK_SPEAKER)
        for seg in transcript.segments
    ]
    # Named by first appearance in the transcript: the first voice heard in the response is SPEAKER_00.
    names = speaker_names(
        (label for seg_words, seg_label in zip(raw_words, raw_segments) for label in (seg_words or [seg_label])),
        known={t.speaker for t in turns if t.known},
    )

    segments: list[Segment] = []
    for seg, seg_speakers, seg_label in zip(transcript.segments, raw_words, raw_segments):
        words = [replace(w, speaker_id=names[s]) for w, s in zip(seg.words, seg_speakers)]
        speaker = _majority([w.speaker_id for w in words]) if words else names[seg_label]
        segments.append(replace(seg, words=words, speaker_id=speaker))

    merged = replace(transcript, segments=segments)
    named_turns = [replace(t, speaker=names[t.speaker]) for t in turns if t.speaker in names]
    named_speech = None if speech is None else [replace(t, speaker=names[t.speaker]) for t in speech if t.speaker in names]
    merged.speaker_segments = group_turns(merged.words, named_turns, gap_s, named_speech, spans)
    return merged



