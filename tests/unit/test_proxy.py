"""The proxy middleware alone (the API tests send the headers through Ray's real proxy)."""

import asyncio

import json

from serve_app.proxy import BodyLimits, StripRayControlHeaders, middlewares


def run(scope):
    seen = {}

    async def app(scope, receive, send):
        seen["headers"] = scope["headers"]

    asyncio.run(StripRayControlHeaders(app)(scope, None, None))
    return seen["headers"]


def test_ray_control_headers_are_dropped_and_the_rest_kept():
    headers = [(b"host", b"x"), (b"x-request-timeout-seconds", b"0"), (b"authorization", b"Bearer k"),
               (b"x-request-disconnect-disabled", b"?1"), (b"x-request-id", b"abc")]
    assert run({"type": "http", "headers": headers}) == [(b"host", b"x"), (b"authorization", b"Bearer k"),
                                                          (b"x-request-id", b"abc")]
    assert run({"type": "websocket", "headers": headers[:2]}) == [(b"host", b"x")]


def test_what_ray_loads_is_a_list_of_starlette_middlewares():
    from ray.serve._private.http_util import validate_http_proxy_callback_return

    assert [m.cls for m in validate_http_proxy_callback_return(middlewares())] == [StripRayControlHeaders, BodyLimits]


def through_limits(limits: BodyLimits, chunks: list[bytes], headers=()):
    """One request through `limits` into an app that reads the whole body and answers 200."""
    sent, read = [], []

    async def app(scope, receive, send):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            read.append(message["body"])
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    limits.app = app
    asyncio.run(limits({"type": "http", "headers": list(headers)}, receive, send))
    status = sent[0]["status"]
    body = sent[1]["body"]
    return status, (json.loads(body) if status != 200 else body), read


def test_a_body_within_the_cap_reaches_the_app():
    limits = BodyLimits(None, max_body_bytes=1000, in_flight_bytes=5000)
    assert through_limits(limits, [b"x" * 400, b"x" * 400])[:2] == (200, b"ok")
    assert limits.budget.held == 0


def test_a_body_past_the_cap_is_answered_413_by_the_proxy_and_the_app_sees_the_client_leave():
    limits = BodyLimits(None, max_body_bytes=1000, in_flight_bytes=5000)
    status, body, read = through_limits(limits, [b"x" * 400] * 10)
    assert status == 413 and body["error"]["param"] == "file" and "1000 bytes" in body["error"]["message"]
    assert sum(map(len, read)) == 800  # the third chunk never reached the app
    assert limits.budget.held == 0


def test_a_declared_length_past_the_cap_is_refused_before_any_body_is_read():
    limits = BodyLimits(None, max_body_bytes=1000, in_flight_bytes=5000)
    status, _, read = through_limits(limits, [b"x" * 10], headers=[(b"content-length", b"5000")])
    assert status == 413 and read == []


def test_bodies_in_flight_share_the_proxy_ceiling():
    limits = BodyLimits(None, max_body_bytes=1000, in_flight_bytes=1500)
    limits.budget.reserve(1000)  # another request's body, still in flight
    status, body, _ = through_limits(limits, [b"x" * 400] * 2)
    assert status == 503 and body["error"]["code"] == "overloaded"
    assert limits.budget.held == 1000
