"""Start the real Serve app (`serve run` on a copy of configs/dev.yaml) once for the API tests.

The copy changes only what a test needs: a free port, API keys in the environment, one private
address (127.0.0.2) allowed for URL inputs, so that a test server there can be fetched while one on
127.0.0.1 (not allowed, as under the default config) is refused, and download/duration caps small
enough to cross in a test, and realtime session limits a test can reach.
"""

from __future__ import annotations

import pytest

from tests.api.settings import ALLOWED_HOST, FETCH_CAPS, LIMITS, REALTIME
from tests.support import running_app


def _test_config(config: dict) -> None:
    args = config["applications"][0]["args"]
    args["fetch"]["allowed_private_networks"] = [f"{ALLOWED_HOST}/32"]
    args["fetch"].update(FETCH_CAPS)
    args["limits"].update(LIMITS)
    args["realtime"] = {**args.get("realtime", {}), **REALTIME}


# Package scope: the app stops when these tests end, before another package starts its own.
@pytest.fixture(scope="package")
def server(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("serve"), _test_config) as srv:
        yield srv
