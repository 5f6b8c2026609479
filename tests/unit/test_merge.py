"""The word -> speaker merge (pure): examples, then properties over random words and turns."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from serve_app.pipeline.merge import (
    DEFAULT_TURN_GAP_S, assign_speakers, group_turns, speaker_at, speaker_names, word_spans,
)
from serve_app.pipeline.types import Segment, Transcript, Turn, Word
from serve_app.protocol import render


def seg(words, text=None):
    return Segment(seek=0, start=words[0].start if words else 0.0, end=words[-1].end if words else 0.0,
                   text=text if text is not None else "".join(w.word for w in words), tokens=[1],
                   temperature=0.0, avg_logprob=-0.1, compression_ratio=1.0, no_speech_prob=0.0, words=words)


def transcript(*segments):
    return Transcript(task="transcribe", language="en", duration=30.0, segments=list(segments))


TURNS = [Turn(0.0, 2.0, "B"), Turn(2.0, 5.0, "A"), Turn(8.0, 9.0, "B")]


def test_word_takes_the_speaker_it_overlaps_most():
    assert speaker_at(1.5, 2.2, TURNS) == "B"  # 0.5 s of B, 0.2 s of A
    assert speaker_at(1.9, 3.0, TURNS) == "A"
    assert speaker_at(4.0, 4.5, TURNS) == "A"


def test_word_outside_every_turn_takes_the_nearest():
    assert speaker_at(5.5, 6.0, TURNS) == "A"  # 0.5 s after A ends, 2 s before B starts
    assert speaker_at(7.2, 7.6, TURNS) == "B"
    assert speaker_at(20.0, 21.0, TURNS) == "B"
    assert speaker_at(0.0, 1.0, []) is None


def test_labels_follow_first_speech_and_segments_take_the_majority():
    words = [Word(" Hi", 0.1, 0.5, 1.0), Word(" there.", 0.6, 1.0, 1.0), Word(" Yes", 2.5, 3.0, 1.0),
             Word(" sure.", 8.1, 8.5, 1.0)]
    out = assign_speakers(transcript(seg(words[:3]), seg(words[3:])), TURNS)
    # B speaks first, so B is SPEAKER_00 whatever pyannote called it.
    assert [w.speaker_id for w in out.words] == ["SPEAKER_00", "SPEAKER_00", "SPEAKER_01", "SPEAKER_00"]
    assert [s.speaker_id for s in out.segments] == ["SPEAKER_00", "SPEAKER_00"]
    assert [(t.speaker_id, t.text) for t in out.speaker_segments] == [
        ("SPEAKER_00", "Hi there."), ("SPEAKER_01", "Yes"), ("SPEAKER_00", "sure.")]


def test_a_segment_without_word_timings_is_named_where_it_appears():
    """One naming for words and segments: a segment with no words (its own times decide its speaker) that
    comes first in the transcript is SPEAKER_00, before the speaker of the later words."""
    untimed = Segment(seek=0, start=0.2, end=1.8, text=" Mm.", tokens=[1], temperature=0.0, avg_logprob=-0.1,
                      compression_ratio=1.0, no_speech_prob=0.0, words=[])
    out = assign_speakers(transcript(untimed, seg([Word(" Yes", 2.5, 3.0, 1.0)])), TURNS)
    assert [s.speaker_id for s in out.segments] == ["SPEAKER_00", "SPEAKER_01"]  # B, then A
    assert [w.speaker_id for w in out.words] == ["SPEAKER_01"]


def test_no_turns_at_all_still_gives_every_word_a_speaker():
    out = assign_speakers(transcript(seg([Word(" Hm", 1.0, 1.2, 1.0)])), [])
    assert out.words[0].speaker_id == "SPEAKER_00" and len(out.speaker_segments) == 1


def test_rendered_shapes():
    words = [Word(" Hi.", 0.1, 0.5, 1.0), Word(" Yes.", 2.5, 3.0, 1.0)]
    out = assign_speakers(transcript(seg(words)), TURNS)
    verbose = json.loads(render(out, "verbose_json", words=False).body)
    assert "words" not in verbose
    assert [(s["id"], s["speaker_id"], s["text"], [w["id"] for w in s["words"]]) for s in verbose["speaker_segments"]] \
        == [(0, "SPEAKER_00", "Hi.", [0]), (1, "SPEAKER_01", "Yes.", [1])]
    assert verbose["segments"][0]["speaker_id"] == "SPEAKER_00"
    with_words = json.loads(render(out, "verbose_json", words=True).body)
    assert with_words["words"][1] == {"id": 1, "word": "Yes.", "start": 2.5, "end": 3.0, "probability": 1.0,
                                      "speaker_id": "SPEAKER_01"}
    diarized = json.loads(render(out, "diarized_json", words=False).body)
    assert diarized == {
        "task": "transcribe", "duration": 30.0, "text": "Hi. Yes.",
        "segments": [
            # Widened from the words' times to the speakers' diarization turns (0-2 s and 2-5 s).
            {"type": "transcript.text.segment", "id": "seg_0", "start": 0.0, "end": 2.0, "text": "Hi.",
             "speaker": "SPEAKER_00"},
            {"type": "transcript.text.segment", "id": "seg_1", "start": 2.0, "end": 5.0, "text": "Yes.",
             "speaker": "SPEAKER_01"},
        ],
    }


# --- properties ------------------------------------------------------------------------------------

@st.composite
def words_and_turns(draw):
    # Words in time order (Whisper's), possibly touching; turns non-overlapping (pyannote's exclusive ones).
    n = draw(st.integers(0, 40))
    t, words = 0.0, []
    for i in range(n):
        t += draw(st.floats(0.0, 2.0))
        length = draw(st.floats(0.0, 1.0))
        words.append(Word(f" w{i}", round(t, 3), round(t + length, 3), 1.0))
        t += length
    cuts = sorted(draw(st.lists(st.floats(0.0, 60.0), max_size=20)))
    turns = []
    for a, b in zip(cuts[::2], cuts[1::2]):
        if b > a:
            turns.append(Turn(a, b, draw(st.sampled_from(["x", "y", "z"]))))
    split = draw(st.integers(0, n))
    segments = [seg(part) for part in (words[:split], words[split:]) if part]
    return transcript(*segments), turns


@settings(max_examples=300, deadline=None)
@given(words_and_turns())
def test_every_word_lands_in_exactly_one_turn_in_order(case):
    tr, turns = case
    out = assign_speakers(tr, turns)
    in_turns = [w for turn in out.speaker_segments for w in turn.words]
    assert [(w.word, w.start) for w in in_turns] == [(w.word, w.start) for w in tr.words]
    assert all(w.speaker_id is not None for w in out.words)
    # Turns are consecutive runs of one speaker.
    for turn in out.speaker_segments:
        assert {w.speaker_id for w in turn.words} == {turn.speaker_id}
    spans = _spans(out, turns)  # where each word is said
    for a, b in zip(out.speaker_segments, out.speaker_segments[1:]):  # one speaker twice: a pause between
        a_end = max(spans[id(w)][1] for w in a.words)
        assert a.speaker_id != b.speaker_id or spans[id(b.words[0])][0] - a_end > DEFAULT_TURN_GAP_S


def _spans(out, turns):
    """id(word of the response) -> where the merge takes it to be said."""
    return {id(w): span for w, span in zip(out.words, word_spans(out.words, turns))}


def _longest_pause(turn, speech, spans) -> float:
    """The longest stretch of a turn with neither one of its words nor diarized speech of its speaker."""
    covered = sorted([spans[id(w)] for w in turn.words] + [(t.start, t.end) for t in speech])
    longest, at = 0.0, turn.start
    for start, end in covered:
        if end > at and start < turn.end:
            longest, at = max(longest, start - at), max(at, end)
    return max(longest, turn.end - at)


@settings(max_examples=300, deadline=None)
@given(words_and_turns(), st.sampled_from([0.3, 1.0, 2.5]), st.booleans())
def test_no_turn_spans_a_pause_longer_than_the_gap(case, gap, with_overlap):
    tr, turns = case
    speech = _overlapping(turns) if with_overlap else None
    out = assign_speakers(tr, turns, gap, speech=speech)
    spans = _spans(out, speech or turns)
    names = {}  # the diarization's labels under their response names: the speaker of the words they gave
    for w in out.words:
        names.setdefault(speaker_at(*spans[id(w)], sorted(turns, key=lambda t: t.start)), w.speaker_id)
    for turn in out.speaker_segments:
        own = [t for t in speech or turns if names.get(t.speaker) == turn.speaker_id]
        assert _longest_pause(turn, own, spans) <= gap + 1e-9


def _overlapping(turns):
    """The diarization with overlap that goes with exclusive `turns`: each turn reaches 0.7 s into its
    neighbours' time (pyannote's exclusive turns are its own turns with the overlaps given to one speaker)."""
    return [Turn(max(0.0, t.start - 0.7), t.end + 0.7, t.speaker) for t in turns]


@settings(max_examples=300, deadline=None)
@given(words_and_turns())
def test_with_overlapping_speech_turns_stay_in_order_and_a_speaker_never_overlaps_itself(case):
    tr, turns = case
    speech = _overlapping(turns)
    out = assign_speakers(tr, turns, speech=speech)
    assert [w.word for t in out.speaker_segments for w in t.words] == [w.word for w in tr.words]
    assert " ".join(t.text for t in out.speaker_segments) == out.text
    turns_out = out.speaker_segments
    for a, b in zip(turns_out, turns_out[1:]):
        assert a.start <= b.start
    for i, a in enumerate(turns_out):
        later = [b for b in turns_out[i + 1:] if b.speaker_id == a.speaker_id]
        assert not later or a.end <= later[0].start


def test_turns_overlap_where_the_diarization_hears_both_speakers():
    # B says "yeah" (3.0-3.3) while A goes on talking: pyannote hears A from 0.5 to 5.0 and B from 2.8 to 3.5.
    words = [Word(" so", 1.0, 1.5, 1.0), Word(" we", 2.0, 2.6, 1.0), Word(" yeah", 3.0, 3.3, 1.0),
             Word(" could", 3.6, 4.8, 1.0)]
    exclusive = [Turn(0.5, 2.8, "a"), Turn(2.8, 3.5, "b"), Turn(3.5, 5.0, "a")]
    speech = [Turn(0.5, 5.0, "a"), Turn(2.8, 3.5, "b")]
    out = assign_speakers(transcript(seg(words)), exclusive, speech=speech)
    assert [(t.speaker_id, t.start, t.end, t.text) for t in out.speaker_segments] == [
        ("SPEAKER_00", 0.5, 3.3, "so we"), ("SPEAKER_01", 2.8, 3.5, "yeah"), ("SPEAKER_00", 3.3, 5.0, "could")]
    # Without the overlapping turns, the same words give turns that only touch.
    out = assign_speakers(transcript(seg(words)), exclusive)
    assert [(t.start, t.end) for t in out.speaker_segments] == [(0.5, 2.8), (2.8, 3.5), (3.5, 5.0)]


def test_a_word_whisper_stretched_over_a_silence_starts_where_the_speech_does():
    # AMI tst01: "Okay," ends at 16.9 s; Whisper gives "who" 16.9-26.3 s, but nobody speaks from 17.0 to 26.0 s.
    words = [Word(" Okay,", 16.2, 16.9, 0.9), Word(" who", 16.9, 26.3, 0.9), Word(" wants", 26.3, 26.6, 0.9)]
    turns = [Turn(16.1, 17.0, "a"), Turn(26.0, 28.5, "a")]
    out = assign_speakers(transcript(seg(words)), turns)
    assert [(t.start, t.end, t.text) for t in out.speaker_segments] == [(16.1, 17.0, "Okay,"), (26.0, 28.5, "who wants")]
    assert out.words[1].start == 16.9  # the response keeps Whisper's times
    # At a boundary too: the stretched word goes to the speaker heard where it is said.
    out = assign_speakers(transcript(seg(words)), [Turn(16.1, 17.0, "a"), Turn(26.0, 28.5, "b")])
    assert [w.speaker_id for w in out.words] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_01"]


def test_a_turn_ends_at_a_long_pause_and_goes_on_through_its_speakers_speech():
    # The case: one speaker says "Yeah" at 16.5 s, the next words come at 24.2 s.
    words = [Word(" Yeah.", 16.5, 16.8, 0.9), Word(" So", 24.2, 24.5, 0.9), Word(" then", 24.6, 25.0, 0.9)]
    apart = [Turn(16.3, 17.0, "a"), Turn(24.0, 28.5, "a")]
    out = assign_speakers(transcript(seg(words)), apart)
    assert [(t.start, t.end, t.text) for t in out.speaker_segments] == [(16.3, 17.0, "Yeah."), (24.0, 28.5, "So then")]
    # The same words, but the diarization hears the speaker all along (Whisper skipped a mumble): one turn.
    out = assign_speakers(transcript(seg(words)), [Turn(16.3, 28.5, "a")])
    assert [(t.start, t.end) for t in out.speaker_segments] == [(16.3, 28.5)]


@settings(max_examples=300, deadline=None)
@given(words_and_turns())
def test_turns_do_not_overlap_and_their_text_is_the_text(case):
    tr, turns = case
    out = assign_speakers(tr, turns)
    for turn in out.speaker_segments:
        assert turn.start <= turn.end
    for a, b in zip(out.speaker_segments, out.speaker_segments[1:]):
        assert a.end <= b.start
    assert " ".join(t.text for t in out.speaker_segments) == out.text


@settings(max_examples=300, deadline=None)
@given(words_and_turns())
def test_labels_are_numbered_in_order_of_first_appearance(case):
    tr, turns = case
    out = assign_speakers(tr, turns)
    seen = list(dict.fromkeys(w.speaker_id for w in out.words))
    assert seen == [f"SPEAKER_{i:02d}" for i in range(len(seen))]
    assert speaker_names(["b", "a", "b", "c"]) == {"b": "SPEAKER_00", "a": "SPEAKER_01", "c": "SPEAKER_02"}


def test_turns_widen_to_the_diarization_but_not_into_neighbours():
    words = [Word(" a", 1.0, 1.5, 1.0, "S0"), Word(" b", 3.0, 3.5, 1.0, "S1"), Word(" c", 6.0, 6.5, 1.0, "S0")]
    turns = [Turn(0.5, 3.2, "S0"), Turn(2.5, 4.0, "S1"), Turn(5.0, 7.0, "S0"), Turn(9.0, 9.5, "S1")]
    got = [(g.speaker_id, g.start, g.end) for g in group_turns(words, turns)]
    # S0's first turn would reach 3.2, past S1's first word: it stops at 3.0; S1 starts where S0 stopped.
    assert got == [("S0", 0.5, 3.0), ("S1", 3.0, 4.0), ("S0", 5.0, 7.0)]


def test_a_turn_takes_its_speakers_speech_just_before_and_after_its_words():
    # S0 speaks 0.5-2.0 and 2.3-4.0 (one breath apart) but Whisper has words only in 1.0-1.8: the turn covers
    # both stretches. Speech of S0 a pause longer than the gap later (5.0-6.0) is not part of it.
    words = [Word(" a", 1.0, 1.4, 1.0, "S0"), Word(" b", 1.4, 1.8, 1.0, "S0")]
    turns = [Turn(0.5, 2.0, "S0"), Turn(2.3, 4.0, "S0"), Turn(5.0, 6.0, "S0")]
    [turn] = group_turns(words, turns, gap_s=0.5)
    assert (turn.start, turn.end) == (0.5, 4.0)
    [turn] = group_turns(words, turns, gap_s=0.5, speech=turns)
    assert (turn.start, turn.end) == (0.5, 4.0)


@settings(max_examples=200, deadline=None)
@given(words_and_turns())
def test_every_word_lies_inside_its_turn(case):
    tr, turns = case
    out = assign_speakers(tr, turns)
    spans = _spans(out, turns)
    for turn in out.speaker_segments:
        assert turn.start <= spans[id(turn.words[0])][0] and spans[id(turn.words[-1])][0] <= turn.end


def test_group_turns_keeps_a_late_word_inside_its_turn():
    # Whisper may end a word after the next one starts; turns still must not overlap.
    words = [Word(" a", 0.0, 1.5, 1.0, "S0"), Word(" b", 1.0, 2.0, 1.0, "S1")]
    first, second = group_turns(words)
    assert first.end <= second.start and second.start <= second.end
