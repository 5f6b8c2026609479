"""The word -> speaker merge (pure): examples, then properties over random words and turns."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from serve_app.pipeline.merge import assign_speakers, group_turns, speaker_names, speaker_at
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
    for a, b in zip(out.speaker_segments, out.speaker_segments[1:]):
        assert a.speaker_id != b.speaker_id


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


@settings(max_examples=200, deadline=None)
@given(words_and_turns())
def test_every_word_lies_inside_its_turn(case):
    tr, turns = case
    out = assign_speakers(tr, turns)
    for turn in out.speaker_segments:
        assert turn.start <= turn.words[0].start and turn.words[-1].start <= turn.end


def test_group_turns_keeps_a_late_word_inside_its_turn():
    # Whisper may end a word after the next one starts; turns still must not overlap.
    words = [Word(" a", 0.0, 1.5, 1.0, "S0"), Word(" b", 1.0, 2.0, 1.0, "S1")]
    first, second = group_turns(words)
    assert first.end <= second.start and second.start <= second.end
