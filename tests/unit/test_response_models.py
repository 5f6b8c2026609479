"""The response models (serve_app/protocol.py) against the official SDKs' own types: every body this
service renders parses as the `openai` and `together` response types, with the same values, and the
OpenAPI schema declares the models and the error envelope on every route."""

from __future__ import annotations

import json

import pytest
from openai.types.audio import Transcription, TranscriptionDiarized, TranscriptionVerbose
from together.types.audio.transcription_create_response import (
    AudioTranscriptionJsonResponse,
    AudioTranscriptionVerboseJsonResponse,
)

from serve_app.pipeline.merge import assign_speakers
from serve_app.pipeline.types import Segment, TokenLogprob, Transcript, Turn, Word
from serve_app.protocol import render

WORDS = [Word(" Hello", 0.12, 0.5, 0.9), Word(" there.", 0.5, 0.9, 0.8), Word(" Hi!", 2.4, 2.7, 0.95)]
SEGMENT = Segment(seek=0, start=0.1, end=2.8, text=" Hello there. Hi!", tokens=[50364, 2425, 456],
                  temperature=0.0, avg_logprob=-0.21, compression_ratio=1.1, no_speech_prob=0.01, words=WORDS)
PLAIN = Transcript(task="transcribe", language="en", duration=3.0, segments=[SEGMENT])
DIARIZED = assign_speakers(PLAIN, [Turn(0.0, 1.5, "a"), Turn(2.0, 3.0, "b")])


def body(t: Transcript, response_format: str, words: bool = True) -> dict:
    rendered = render(t, response_format, words=words)
    assert rendered.media_type == "application/json"
    return json.loads(rendered.body)


def test_json_parses_as_both_sdks_types():
    b = body(PLAIN, "json")
    assert Transcription.model_validate(b).text == AudioTranscriptionJsonResponse.model_validate(b).text == PLAIN.text
    usage = Transcription.model_validate(b).usage  # OpenAI's usage for audio billed by length
    assert usage.type == "duration" and usage.seconds == 3.0
    assert "logprobs" not in b
    # include[]=logprobs: one per text token, as OpenAI's Logprob
    scored = Segment(**{**SEGMENT.__dict__, "logprobs": [TokenLogprob(" Hello", -0.1, [32, 72, 101, 108, 108, 111]),
                                                         TokenLogprob(" there", -0.5, [32, 116, 104, 101, 114, 101])]})
    b = body(Transcript(task="transcribe", language="en", duration=3.0, segments=[scored]), "json")
    parsed = Transcription.model_validate(b).logprobs
    assert [(lp.token, lp.logprob, lp.bytes) for lp in parsed] == [(" Hello", -0.1, [32, 72, 101, 108, 108, 111]),
                                                                  (" there", -0.5, [32, 116, 104, 101, 114, 101])]


@pytest.mark.parametrize("t", [PLAIN, DIARIZED], ids=["plain", "diarized"])
def test_verbose_json_parses_as_both_sdks_types_with_the_same_values(t):
    b = body(t, "verbose_json")
    ours = json.loads(json.dumps(b))
    openai = TranscriptionVerbose.model_validate(b)
    together = AudioTranscriptionVerboseJsonResponse.model_validate(b)
    assert openai.duration == together.duration == 3.0 and openai.language == together.language == "english"
    for sdk_segment, our_segment in zip(openai.segments, ours["segments"]):
        assert sdk_segment.model_dump(exclude_none=True).items() <= our_segment.items()
    for sdk_word, our_word in zip(together.words, ours["words"]):
        assert {k: v for k, v in sdk_word.model_dump().items() if v is not None}.items() <= our_word.items()
    assert [w.word for w in openai.words] == ["Hello", "there.", "Hi!"]
    assert [w["probability"] for w in ours["words"]] == [0.9, 0.8, 0.95]  # an extra field both SDKs keep
    assert [w.probability for w in openai.words] == [0.9, 0.8, 0.95]
    assert openai.usage.type == "duration" and openai.usage.seconds == 3.0
    if t is DIARIZED:
        turns = together.speaker_segments
        assert [(s.speaker_id, s.text, [w.word for w in s.words]) for s in turns] == \
            [("SPEAKER_00", "Hello there.", ["Hello", "there."]), ("SPEAKER_01", "Hi!", ["Hi!"])]
        assert {w.speaker_id for w in together.words} == {"SPEAKER_00", "SPEAKER_01"}
    else:
        assert "speaker_segments" not in ours and all("speaker_id" not in w for w in ours["words"])


