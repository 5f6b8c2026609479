"""What the benchmarks measure, shared by the commands (run, profile_asr, profile_diarization,
memory_timeline, starvation, upload_memory): the test clips and load mix, the in-process floor and limit,
load levels against a served endpoint, CPU and memory of the service's processes, the long file."""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

import httpx
import numpy as np
import soundfile as sf

from benchmarks.peers import PEERS, start_peer
from harness.procs import processes, replica_memory, serve_replica
from harness.runner import wav_bytes as wav
from serve_app.config import ModelConfig
from serve_app.eval.samples import sample_dir
RESULTS = Path(__file__).resolve().parent / "results"
MODELS_DIR = Path.home() / ".cache" / "serve_app" / "models"
RATE = 16_000
MIX = ["5min"] + ["30s", "5s"] * 7 + ["30s"]
QUICK_MIX = ["30s", "5s", "30s", "5s"]
VARIANTS = {
    "plain": {},
    "words": {"response_format": "verbose_json", "timestamp_granularities[]": "word"},
    "diarize": {"response_format": "verbose_json", "diarize": "true"},
}
DECODED_MB_PER_HOUR = 3600 * RATE * 4 / 1e6  # float32 mono 16 kHz

Post = Callable[[str, bytes, dict], httpx.Response]


def clips() -> dict[str, np.ndarray]:
    samples, _ = sf.read(sample_dir() / "sample.wav", dtype="float32")  # (T,) 30 s, speech from 6.4 s
    return {"5s": samples[int(6.4 * RATE) : int(11.4 * RATE)], "30s": samples, "5min": np.tile(samples, 10)}


def summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def model_dir(model: ModelConfig) -> Path:
    """A local directory with the model, the one thing every contender loads."""
    from serve_app.backends.whisper import BUNDLED

    if model.source not in BUNDLED:
        return Path(model.source)
    path, files = BUNDLED[model.source]()
    if files is None:
        return Path(path)
    out = MODELS_DIR / Path(path).name
    if not (out / "model.bin").exists():
        out.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (out / f"{name}.tmp").write_bytes(data)
            (out / f"{name}.tmp").rename(out / name)
    return out


# -- one process: floor and limit --


def request_options(fields: dict):
    """The decoding options the service derives from a request with these form fields (one value each)."""
    from serve_app.protocol import TranscriptionRequest

    return TranscriptionRequest.from_form({k: [v] for k, v in fields.items()}, "transcribe").decode_options()


@functools.cache
def plain_options():
    """What the plain (json) requests decode with: the floor and the limit are compared with them."""
    return request_options(VARIANTS["plain"])


def floor(backend, samples: np.ndarray) -> float:
    """Seconds for our backend to transcribe `samples` in this process: VAD split, one batched decode."""
    options = plain_options()
    start = time.perf_counter()
    backend.decode(backend.split(samples, options))
    return time.perf_counter() - start


def in_process(backend, audio: dict[str, np.ndarray], jobs: list[str], runs: int, batch_sizes: list[int]) -> dict:
    options = plain_options()
    floors = [floor(backend, audio["30s"]) for _ in range(runs)]
    seconds = sum(len(audio[j]) / RATE for j in jobs)
    by_size = {}
    for batch in batch_sizes:
        limit = []
        for _ in range(runs):
            start = time.perf_counter()
            windows = [w for j in jobs for w in backend.split(audio[j], options)]
            for i in range(0, len(windows), batch):
                backend.decode(windows[i : i + batch])
            limit.append(seconds / (time.perf_counter() - start))
        by_size[str(batch)] = summary(limit)
    best = max(by_size, key=lambda b: by_size[b]["median"])
    return {"floor_30s_s": summary(floors), "limit_audio_s_per_s": by_size[best], "limit_batch_size": int(best),
            "limit_by_batch_size": by_size}


# -- over HTTP: the same measurements for us and for each peer --


