import pytest

from serve_app.errors import InvalidRequest
from serve_app.protocol import TranscriptionRequest


def parse(task="transcribe", **fields):
    return TranscriptionRequest.from_form({k: v if isinstance(v, list) else [v] for k, v in fields.items()}, task)


def test_defaults_follow_the_api():
    req = parse()
    assert (req.model, req.language, req.response_format, req.temperature) == (None, "en", "json", 0.0)
    assert req.timestamp_granularities == ["segment"] and not req.diarize


@pytest.mark.parametrize(
    "fields",
    [
        {"timestamp_granularities[]": ["word", "segment"]},  # OpenAI
        {"timestamp_granularities": ["word", "segment"]},  # repeated field
        {"timestamp_granularities": '["word", "segment"]'},  # Together, JSON list
        {"timestamp_granularities": "word,segment"},
    ],
)
def test_granularity_spellings(fields):
    assert set(parse(**fields).timestamp_granularities) == {"word", "segment"}


@pytest.mark.parametrize("value, expected", [("true", True), ("TRUE", True), ("1", True), ("False", False), ("0", False)])
def test_diarize_and_stream_spellings(value, expected):
    assert parse(diarize=value).diarize is expected
    assert parse(stream=value).stream is expected


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"temperature": "1.01"}, "temperature"),
        ({"temperature": "nan"}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"response_format": "xml"}, "response_format"),
        ({"timestamp_granularities": "char"}, "timestamp_granularities"),
        ({"timestamp_granularities": "[oops"}, "timestamp_granularities"),
        ({"language": "klingon"}, "language"),
        ({"diarize": "maybe"}, "diarize"),
        ({"min_speakers": "0"}, "min_speakers"),
        ({"max_speakers": "two"}, "max_speakers"),
        ({"min_speakers": "4", "max_speakers": "2"}, "min_speakers"),
        ({"stream": "maybe"}, "stream"),
        ({"stream": "true", "response_format": "text"}, "stream"),
        ({"stream": "true", "response_format": "srt"}, "stream"),
        ({"stream": "true", "response_format": "vtt"}, "stream"),
    ],
)
def test_bad_values_name_their_param(fields, param):
    with pytest.raises(InvalidRequest) as info:
        parse(**fields)
    assert info.value.param == param and info.value.status == 400


def test_translation_has_no_diarization_params():
    with pytest.raises(InvalidRequest) as info:
        parse(task="translate", diarize="true")
    assert info.value.param == "diarize"


def test_decode_options_carry_the_request():
    opts = parse(language="auto", prompt="Zoë", temperature="0.4", response_format="verbose_json",
                 timestamp_granularities="word").decode_options()
    assert opts.language is None and opts.prompt == "Zoë" and opts.temperature == 0.4 and opts.word_timestamps
    assert not parse(response_format="json", timestamp_granularities="word").decode_options().word_timestamps


@pytest.mark.parametrize(
    "fields, timestamps",
    [
        ({}, False),
        ({"response_format": "text"}, False),
        ({"response_format": "json", "timestamp_granularities": "word"}, False),  # json shows no words
        ({"response_format": "verbose_json"}, True),
        ({"response_format": "srt"}, True),
        ({"response_format": "vtt"}, True),
        ({"response_format": "diarized_json"}, True),
        ({"response_format": "json", "diarize": "true"}, True),  # words are assigned to speakers by time
    ],
)
def test_segment_timestamps_only_where_the_response_needs_them(fields, timestamps):
    assert parse(**fields).decode_options().timestamps is timestamps


def test_language_names_cover_whisper():
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    from serve_app.pipeline.languages import LANGUAGES

    assert set(LANGUAGES) == set(_LANGUAGE_CODES)


def test_a_long_prompt_is_cut_once_to_its_tail():
    from serve_app.protocol import MAX_PROMPT_CHARS, TranscriptionRequest

    long = "start " + "word " * 50_000 + "the end"
    req = TranscriptionRequest.from_form({"prompt": [long]}, "transcribe")
    assert len(req.prompt) == MAX_PROMPT_CHARS and req.prompt.endswith("the end")
    assert req.decode_options().prompt == req.prompt


def test_include_logprobs_with_json_only():
    """OpenAI's include[]=logprobs: the json transcription (streamed or not) carries token log
    probabilities; any other format, diarization or an unknown value is 400 naming `include`."""
    assert parse(**{"include[]": "logprobs"}).decode_options().logprobs
    assert parse(**{"include[]": "logprobs", "stream": "true"}).decode_options().logprobs
    assert not parse().decode_options().logprobs
    for fields in ({"response_format": "verbose_json"}, {"response_format": "text"}, {"diarize": "true"},
                   {"response_format": "diarized_json"}):
        with pytest.raises(InvalidRequest) as err:
            parse(**{"include[]": "logprobs", **fields})
        assert err.value.param == "include"
    with pytest.raises(InvalidRequest) as err:
        parse(**{"include[]": "tokens"})
    assert err.value.param == "include"


# --- known speakers (OpenAI's known_speaker_names[] + known_speaker_references[]) -------------------------

REF = "data:audio/wav;base64,UklGRg=="


@pytest.mark.parametrize("fields, param", [
    ({"known_speaker_names[]": ["Ann"], "known_speaker_references[]": [REF]}, "known_speaker_names"),  # no diarize
    ({"diarize": "true", "known_speaker_names[]": ["Ann", "Bo"], "known_speaker_references[]": [REF]},
     "known_speaker_references"),
    ({"diarize": "true", "known_speaker_references[]": [REF]}, "known_speaker_references"),
    ({"diarize": "true", "known_speaker_names[]": list("abcde"), "known_speaker_references[]": [REF] * 5},
     "known_speaker_names"),
    ({"diarize": "true", "known_speaker_names[]": ["Ann", "Ann"], "known_speaker_references[]": [REF] * 2},
     "known_speaker_names"),
    ({"diarize": "true", "known_speaker_names[]": ["SPEAKER_01"], "known_speaker_references[]": [REF]},
     "known_speaker_names"),
    ({"diarize": "true", "known_speaker_names[]": ["x" * 65], "known_speaker_references[]": [REF]},
     "known_speaker_names"),
    ({"diarize": "true", "known_speaker_names[]": ["Ann"], "known_speaker_references[]": ["https://x/a.wav"]},
     "known_speaker_references"),
    ({"diarize": "true", "known_speaker_names[]": ["Ann"], "known_speaker_references[]": ["UklGRg=="]},
     "known_speaker_references"),
])
def test_bad_known_speakers_name_their_param(fields, param):
    with pytest.raises(InvalidRequest) as err:
        TranscriptionRequest.from_form({k: v if isinstance(v, list) else [v] for k, v in fields.items()}, "transcribe")
    assert err.value.param == param and err.value.status == 400


def test_known_speakers_come_as_names_and_clip_bytes():
    req = TranscriptionRequest.from_form({"response_format": ["diarized_json"], "known_speaker_names[]": [" Ann", "Bo"],
                                          "known_speaker_references[]": [REF, "data:audio/mpeg;base64,AAEC"]},
                                         "transcribe")
    assert req.known_speakers() == [("Ann", b"RIFF"), ("Bo", b"\x00\x01\x02")]
    bad = TranscriptionRequest.from_form({"diarize": ["true"], "known_speaker_names[]": ["Ann"],
                                          "known_speaker_references[]": ["data:audio/wav;base64,%%%"]}, "transcribe")
    with pytest.raises(InvalidRequest) as err:
        bad.known_speakers()
    assert err.value.param == "known_speaker_references"
