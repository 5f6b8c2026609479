"""Start the real service (`serve run` on a copy of a Serve config) for tests and benchmarks.

    with running_app(tmp_dir, change_config) as server: ...

A free port, API keys in the environment, ready once a real request has gone through every deployment
(both ASR models' replicas and, when configured, the Diarizer), stopped (and its Ray cluster) on exit.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import httpx
import numpy as np
import soundfile as sf
import yaml

from serve_app import proxy
from serve_app.config import LimitsConfig
from serve_app.eval.samples import sample_dir

ROOT_DIR = Path(__file__).resolve().parents[1]
API_KEYS = ["sk-test-key-one", "sk-test-key-two"]
STARTUP_TIMEOUT_S = 900


@dataclass
class Server:
    base_url: str  # ends with /v1, as both SDKs want it
    root_url: str
    key: str
    log: Path
    config_path: Path
    cold_start_s: float = 0.0  # from `serve run` to the first 200 answer

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

    def redeploy(self, deployment: str, user_config: dict, path: Path) -> None:
        """`serve deploy` this server's config, written to `path`, with `user_config` updated for one
        deployment: its replicas reconfigure in place, no restart. Returns once the controller has the new
        config; the replicas apply it a moment later."""
        config = yaml.safe_load(self.config_path.read_text())
        for d in config["applications"][0]["deployments"]:
            if d["name"] == deployment:
                d["user_config"] = {**d.get("user_config", {}), **user_config}
        path.write_text(yaml.safe_dump(config))
        subprocess.run(["serve", "deploy", str(path)], check=True, capture_output=True, timeout=120, env=cli_env())

    def app_status(self) -> dict:
        """This server's application as `serve status` reports it ({"status": "RUNNING", "deployments":
        {name: {"status": "HEALTHY", ...}}, ...}); {} when the CLI gives no answer."""
        name = yaml.safe_load(self.config_path.read_text())["applications"][0]["name"]
        try:
            out = subprocess.run(["serve", "status"], capture_output=True, text=True, timeout=60, env=cli_env()).stdout
            return ((yaml.safe_load(out) or {}).get("applications") or {}).get(name) or {}
        except (subprocess.TimeoutExpired, yaml.YAMLError, AttributeError):
            return {}


def cli_env() -> dict[str, str]:
    # `serve run` turned on Ray's token auth for its local cluster; the CLI must say so to use the token.
    return {**os.environ, "RAY_AUTH_MODE": "token"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(
    tmp: Path,
    change_config: Optional[Callable[[dict], None]] = None,
    config_file: Path = ROOT_DIR / "configs" / "dev.yaml",
    proxy_middleware: bool = True,
) -> Iterator[Server]:
    """`serve run` on a copy of `config_file` (changed by `change_config(config)`), on a free port,
    with API_KEYS; ready once a real request has gone through every deployment. Stopped on exit.
    `proxy_middleware`: Ray's proxy strips its control headers (serve_app/proxy.py), as in the image."""
    config = yaml.safe_load(config_file.read_text())
    port = free_port()
    config["http_options"]["port"] = port
    if change_config is not None:
        change_config(config)
    config_path = tmp / "test.yaml"
    config_path.write_text(yaml.safe_dump(config))
    log = tmp / "serve.log"
    env = {**os.environ, "SERVE_APP_API_KEYS": ",".join(API_KEYS)}
    env.pop("RAY_ADDRESS", None)
    for name in (proxy.ENV_VAR, proxy.ENV_MAX_BODY, proxy.ENV_IN_FLIGHT):
        env.pop(name, None)
    if proxy_middleware:
        env.update(proxy.environment(LimitsConfig.of_serve_config(config)))
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            ["serve", "run", str(config_path)],
            cwd=ROOT_DIR,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = time.monotonic()
    root = f"http://127.0.0.1:{port}"
    srv = Server(base_url=f"{root}/v1", root_url=root, key=API_KEYS[0], log=log, config_path=config_path)
    try:
        srv.cold_start_s = _wait_ready(proc, srv) - started
        yield srv
    finally:
        try:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=60)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        subprocess.run(["ray", "stop", "--force"], capture_output=True, timeout=120)


def _wait_ready(proc: subprocess.Popen, srv: Server) -> float:
    """Ready = a real transcription through every deployment answers 200 (replicas load models first).
    Returns when the first 200 came (time.monotonic())."""
    probe = _probe()
    config = yaml.safe_load(srv.config_path.read_text())["applications"][0]["args"]
    requests = [{"model": m["name"]} for m in config["models"]]
    if config.get("diarization"):
        requests[0]["diarize"] = "true"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    first_200 = None
    errors_while_running = 0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve run exited with {proc.returncode}:\n{srv.log.read_text()[-5000:]}")
        try:
            # Through every deployment: every ASR model, and the Diarizer when there is one.
            for fields in requests:
                r = srv.post(data=fields, files={"file": ("probe.wav", probe)}, timeout=60)
                if r.status_code >= 400 and srv.app_status().get("status") == "RUNNING":
                    # Every replica is up, so this is a bug (a 5xx) or a config the probe cannot pass (a 4xx:
                    # a key, a model), not a replica still loading or a route not yet served (the proxy's
                    # 404): say so now rather than after STARTUP_TIMEOUT_S (a GPU run once spent 6 minutes
                    # of its 15 waiting here).
                    errors_while_running += 1
                    if errors_while_running >= 3:
                        raise RuntimeError(f"the service is running but {fields} gets {r.status_code}: "
                                           f"{r.text[:2000]}\n{srv.log.read_text()[-5000:]}")
                r.raise_for_status()
                first_200 = first_200 or time.monotonic()
            return first_200
        except httpx.HTTPError:
            time.sleep(3)
    raise RuntimeError(f"the service did not become ready in {STARTUP_TIMEOUT_S}s:\n{srv.log.read_text()[-5000:]}")


def wav_bytes(samples, rate: int = 16_000) -> bytes:
    """`samples` (int16, or float in [-1, 1], clipped) as a 16-bit PCM WAV file with a 44-byte header."""
    if samples.dtype != "int16":
        samples = (np.clip(samples, -1, 1) * 32767).astype("int16")
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _probe() -> bytes:
    """2 s of the pyannote sample (speech starts at 6.4 s) as a WAV."""
    samples, rate = sf.read(sample_dir() / "sample.wav", dtype="int16")
    return wav_bytes(samples[int(6.4 * rate) : int(8.4 * rate)], rate)
