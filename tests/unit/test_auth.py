"""The Bearer parser alone: the API test sends the same cases through the real HTTP stack."""

import pytest

from serve_app.auth import bearer_token, key_matches

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
