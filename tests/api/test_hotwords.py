"""`hotwords` (faster-whisper's) through the running service: rare names in a synthesized clip (espeak-ng)
are spelled right with them and not without; the field is bounded."""

from __future__ import annotations

import io

import openai
import pytest

from serve_app.protocol import MAX_HOTWORDS_CHARS
from tests.support import assert_envelope, espeak

pytestmark = pytest.mark.slow

CLIPS = [
    ("Please send the quarterly report to Siobhan Kowalczyk before Friday.", "Siobhan Kowalczyk"),
    ("The invoice was approved by Thorvaldur Gudmundsson yesterday.", "Thorvaldur Gudmundsson"),
]


@pytest.mark.parametrize("text, name", CLIPS)
def test_a_rare_name_is_spelled_right_with_hotwords_only(server, text, name):
    client = openai.OpenAI(base_url=server.base_url, api_key=server.key)
    audio = espeak(text, "en-us")

    def transcribe(**extra) -> str:
        # neither SDK names the field: it travels as an extra form field
        return client.audio.transcriptions.create(file=("name.wav", io.BytesIO(audio)), model="whisper-base",
                                                  extra_body=extra).text

    without, with_hotwords = transcribe(), transcribe(hotwords=name)
    print(f"without: {without}\n   with: {with_hotwords}")
    assert name not in without
    assert name in with_hotwords


def test_hotwords_are_bounded(server):
    r = server.post(data={"hotwords": "x" * (MAX_HOTWORDS_CHARS + 1)},
                    files={"file": ("a.wav", espeak("Hello there.", "en-us"), "audio/wav")})
    assert_envelope(r, 400, "hotwords")
