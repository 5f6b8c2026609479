"""The peers: other faster-whisper servers, each in its own venv, on 127.0.0.1, serving our model directory.

    with start_peer("whisper-live", model_dir, cpu_threads=2, batch_size=8, log_dir=tmp) as peer:
        peer.post("a.wav", wav_bytes, {})

Each venv lives in ~/.cache/serve_app/peers/<name> and is created on first use (`pip install` of the pinned
version). It is made with --system-site-packages so that what this machine already has (torch, numpy) is
reused instead of downloaded again; the peer's own pins (whisper-live pins faster-whisper==1.2.0) are
installed into the venv and take precedence.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import httpx
import yaml

from harness.runner import free_port

PEERS_DIR = Path.home() / ".cache" / "serve_app" / "peers"
LAUNCHERS = Path(__file__).resolve().parent / "launchers"
START_TIMEOUT_S = 300


@dataclass
class Peer:
    name: str
    requirement: str  # what `pip install` gets: the tested version, pinned
    apt_hint: str  # what the install needs from Debian, for the error message
    # (venv python, model dir, port, cpu_threads, batch_size, work dir) -> argv
    command: Callable[[Path, Path, int, int, int, Path], list[str]]
    model_field: str  # the form field that names the model
    model_value: Callable[[Path], str]
    notes: str  # how its decoding differs from ours (it cannot be configured away)


def _whisper_live(python: Path, model: Path, port: int, threads: int, batch: int, work: Path) -> list[str]:
    return [str(python), str(LAUNCHERS / "whisper_live_rest.py"), "--model", str(model), "--port", str(port),
            "--cpu-threads", str(threads)]


def _faster_whisper_server(python: Path, model: Path, port: int, threads: int, batch: int, work: Path) -> list[str]:
    # Config mode, so the model gets the same device, compute type and threads as ours (single-model mode
    # would load it with faster-whisper's defaults), and the same batch size (its BatchedInferencePipeline).
    config = {
        "models": [{
            "name": "whisper-base",
            "path": str(model),
            "batch_size": batch,
            "model_options": {"device": "cpu", "compute_type": "int8", "cpu_threads": threads},
            "transcribe_options": {"beam_size": 5},
        }]
    }
    path = work / "faster-whisper-server.yaml"
    path.write_text(yaml.safe_dump(config))
    return [str(python), "-m", "faster_whisper_server", "--config", str(path), "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning"]


# By name; each peer's name is also its venv's folder.
PEERS = {peer.name: peer for peer in (
    Peer(
        name="whisper-live",
        requirement="whisper-live==0.10.0",
        apt_hint="portaudio19-dev (PyAudio builds against it)",
        command=_whisper_live,
        model_field="model",
        model_value=str,
        notes="one request at a time (the REST handler calls the model on the event loop); "
        "no VAD and no temperature fallback (hard-coded), the file decoded sequentially with beam 5",
    ),
    Peer(
        name="faster-whisper-server",
        requirement="faster-whisper-server==0.0.3",
        apt_hint="nothing",
        command=_faster_whisper_server,
        model_field="model_name",
        model_value=lambda _: "whisper-base",
        notes="one request at a time (the handler calls the model on the event loop); each file's own "
        "windows batched (BatchedInferencePipeline, VAD, beam 5, temperature fallback, no timestamp tokens: "
        "the pipeline's default)",
    ),
)}


def whisper_live_realtime(ws_port: int, batch: bool) -> Peer:
    """whisper-live's own realtime WebSocket server (its venv, another launcher) on `ws_port`; the `port` the
    harness checks is its /health."""
    def command(python: Path, model: Path, port: int, threads: int, batch_size: int, work: Path) -> list[str]:
        return [str(python), str(LAUNCHERS / "whisper_live_ws.py"), "--model", str(model), "--port", str(ws_port),
                "--health-port", str(port)] + (["--batch"] if batch else [])

    base = PEERS["whisper-live"]
    return Peer(name=base.name, requirement=base.requirement, apt_hint=base.apt_hint, command=command,
                model_field=base.model_field, model_value=base.model_value,
                notes="its realtime protocol: float32/int16 frames, its own Silero VAD per client, segments "
                      "re-sent until `completed`" + ("; cross-client batching on" if batch else ""))


def ensure_venv(peer: Peer) -> Path:
    """The peer's venv python, installing the peer first if needed."""
    venv = PEERS_DIR / peer.name
    python = venv / "bin" / "python"
    marker = venv / f".installed-{peer.requirement}"
    if marker.exists():
        return python
    PEERS_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    result = subprocess.run([str(python), "-m", "pip", "install", "-q", peer.requirement],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pip install {peer.requirement} failed (needs {peer.apt_hint}):\n{result.stderr[-3000:]}")
    marker.touch()
    return python


@dataclass
class PeerServer:
    peer: Peer
    url: str
    model: Path
    pid: int

    def post(self, filename: str, payload: bytes, fields: dict, timeout: float = 900) -> httpx.Response:
        data = {self.peer.model_field: self.peer.model_value(self.model), **fields}
        return httpx.post(f"{self.url}/v1/audio/transcriptions", data=data, files={"file": (filename, payload)},
                          timeout=timeout)


def listening_addresses(pid: int) -> set[str]:
    """The local addresses the process's TCP sockets listen on (from /proc), to check loopback only."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A" and parts[9] in inodes:  # 0A: LISTEN
                found.add(parts[1].rsplit(":", 1)[0])
    return found


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1 and ::1 as /proc writes them


@contextlib.contextmanager
def start_peer(name: str | Peer, model: Path, cpu_threads: int, batch_size: int, log_dir: Path) -> Iterator[PeerServer]:
    """`name`: one of PEERS, or a Peer (another launcher of one of their venvs)."""
    peer = PEERS[name] if isinstance(name, str) else name
    name = peer.name
    python = ensure_venv(peer)
    port = free_port()
    log = log_dir / f"{name}.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(cpu_threads)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(peer.command(python, model, port, cpu_threads, batch_size, log_dir), env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = PeerServer(peer=peer, url=f"http://127.0.0.1:{port}", model=model, pid=proc.pid)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.url}/health", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start in {START_TIMEOUT_S}s:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        exposed = listening_addresses(proc.pid) - LOOPBACK
        if exposed:
            raise RuntimeError(f"{name} listens beyond loopback: {sorted(exposed)}")
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
