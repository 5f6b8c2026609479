"""Start the real Serve app (`serve run` on a copy of configs/dev.yaml) once for the API tests.

The copy changes only what a test needs: a free port, API keys in the environment, one private
address (127.0.0.2) allowed for URL inputs, so that a test server there can be fetched while one on
127.0.0.1 (not allowed, as under the default config) is refused, and download/duration caps small
enough to cross in a test.
"""

from __future__ import annotations

import pytest

from tests.support import ALLOWED_HOST, API_KEYS, running_app

FETCH_CAPS = {"max_redirects": 3, "connect_timeout_s": 2, "total_timeout_s": 5}
LIMITS = {"max_download_bytes": 4_000_000, "max_duration_s": 600, "max_upload_bytes": 40_000_000,
          "max_uploads_in_flight_bytes": 100_000_000, "upload_timeout_s": 60, "upload_idle_timeout_s": 3,
          "upload_min_bytes_per_s": 50_000, "upload_grace_s": 3}

__all__ = ["API_KEYS", "ALLOWED_HOST", "FETCH_CAPS", "LIMITS"]


def _test_config(config: dict) -> None:
    args = config["applications"][0]["args"]
    args["fetch"]["allowed_private_networks"] = [f"{ALLOWED_HOST}/32"]
    # Caps small enough for tests to cross them quickly.
    args["fetch"].update(FETCH_CAPS)
    args["limits"].update(LIMITS)


# Package scope: the app stops when these tests end, before another package starts its own.
@pytest.fixture(scope="package")
def server(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("serve"), _test_config) as srv:
        yield srv
