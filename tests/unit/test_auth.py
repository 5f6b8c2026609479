"""The Bearer parser alone: the API test sends the same cases through the real HTTP stack."""

import pytest

from serve_app.auth import bearer_token, key_matches, realtime_key

KEYS = [b"k-123", b"other"]


@pytest.mark.parametrize(
    "header",
    ["Bearer k-123", "bearer k-123", "BEARER k-123", "Bearer k-123 ", "Bearer k-123\t", " Bearer k-123",
     "Bearer   k-123", "\tBearer k-123 \t"],
)
def test_the_key_is_found(header):
    assert bearer_token(header) == "k-123"
    assert key_matches(bearer_token(header), KEYS)


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ", "Bearer \t", "Basic k-123", "Bearer k-123 x", "Bearer k-123\tx", "Bearerk-123",
     "Bearer\tk-123", "k-123"],
)
def test_malformed_headers_carry_no_token(header):
    assert bearer_token(header) is None
    assert not key_matches(bearer_token(header), KEYS)


@pytest.mark.parametrize("token", ["k-1234", "k-12", "K-123", "k-123x", "xk-123"])
def test_near_misses_do_not_match(token):
    assert not key_matches(token, KEYS)


def test_a_realtime_key_comes_from_the_header_else_the_browser_subprotocol():
    assert realtime_key("Bearer sk-1", ["realtime", "openai-insecure-api-key.sk-2"]) == "sk-1"
    assert realtime_key("", ["realtime", "openai-insecure-api-key.sk-2"]) == "sk-2"
    assert realtime_key("", ["realtime", "openai-insecure-api-key."]) is None
    assert realtime_key("", ["realtime"]) is None
    assert realtime_key("Basic abc", []) is None
