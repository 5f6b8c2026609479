"""The proxy middleware alone (the API tests send the headers through Ray's real proxy)."""

import asyncio

from serve_app.proxy import StripRayControlHeaders, middlewares


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

    assert [m.cls for m in validate_http_proxy_callback_return(middlewares())] == [StripRayControlHeaders]
