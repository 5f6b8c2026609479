"""Start the real Serve app (`serve run` on a copy of configs/dev.yaml) once for the API tests.

The copy changes only what a test needs: a free port, API keys in the environment, one private
address (127.0.0.2) allowed for URL inputs, so that a test server there can be fetched while one on
127.0.0.1 (not allowed, as under the default config) is refused, and download/duration caps small
enough to cross in a test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
API_KEYS = ["sk-test-key-one", "sk-test-key-two"]
ALLOWED_HOST = "127.0.0.2"
STARTUP_TIMEOUT_S = 900
FETCH_CAPS = {"max_redirects": 3, "connect_timeout_s": 2, "total_timeout_s": 5}
LIMITS = {"max_download_bytes": 4_000_000, "max_duration_s": 600}


@dataclass
class Server:
    base_url: str  # ends with /v1, as both SDKs want it
    root_url: str
    key: str
    log: Path
    config_path: Path

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def post(self, data=None, files=None, headers=None, path="/audio/transcriptions", timeout=300) -> httpx.Response:
        """A raw multipart POST; `headers=None` sends this server's key, `{}` sends none."""
        return httpx.post(
            f"{self.base_url}{path}",
            headers=self.headers() if headers is None else headers,
            data=data or {},
            files=files,
            timeout=timeout,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    tmp = tmp_path_factory.mktemp("serve")
    config = yaml.safe_load((ROOT / "configs" / "dev.yaml").read_text())
    port = _free_port()
    config["http_options"]["port"] = port
    args = config["applications"][0]["args"]
    args["fetch"]["allowed_private_networks"] = [f"{ALLOWED_HOST}/32"]
    # Caps small enough for tests to cross them quickly.
    args["fetch"].update(FETCH_CAPS)
    args["limits"].update(LIMITS)
    config_path = tmp / "test.yaml"
    config_path.write_text(yaml.safe_dump(config))
    log = tmp / "serve.log"
    env = {**os.environ, "SERVE_APP_API_KEYS": ",".join(API_KEYS)}
    env.pop("RAY_ADDRESS", None)
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            ["serve", "run", str(config_path)],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    root = f"http://127.0.0.1:{port}"
    srv = Server(base_url=f"{root}/v1", root_url=root, key=API_KEYS[0], log=log, config_path=config_path)
    try:
        _wait_ready(proc, srv)
        yield srv
    finally:
        try:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=60)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        subprocess.run(["ray", "stop", "--force"], capture_output=True, timeout=120)


def _wait_ready(proc: subprocess.Popen, srv: Server) -> None:
    """Ready = a real transcription through every deployment answers 200 (replicas load models first)."""
    from tests.support import sample_samples, wav_bytes

    probe = wav_bytes(sample_samples()[: 16000 * 2])
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve run exited with {proc.returncode}:\n{srv.log.read_text()[-5000:]}")
        try:
            # Through every deployment: both ASR models, and the Diarizer.
            for fields in ({"model": "whisper-base", "diarize": "true"}, {"model": "whisper-tiny.en"}):
                r = srv.post(data=fields, files={"file": ("probe.wav", probe)}, timeout=60)
                r.raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(3)
    raise RuntimeError(f"the service did not become ready in {STARTUP_TIMEOUT_S}s:\n{srv.log.read_text()[-5000:]}")


@pytest.fixture(scope="session")
def clip() -> bytes:
    """3.7 s of sample.wav: the first "hello"s."""
    from tests.support import sample_samples, wav_bytes

    return wav_bytes(sample_samples()[int(6.3 * 16000) : int(10 * 16000)])
