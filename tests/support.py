"""Test data helpers: the real recordings that pyannote.audio's wheel ships, encoders, WER."""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np

from harness.runner import API_KEYS, Server, cli_env, running_app, wav_bytes  # noqa: F401 - re-exported
from serve_app.eval.samples import sample_dir
from serve_app.pipeline.audio import decode_audio

ROOT_DIR = Path(__file__).resolve().parents[1]
ALLOWED_HOST = "127.0.0.2"
SAMPLE_DIR = sample_dir()
SAMPLE_WAV = SAMPLE_DIR / "sample.wav"
SAMPLE_STM = SAMPLE_DIR / "sample.stm"

# (file extension, container format, codec, sample rate, channel layout)
CONTAINERS = {
    "wav": ("wav", "pcm_s16le", 16000, "mono"),
    "wav-44k-stereo": ("wav", "pcm_s16le", 44100, "stereo"),
    "mp3": ("mp3", "libmp3lame", 44100, "stereo"),
    "m4a": ("ipod", "aac", 44100, "stereo"),
    "webm": ("webm", "libopus", 48000, "stereo"),
    "flac": ("flac", "flac", 22050, "mono"),
    "ogg": ("ogg", "libopus", 48000, "mono"),
    "opus": ("opus", "libopus", 48000, "mono"),
    "aac": ("adts", "aac", 32000, "mono"),
}


def sample_samples() -> np.ndarray:
    """sample.wav as 16 kHz mono float32, (T,)."""
    return decode_audio(SAMPLE_WAV.read_bytes(), max_duration_s=60).samples


def encode(samples: np.ndarray, container: str, codec: str, rate: int, layout: str) -> bytes:
    """Encode 16 kHz mono float32 `samples` with PyAV into `container`/`codec` at `rate`/`layout`."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=rate)
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        for start in range(0, len(pcm), 1600):
            frame = av.AudioFrame.from_ndarray(pcm[None, start : start + 1600], format="s16", layout="mono")
            frame.sample_rate = 16000
            for f in resampler.resample(frame):
                out.mux(stream.encode(f))
        for f in resampler.resample(None):
            out.mux(stream.encode(f))
        out.mux(stream.encode(None))
    return buf.getvalue()


def espeak(text: str, voice: str) -> bytes:
    """Real synthesized speech in another language (espeak-ng, a Debian package .ci/run installs)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is required for the language tests: apt-get install espeak-ng")
    return subprocess.run([exe, "-v", voice, "--stdout", text], check=True, capture_output=True).stdout


def stm_text(path: Path = SAMPLE_STM) -> str:
    return " ".join(line.split(maxsplit=5)[5] for line in path.read_text().splitlines() if line.strip())