def test_diarized_json_parses_as_openais_type():
    parsed = TranscriptionDiarized.model_validate(body(DIARIZED, "diarized_json"))
    assert parsed.task == "transcribe" and parsed.duration == 3.0
    assert [(s.speaker, s.text, s.type) for s in parsed.segments] == \
        [("SPEAKER_00", "Hello there.", "transcript.text.segment"), ("SPEAKER_01", "Hi!", "transcript.text.segment")]


def test_the_openapi_schema_declares_the_models_and_the_envelope_on_every_route():
    from serve_app.deployments.ingress import app

    schema = app.openapi()
    names = set(schema["components"]["schemas"])
    assert {"TranscriptionJson", "TranscriptionVerbose", "TranscriptionDiarized", "ErrorResponse"} <= names
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            errors = [code for code in operation["responses"] if code.startswith(("4", "5"))]
            assert errors, f"{method.upper()} {path} declares no error"
            for code in errors:
                ref = operation["responses"][code]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorResponse"), (path, code)
    ok = schema["paths"]["/v1/audio/transcriptions"]["post"]["responses"]["200"]["content"]
    assert {"application/json", "text/plain"} <= set(ok)


def test_stream_events_parse_as_openais_event_types():
    """What stream=true sends, read the way the SDK reads each event (construct_type on its union type),
    and strictly where the SDK's type allows: the delta and segment events."""
    from openai._models import construct_type
    from openai.types.audio import TranscriptionStreamEvent, TranscriptionTextDeltaEvent, TranscriptionTextSegmentEvent

    from serve_app.protocol import DeltaText, diarized_json, done_event, sse, verbose_json

    def wire(event) -> dict:
        text = sse(event)
        assert text.startswith("data: ") and text.endswith("\n\n") and text.count("\n") == 2
        return json.loads(text[len("data: "):])

    deltas = DeltaText()
    delta = wire(deltas.delta([SEGMENT]))
    assert TranscriptionTextDeltaEvent.model_validate(delta).delta == "Hello there. Hi!"  # no leading space
    assert deltas.delta([]) is None
    assert wire(deltas.delta([SEGMENT]))["delta"] == " Hello there. Hi!"  # later ones keep theirs
    for segment in diarized_json(DIARIZED).segments:
        parsed = TranscriptionTextSegmentEvent.model_validate(wire(segment))
        assert parsed.speaker in ("SPEAKER_00", "SPEAKER_01") and parsed.id.startswith("seg_")
    done = construct_type(type_=TranscriptionStreamEvent, value=wire(done_event(PLAIN)))
    assert done.type == "transcript.text.done" and done.text == PLAIN.text
    assert wire(done_event(PLAIN))["usage"] == {"type": "duration", "seconds": 3.0}
    assert "segments" not in wire(done_event(PLAIN))  # json: OpenAI's event exactly
    # verbose_json: the done event also carries the verbose body (segments, words, speaker turns)
    verbose = verbose_json(DIARIZED, words=True)
    event = wire(done_event(DIARIZED, verbose))
    assert {k: v for k, v in event.items() if k != "type"} == wire(verbose)  # usage included
    done = construct_type(type_=TranscriptionStreamEvent, value=event)
    assert done.type == "transcript.text.done" and done.text == DIARIZED.text
