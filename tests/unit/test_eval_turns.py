"""The evaluate command's "API + wordless speech" hypothesis: the response's turns, relabelled to the
diarization's labels, joined with the diarization's speech that no turn covers."""

from serve_app.eval.diarization import with_wordless_speech
from serve_app.pipeline.types import SpeakerSegment, Turn


def test_wordless_speech_joins_the_turns_under_the_diarization_s_labels():
    segments = [SpeakerSegment(speaker_id="SPEAKER_00", start=0.0, end=2.0, words=[]),
                SpeakerSegment(speaker_id="SPEAKER_01", start=2.0, end=4.0, words=[])]
    # "b" also says something at 5-6 s that has no words, and "c" only mumbles (no words at all).
    turns = [Turn(0.0, 2.1, "b"), Turn(1.9, 4.0, "a"), Turn(5.0, 6.0, "b"), Turn(3.0, 3.5, "c")]
    got = with_wordless_speech("x", segments, turns)
    tracks = {label: [(s.start, s.end) for s in got.label_timeline(label)] for label in got.labels()}
    assert tracks == {"b": [(0.0, 2.1), (5.0, 6.0)], "a": [(1.9, 4.0)], "c": [(3.0, 3.5)]}
