"""What a model does with a request's task and language (pipeline/policy.py), without a model."""

import pytest

from serve_app.errors import InvalidRequest
from serve_app.pipeline.policy import ModelPolicy
from serve_app.pipeline.types import DecodeOptions

EN = ModelPolicy("whisper-tiny.en", multilingual=False)
MULTI = ModelPolicy("whisper-base", multilingual=True)


@pytest.mark.parametrize("options, param", [(DecodeOptions(task="translate"), "model"),
                                            (DecodeOptions(language="de"), "language")])
def test_english_only_models_refuse_what_they_cannot_do(options, param):
    with pytest.raises(InvalidRequest) as info:
        EN.check(options)
    assert info.value.param == param and "whisper-tiny.en" in info.value.message
    MULTI.check(options)  # a multilingual model takes both


def test_english_only_models_take_english_and_detection_as_english_transcription():
    for options in (DecodeOptions(language="en"), DecodeOptions(language=None)):
        EN.check(options)
        assert EN.window_language(options) == "en" and EN.window_task(options) == "transcribe"
        assert EN.request_language(options, ["de", "de"]) == "en"


def test_a_multilingual_model_decodes_as_asked_or_detects():
    assert MULTI.window_language(DecodeOptions(language="de")) == "de"
    assert MULTI.window_language(DecodeOptions(language=None)) is None
    assert MULTI.window_task(DecodeOptions(task="translate")) == "translate"


def test_the_request_language_is_the_one_asked_for_else_the_windows_majority():
    assert MULTI.request_language(DecodeOptions(language="fr"), ["de", "de"]) == "fr"
    detect = DecodeOptions(language=None)
    assert MULTI.request_language(detect, ["de", "en", "de"]) == "de"
    assert MULTI.request_language(detect, ["en", "de"]) == "en"  # a tie: the first window's
    assert MULTI.request_language(detect, []) == "en"  # no speech
