"""Bearer-key checks, kept free of the HTTP stack so that every server under Ray Serve gives one answer."""

from __future__ import annotations

import hmac

# RFC 9110 5.5: optional whitespace (SP / HTAB) around a field value is not part of the value.
_OWS = " \t"


def bearer_token(header: str) -> str | None:
    """The b64token of an `Authorization: Bearer <token>` field value, or None.

    RFC 6750 2.1: `credentials = "Bearer" 1*SP b64token`, scheme case-insensitive. Whitespace around the
    value is trimmed here as well as by the HTTP server: uvicorn's h11 parser always trimmed it and its
    httptools parser only since 0.55, so without this the same request got 200 or 401 by install.
    Anything after the token (a second word, a tab) is not a token: None.
    """
    scheme, _, token = header.strip(_OWS).partition(" ")
    token = token.lstrip(" ")
    if scheme.lower() != "bearer" or not token or any(c in token for c in " \t"):
        return None
    return token


def key_matches(token: str | None, keys: list[bytes]) -> bool:
    """Constant time, and every key is compared so timing does not tell which one nearly matched."""
    if token is None:
        return False
    given = token.encode()
    return any([hmac.compare_digest(given, key) for key in keys])


# Browsers cannot set headers on a WebSocket: OpenAI's convention carries the key in a subprotocol.
KEY_SUBPROTOCOL = "openai-insecure-api-key."


def realtime_key(authorization: str, subprotocols: list[str]) -> str | None:
    """A realtime session's key: the Authorization header's, else an `openai-insecure-api-key.<key>`
    subprotocol's (the browser's way)."""
    token = bearer_token(authorization) if authorization else None
    if token is not None:
        return token
    for protocol in subprotocols:
        if protocol.startswith(KEY_SUBPROTOCOL) and len(protocol) > len(KEY_SUBPROTOCOL):
            return protocol[len(KEY_SUBPROTOCOL):]
    return None
