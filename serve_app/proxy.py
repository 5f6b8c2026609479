"""Middleware for Ray Serve's HTTP proxy, loaded by Ray from the environment:

    RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=serve_app.proxy:middlewares

Ray's proxy reads two control headers from every request: `x-request-timeout-seconds` (0 turns its request
timeout off) and `x-request-disconnect-disabled: ?1` (it stops cancelling the request when the client
leaves). They exist for a trusted load balancer in front; from a client they would let anyone keep work
running for nobody. This drops them before the proxy reads them. (The Ingress does not rely on it: it keeps
its own time limit and watches for the client leaving itself.)
"""

from __future__ import annotations

from starlette.middleware import Middleware

# Ray's names (ray.serve._private.constants), lower-case as ASGI delivers them.
RAY_CONTROL_HEADERS = frozenset({b"x-request-timeout-seconds", b"x-request-disconnect-disabled"})
ENV_VAR = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
IMPORT_PATH = "serve_app.proxy:middlewares"


class StripRayControlHeaders:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket") and any(k in RAY_CONTROL_HEADERS for k, _ in scope["headers"]):
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k not in RAY_CONTROL_HEADERS]}
        await self.app(scope, receive, send)


def middlewares() -> list[Middleware]:
    return [Middleware(StripRayControlHeaders)]
