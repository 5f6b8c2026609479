"""The playground page (served by the Ingress at `/` and `/playground`): plain files in this package, read
once and served as they are. No build step and nothing from any other host, so it works behind a firewall."""

from __future__ import annotations

from importlib import resources

from serve_app.pipeline.languages import LANGUAGES

MEDIA_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "transcript.js": "text/javascript; charset=utf-8",
    "pcm-worklet.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

# Only this server's own files run; the API and the realtime WebSocket are on this origin; the player plays
# the chosen file (a blob: URL) or the URL the user typed.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' ws: wss:; media-src 'self' blob: http: https:; worker-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def load() -> dict[str, tuple[bytes, str]]:
    """name -> (body, media type); `languages.json` is the language picker's list (code -> name)."""
    import json

    root = resources.files(__package__)
    files = {name: (root.joinpath(name).read_bytes(), media) for name, media in MEDIA_TYPES.items()}
    files["languages.json"] = (json.dumps(LANGUAGES).encode(), "application/json")
    return files
