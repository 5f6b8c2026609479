"""The app under tight limits, for overload, time-limit and replica-failure tests.

Small queues in front of whisper-tiny.en, so that a burst overflows them, and a 30 s request time limit
(45 s for the hour of speech the time-limit tests send).
One replica of each other deployment, so that killing it leaves none until Serve replaces it. Ray's proxy
runs without serve_app/proxy.py. The tiny
ASR deployment autoscales 1 -> 2 with short delays, so a test can watch it scale up and back down.
"""

from __future__ import annotations

import pytest

from tests.stress.settings import REQUEST_TIMEOUT_S, REQUEST_TIMEOUT_S_PER_AUDIO_S, TINY_AUTOSCALING, TINY_LIMITS
from tests.support import running_app



def _stress_config(config: dict) -> None:
    app = config["applications"][0]
    app["args"]["request_timeout_s"] = REQUEST_TIMEOUT_S
    app["args"]["request_timeout_s_per_audio_s"] = REQUEST_TIMEOUT_S_PER_AUDIO_S
    for d in app["deployments"]:
        d["autoscaling_config"].update(min_replicas=1, max_replicas=1)
        if d["name"] == "WhisperASR-whisper-tiny-en":
            d.update(TINY_LIMITS)
            d["user_config"]["max_batch_size"] = 2
            d["autoscaling_config"].update(TINY_AUTOSCALING)


@pytest.fixture(scope="package")
def stressed(tmp_path_factory):
    # Without serve_app/proxy.py: Ray's proxy honours its control headers here, so the tests show that the
    # Ingress does not depend on their being stripped (its own time limit, its own watch for clients leaving).
    with running_app(tmp_path_factory.mktemp("stress"), _stress_config, proxy_middleware=False) as srv:
        yield srv
