"""Autoscaling that really happens on CPU: the tiny ASR deployment goes 1 -> 2 replicas under sustained
load and back to 1 when it stops, watched through Serve's status API (`serve status`)."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest
import yaml

from tests.stress.settings import TINY_AUTOSCALING
from tests.support import cli_env

pytestmark = pytest.mark.slow

DEPLOYMENT = "WhisperASR-whisper-tiny-en"


def running_replicas(deployment: str = DEPLOYMENT) -> int:
    out = subprocess.run(["serve", "status"], check=True, capture_output=True, text=True, env=cli_env(), timeout=60)
    status = yaml.safe_load(out.stdout)
    states = status["applications"]["speech"]["deployments"][deployment]["replica_states"]
    return states.get("RUNNING", 0)


def wait_for(count: int, timeout_s: float) -> float:
    start = time.monotonic()
    while running_replicas() != count:
        assert time.monotonic() - start < timeout_s, f"{DEPLOYMENT} did not reach {count} replicas"
        time.sleep(1)
    return time.monotonic() - start


def test_asr_scales_up_under_load_and_back_down(stressed, clip):
    wait_for(1, 120)  # an earlier burst may have scaled it up
    stop = threading.Event()
    answered: list[int] = []

    def client():
        while not stop.is_set():
            r = stressed.post(data={"model": "whisper-tiny.en"}, files={"file": ("a.wav", clip)}, timeout=120)
            answered.append(r.status_code)

    clients = [threading.Thread(target=client) for _ in range(6)]
    for t in clients:
        t.start()
    try:
        up = wait_for(TINY_AUTOSCALING["max_replicas"], 180)
    finally:
        stop.set()
        for t in clients:
            t.join(150)
    down = wait_for(TINY_AUTOSCALING["min_replicas"], 180)
    print(f"{DEPLOYMENT}: 1 -> 2 replicas {up:.1f} s into the load, back to 1 {down:.1f} s after it stopped; "
          f"{answered.count(200)} x 200, {answered.count(503)} x 503 meanwhile")
    assert set(answered) <= {200, 503} and answered.count(200) > 0