_TICK = os.sysconf("SC_CLK_TCK")
# Ray's own processes, by what their command line holds.
_RAY_ROLES = {"ProxyActor": "ray: HTTP proxy", "ServeController": "ray: Serve controller", "raylet": "ray: raylet",
              "gcs_server": "ray: GCS", "dashboard": "ray: dashboard and agents", "DashboardAgent":
              "ray: dashboard and agents", "runtime_env": "ray: dashboard and agents", "log_monitor":
              "ray: dashboard and agents", "serve run": "serve run (the driver)"}


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system, all threads) that the processes on this machine have used so far, summed
    by what each is: a Serve replica by its deployment, Ray's own processes by role, this benchmark (the
    load's client threads; the floor probes run outside `load`), anything else by its program's name."""
    out: dict[str, float] = {}
    for pid, argv in processes():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        title = " ".join(argv)
        replica = serve_replica(title)
        if pid == os.getpid():
            name = "benchmark (HTTP clients)"
        elif replica is not None:
            name = replica.split(":")[-1]  # "speech:Ingress" -> "Ingress"
        else:
            role = next((r for key, r in _RAY_ROLES.items() if key in title), None)
            program = Path(argv[0]).name if argv[0] else "?"
            if program.startswith("python") and len(argv) > 1:  # the script or module it runs
                program += " " + (argv[2] if argv[1] == "-m" and len(argv) > 2 else Path(argv[1]).name)
            name = role or program
        out[name] = out.get(name, 0.0) + (int(stat[11]) + int(stat[12])) / _TICK
    return out


def load(post: Post, payloads: dict[str, bytes], seconds: dict[str, float], jobs: list[str], concurrency: int,
         fields: dict) -> tuple[float, list[tuple[str, float]], int, dict[str, float]]:
    """Audio seconds per wall second, each request's latency, the largest ASR batch any window was decoded
    in (our `X-ASR-Batch-Sizes` header; 0 for a peer), and the cores each kind of process kept busy (CPU
    seconds per wall second, `cpu_seconds`): where the machine went, beside what it delivered."""
    batches = [0]

    def one(name: str) -> tuple[str, float]:
        start = time.perf_counter()
        r = post(f"{name}.wav", payloads[name], fields)
        if r.status_code != 200:
            raise RuntimeError(f"{r.status_code}: {r.text[:300]}")
        batches.extend(int(b) for b in r.headers.get("x-asr-batch-sizes", "").split(",") if b)
        return name, time.perf_counter() - start

    cpu_before = cpu_seconds()
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, jobs))
    wall = time.perf_counter() - start
    cpu_after = cpu_seconds()
    # A process that started or ended during the level counts from 0 / up to its last reading.
    cores = {k: (v - cpu_before.get(k, 0.0)) / wall for k, v in cpu_after.items()}
    return sum(seconds[j] for j in jobs) / wall, latencies, max(batches), cores


def busy_cores(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per kind of process, the median over runs of the cores it kept busy (those above 0.01), and the total."""
    names = {k for r in runs for k in r}
    median = {k: statistics.median(r.get(k, 0.0) for r in runs) for k in names}
    kept = {k: round(v, 2) for k, v in sorted(median.items(), key=lambda kv: -kv[1]) if v >= 0.01}
    return {"total": round(sum(v for v in median.values() if v > 0), 2)} | kept


def p95(values: list[float]) -> float:
    values = sorted(values)
    return values[round(0.95 * (len(values) - 1))]


def levels(post: Post, audio: dict[str, np.ndarray], jobs: list[str], concurrency: list[int], runs: int,
           fields: dict, probe: Callable[[], float]) -> dict:
    """`probe`: the floor, in this process, before each level: how fast the host is at that moment (it is
    shared, and its speed drifts between the phases of one run)."""
    payloads = {name: wav(audio[name]) for name in set(jobs)}
    seconds = {name: len(audio[name]) / RATE for name in payloads}
    out = {}
    for c in concurrency:
        throughput, p50s, p95s, short, probes, largest, cores = [], [], [], [], [], 0, []
        for _ in range(runs):
            probes.append(probe())
            t, lat, batch, used = load(post, payloads, seconds, jobs, c, fields)
            largest = max(largest, batch)
            cores.append(used)
            throughput.append(t)
            p50s.append(statistics.median(x for _, x in lat))
            p95s.append(p95([x for _, x in lat]))
            short.append(statistics.median(x for name, x in lat if name == "5s"))
        out[str(c)] = {"audio_s_per_s": summary(throughput), "p50_s": summary(p50s), "p95_s": summary(p95s),
                       "p50_5s_clip_s": summary(short), "probe_floor_30s_s": summary(probes),
                       "largest_batch": largest, "cores_busy": busy_cores(cores)}
        print(f"  c={c}: {out[str(c)]['audio_s_per_s']['median']:.1f} audio s/s, p95 {out[str(c)]['p95_s']['median']:.1f} s",
              flush=True)
    return out


def deploy_batch_size(server, deployment: str, size: int, tmp: Path) -> None:
    """`serve deploy` the running config with the ASR's `max_batch_size` set to `size`: user_config, so the
    replica reconfigures in place, no restart. Returns once the controller reports the app running again."""
    server.redeploy(deployment, {"max_batch_size": size}, tmp / f"batch{size}.yaml")
    time.sleep(3)  # the controller's next loops pick up the new target
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        app = server.app_status()
        if app.get("status") == "RUNNING" and app.get("deployments", {}).get(deployment, {}).get("status") == "HEALTHY":
            return
        time.sleep(1)
    raise RuntimeError(f"{deployment} did not come back with max_batch_size={size}: {app}")


def compare_batch_sizes(server, deployment: str, sizes: list[int], configured: int, post: Post, audio, jobs, args,
                        probe, tmp: Path) -> dict:
    """The plain mix at each concurrency with each batch size in turn, so that every size meets the same
    phase of the (shared, drifting) host. Ends on the configured size."""
    out: dict = {str(b): {} for b in sizes}
    for c in args.concurrency:
        for b in sizes:
            deploy_batch_size(server, deployment, b, tmp)
            print(f"  max_batch_size {b}:", flush=True)
            out[str(b)].update(levels(post, audio, jobs, [c], args.runs, {}, probe))
    deploy_batch_size(server, deployment, configured, tmp)
    return out