def normalize(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref, hyp = normalize(reference), normalize(hypothesis)
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / max(1, len(ref))


def stm_turns(path: Path = SAMPLE_STM) -> list[tuple[str, float, float]]:
    """(speaker, start, end) of every line of a reference transcript."""
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            _, _, speaker, start, end, _ = line.split(maxsplit=5)
            out.append((speaker, float(start), float(end)))
    return out


class _Handler(BaseHTTPRequestHandler):
    server: "LocalHTTPServer"

    def do_GET(self):  # noqa: N802 - http.server's naming
        owner = self.server.owner
        owner.seen.append(self.path)
        if owner.redirect_to is not None:
            self.send_response(302)
            self.send_header("Location", owner.redirect_to(self.path))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        if owner.drip_s is None:
            self.send_header("Content-Length", str(len(owner.payload)))
            self.end_headers()
            self.wfile.write(owner.payload)
            return
        self.end_headers()
        try:  # a stalling server: a byte now and then, for a bounded time
            for _ in range(int(60 / owner.drip_s)):
                self.wfile.write(b"\0")
                self.wfile.flush()
                time.sleep(owner.drip_s)
        except OSError:
            pass

    def log_message(self, *args):
        pass


class _ThreadingHTTPServerV6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class LocalHTTPServer:
    """A loopback HTTP server that records every request it gets. It serves `payload`, or redirects
    (`redirect_to(path) -> location`), or drips a byte every `drip_s` seconds."""

    def __init__(self, host: str, payload: bytes = b"", redirect_to=None, drip_s=None) -> None:
        self.payload, self.redirect_to, self.drip_s = payload, redirect_to, drip_s
        self.seen: list[str] = []
        server_class = _ThreadingHTTPServerV6 if ":" in host else ThreadingHTTPServer
        self.httpd = server_class((host, 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self) -> "LocalHTTPServer":
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class RawUpload:
    """One POST to /v1/audio/transcriptions whose body is sent by hand over a socket, as a hostile or slow
    client would: chunked (no Content-Length) unless `length` is given. The answer can be read while the
    body is still being sent (servers answer early when they refuse one)."""

    BOUNDARY = "----raw-upload"

    def __init__(self, server, length: int | None = None) -> None:
        host, port = server.root_url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.chunked = length is None
        framing = "Transfer-Encoding: chunked" if self.chunked else f"Content-Length: {length}"
        self.sock.sendall((f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {host}\r\n"
                           f"Authorization: Bearer {API_KEYS[0]}\r\n"
                           f"Content-Type: multipart/form-data; boundary={self.BOUNDARY}\r\n{framing}\r\n\r\n").encode())
        self.sent = 0

    @classmethod
    def preamble(cls, model: str) -> bytes:
        """The form up to the file's bytes: send it first, then the file."""
        return (f"--{cls.BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{model}\r\n"
                f"--{cls.BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
                "Content-Type: audio/wav\r\n\r\n").encode()

    @classmethod
    def epilogue(cls) -> bytes:
        """What closes the form after the file's bytes."""
        return f"\r\n--{cls.BOUNDARY}--\r\n".encode()

    def finish(self) -> None:
        """The last chunk of a chunked body."""
        if self.chunked:
            try:
                self.sock.sendall(b"0\r\n\r\n")
            except OSError:
                pass

    def send(self, data: bytes) -> bool:
        """False once the server has stopped taking the body (it answered and closed, or reset)."""
        try:
            self.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data)
        except OSError:
            return False
        self.sent += len(data)
        return True

    def answered(self) -> bool:
        self.sock.setblocking(False)
        try:
            return bool(self.sock.recv(1, socket.MSG_PEEK))
        except BlockingIOError:
            return False
        except OSError:
            return True
        finally:
            self.sock.setblocking(True)

    def response(self, timeout: float = 30) -> tuple[int, dict, dict]:
        self.sock.settimeout(timeout)
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            raw += chunk
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            body += chunk
        self.sock.close()
        return int(lines[0].split()[1]), headers, json.loads(body or b"{}")


def assert_envelope(r, status: int, param=None) -> None:
    """`r` is an error in the one envelope: {"error": {message, type, param, code}}."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and len(err["message"]) > 10
    if param is not None:
        assert err["param"] == param, err


# --- the real app: harness.runner starts it (the benchmarks use it too) ----------------------------


def kill_replicas(deployment: str, app: str = "speech") -> list[str]:
    """Kill every replica of `deployment` through Ray's API (ray.kill on the replica actors), from a
    separate driver process so that this test process never joins the cluster. Returns their names."""
    script = (
        "import json, ray\n"
        "ray.init(address='auto', logging_level='ERROR')\n"
        f"prefix = 'SERVE_REPLICA::{app}#{deployment}#'\n"
        "names = [a['name'] for a in ray.util.list_named_actors(all_namespaces=True) if a['name'].startswith(prefix)]\n"
        "for n in names:\n"
        "    ray.kill(ray.get_actor(n, namespace='serve'), no_restart=True)\n"
        "print(json.dumps(names))\n"
    )
    env = cli_env()  # the token auth `serve run` turned on
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True, env=env,
                         timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])