def single(post: Post, payload: bytes, runs: int, warm: bool = True) -> dict:
    for _ in range(2 if warm else 0):
        post("warm.wav", payload, {}).raise_for_status()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        post("30s.wav", payload, {}).raise_for_status()
        times.append(time.perf_counter() - start)
    return summary(times)


def run_peer(name: str, model: Path, threads: int, batch: int, audio, jobs, args, tmp: Path, probe) -> dict:
    print(f"peer {name}", flush=True)
    try:
        with start_peer(name, model, threads, batch, tmp) as peer:
            out = {"version": PEERS[name].requirement, "differences": PEERS[name].notes}
            out["service_30s_s"] = single(peer.post, wav(audio["30s"]), args.runs)
            out["concurrency"] = levels(peer.post, audio, jobs, args.concurrency, args.runs, {}, probe)
            return out
    except Exception as exc:  # noqa: BLE001 - a peer that cannot run is reported, not fatal
        return {"version": PEERS[name].requirement, "error": f"{type(exc).__name__}: {exc}"[:2000]}


@contextlib.contextmanager
def memory_samples(every_s: float) -> Iterator[list[tuple[float, dict]]]:
    """Each replica's memory (`replica_memory()`) every `every_s` while the block runs, as a list of
    (seconds since the block began, memory) that grows in the background."""
    samples: list[tuple[float, dict]] = []
    done = threading.Event()
    start = time.perf_counter()

    def watch() -> None:
        while not done.wait(every_s):
            samples.append((round(time.perf_counter() - start, 2), replica_memory()))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield samples
    finally:
        done.set()
        watcher.join()


def one_file(server, clip_30s: np.ndarray, minutes: int) -> dict:
    """One `minutes`-long file: wall time, RTF, and each replica's peak memory sampled every 0.2 s: resident
    (RSS) and private (RSS without the pages of Ray's shared-memory object store the replica touched)."""
    payload = wav(np.tile(clip_30s, minutes * 2))
    baseline = replica_memory()
    with memory_samples(0.2) as samples:
        start = time.perf_counter()
        r = server.post(files={"file": ("long.wav", payload)}, timeout=3 * 3600)
        wall = time.perf_counter() - start
    r.raise_for_status()
    peak: dict[str, dict[str, float]] = {"rss": {}, "private": {}}
    for memory in [baseline] + [m for _, m in samples]:
        for k, v in memory.items():
            for kind in peak:
                peak[kind][k] = max(peak[kind].get(k, 0.0), v[kind])
    return {"minutes": minutes, "wall_s": round(wall, 1), "rtf": round(wall / (minutes * 60), 4),
            "before_mb": {k: v["rss"] for k, v in baseline.items()}, "peak_mb": peak}


def long_audio(server, clip_30s: np.ndarray, minutes: int) -> dict:
    """The long file, and a shorter one first: what a replica's peak grows by between the two is what
    the extra length costs (a single file's peak also holds one-off allocator growth, e.g. the first
    batch of a new size). Reported per audio hour, beside the size of the decoded audio itself."""
    reference_minutes = max(1, minutes // 6)
    ref = one_file(server, clip_30s, reference_minutes)
    long = one_file(server, clip_30s, minutes)
    extra_hours = (minutes - reference_minutes) / 60

    def per_hour(kind: str, k: str) -> float:
        return round((long["peak_mb"][kind][k] - ref["peak_mb"][kind].get(k, long["peak_mb"][kind][k])) / extra_hours, 1)

    long["reference"] = {k: ref[k] for k in ("minutes", "wall_s", "rtf")}
    long["replicas"] = {
        k: {"before_mb": long["before_mb"].get(k), "peak_mb": v, "reference_peak_mb": ref["peak_mb"]["rss"].get(k),
            "mb_per_audio_hour": per_hour("rss", k),
            "private_peak_mb": long["peak_mb"]["private"].get(k),
            "private_mb_per_audio_hour": per_hour("private", k)}
        for k, v in sorted(long["peak_mb"]["rss"].items())
    }
    long.pop("before_mb")
    long.pop("peak_mb")
    long["decoded_audio_mb_per_hour"] = round(DECODED_MB_PER_HOUR, 1)
    return long


def machine() -> str:
    """CPU count, and the GPUs nvidia-smi sees (if any)."""
    out = f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} CPUs"
    try:
        gpus = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=30).stdout.split("\n")
    except (OSError, subprocess.TimeoutExpired):
        return out
    gpus = [g.strip() for g in gpus if g.strip()]
    return out + (f", {len(gpus)} x {gpus[0]}" if gpus else "")


def busy_cpu(seconds: float = 10) -> float:
    """The fraction of the machine's CPU time in use over `seconds` (from /proc/stat)."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total

    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return round(1 - (idle1 - idle0) / (total1 - total0), 3)
