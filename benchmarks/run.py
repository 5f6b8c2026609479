"""Benchmark the service against its floor, its limit and its peers, on this machine, in one run.

    python -m benchmarks.run --config configs/dev.yaml --name dev-cpu [--runs 3] [--peers whisper-live ...]

Everything serves the same local model directory (the config's default model, written out once to
~/.cache/serve_app/models when it is a bundled one), one thing at a time, on 127.0.0.1:

1. In one Python process: the *floor* (the 30 s clip, VAD split + one batched decode) and the *limit*
   (every window of the load mix handed to the model in batched calls of the ASR's max batch size).
2. Each peer (benchmarks/peers.py: its own venv, same model, same threads): one 30 s request, then the
   load mix at each concurrency.
3. The service (`serve run` on a copy of the config, one replica per deployment): cold start (from
   `serve run` to the first 200), overhead (one 30 s request against the floor), the load mix at each
   concurrency plain, with word timestamps and with diarization, then one 60-minute file (wall time,
   real-time factor, peak memory of each replica).

The load mix: 16 requests (one 5-minute clip, eight 30 s, seven 5 s), started by a pool of `concurrency`
client threads in a separate process from the servers. Each figure is the median of --runs runs, with
min and max. Writes benchmarks/results/<name>.{json,md,png}.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

import httpx
import numpy as np
import soundfile as sf
import yaml

from benchmarks.peers import PEERS, start_peer
from serve_app.config import AppConfig, ModelConfig
from serve_app.eval.diarization import sample_dir
from harness.runner import running_app, wav_bytes as wav
from harness.procs import replica_memory, serve_replica

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
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        title = " ".join(argv)
        replica = serve_replica(title)
        if int(proc.name) == os.getpid():
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/dev.yaml"))
    parser.add_argument("--name", default="dev-cpu")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS),
                        help="none: no load levels (e.g. only the long file)")
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=list(PEERS))
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[],
                        help="also run the plain mix with each of these ASR max_batch_size values, switched live "
                             "with `serve deploy` and alternated at each concurrency (same phase of the host)")
    parser.add_argument("--long-minutes", type=int, default=60, help="0 skips the long file")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 4 short requests per level")
    parser.add_argument("--repeat", type=int, default=1,
                        help="the load mix this many times over per level (and for the limit): on a GPU one mix "
                             "takes about 2 s at c=16, mostly the ramp up and down, not the steady state")
    args = parser.parse_args()

    serve_config = yaml.safe_load(args.config.read_text())
    app = serve_config["applications"][0]
    config = AppConfig.model_validate(app["args"])
    model = config.resolve_model(config.default_model)
    directory = model_dir(model)
    model = model.model_copy(update={"source": str(directory)})
    asr = next(d for d in app["deployments"] if d["name"] == model.deployment_name)
    batch = asr["user_config"]["max_batch_size"]
    audio = clips()
    jobs = (QUICK_MIX if args.quick else MIX) * args.repeat
    result: dict = {
        "name": args.name,
        "config": str(args.config),
        "machine": machine(),
        "model": {"name": model.name, "dir": str(directory), "compute_type": model.compute_type,
                  "cpu_threads": model.cpu_threads, "max_batch_size": batch},
        "workload": {"mix": jobs, "audio_s": sum(len(audio[j]) / RATE for j in jobs), "runs": args.runs},
    }
    from serve_app.backends.whisper import WhisperBackend

    backend = WhisperBackend(model)
    backend.warmup()
    # The limit is the best of several batch sizes, ours among them: on a CPU a bigger batch is not faster;
    # on a GPU it is, up to a point.
    sizes = {batch, 8, 16} | ({32, 64} if model.device == "cuda" else set())
    result["in_process"] = in_process(backend, audio, jobs, args.runs, sorted(sizes))
    probe = functools.partial(floor, backend, audio["30s"])
    print("in process:", result["in_process"], flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    partial = RESULTS / f"{args.name}.partial.json"

    with tempfile.TemporaryDirectory() as tmp:
        result["peers"] = {
            name: run_peer(name, directory, model.cpu_threads, batch, audio, jobs, args, Path(tmp), probe)
            for name in args.peers
        }

        def bench_config(c: dict) -> None:
            for d in c["applications"][0]["deployments"]:
                d["autoscaling_config"].update(min_replicas=1, max_replicas=1)  # the machine, not the autoscaler
            for m in c["applications"][0]["args"]["models"]:
                if m["name"] == model.name:
                    m["source"] = str(directory)

        print("service", flush=True)
        with running_app(Path(tmp), bench_config, args.config) as server:
            def post(filename: str, payload: bytes, fields: dict) -> httpx.Response:
                return server.post(data=fields, files={"file": (filename, payload)}, timeout=900)

            ours: dict = {"cold_start_s": round(server.cold_start_s, 1)}
            # What the cluster itself (GCS, raylet, dashboard, Serve controller, idle replicas) uses while
            # no request is in flight: on 2 cores it is taken from the model's threads.
            ours["idle_cluster_cpu_fraction"] = busy_cpu()
            ours["service_30s_s"] = single(post, wav(audio["30s"]), args.runs)
            # The floor again, now beside the idle cluster, alternating with requests through the graph:
            # both then run in the same conditions, and the ratio is the graph's own cost.
            beside, through = [], []
            for _ in range(args.runs):
                beside.append(floor(backend, audio["30s"]))
                through.append(single(post, wav(audio["30s"]), 1, warm=False)["median"])
            ours["interleaved"] = {"floor_30s_s": summary(beside), "service_30s_s": summary(through)}
            ours["variants"] = {}
            for variant in args.variants:
                print(f" variant {variant}", flush=True)
                ours["variants"][variant] = levels(post, audio, jobs, args.concurrency, args.runs, VARIANTS[variant],
                                                   probe)
                # What is measured so far survives a run that is stopped or fails later (a long run's hours).
                partial.write_text(json.dumps({**result, "service": ours}, indent=2) + "\n")
            if args.batch_sizes:
                print(f" batch sizes {args.batch_sizes}", flush=True)
                ours["plain_by_batch_size"] = compare_batch_sizes(
                    server, model.deployment_name, args.batch_sizes, batch, post, audio, jobs, args, probe, Path(tmp))
                partial.write_text(json.dumps({**result, "service": ours}, indent=2) + "\n")
            if args.long_minutes:
                print(" long file", flush=True)
                ours["long_audio"] = long_audio(server, audio["30s"], args.long_minutes)
            result["service"] = ours

    derive(result)
    partial.unlink(missing_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(markdown(result))
    plot(result, RESULTS / f"{args.name}.png")
    print(markdown(result))


def derive(r: dict) -> None:
    """Ratios and the issue's targets, from the medians."""
    ours = r["service"]
    limit = r["in_process"]["limit_audio_s_per_s"]["median"]
    ours["overhead_ratio"] = round(ours["service_30s_s"]["median"] / r["in_process"]["floor_30s_s"]["median"], 3)
    inter = ours["interleaved"]
    inter["overhead_ratio"] = round(inter["service_30s_s"]["median"] / inter["floor_30s_s"]["median"], 3)
    plain = ours["variants"].get("plain", {})
    sequential = plain.get("1")  # a run without c=1 has no "vs c=1" (not the lowest level instead)
    for c, level in plain.items():
        level["fraction_of_limit"] = round(level["audio_s_per_s"]["median"] / limit, 3)
        if sequential:
            level["vs_concurrency_1"] = round(level["audio_s_per_s"]["median"] / sequential["audio_s_per_s"]["median"], 3)
        for name, peer in r["peers"].items():
            theirs = peer.get("concurrency", {}).get(c)
            if theirs:
                level.setdefault("vs_peers", {})[name] = {
                    "throughput_ratio": round(level["audio_s_per_s"]["median"] / theirs["audio_s_per_s"]["median"], 3),
                    "p95_ratio": round(level["p95_s"]["median"] / theirs["p95_s"]["median"], 3),
                }
    targets = {
        "overhead ratio <= 1.10 (floor measured alone, before the cluster starts)": ours["overhead_ratio"] <= 1.10,
        "overhead ratio <= 1.10 (floor beside the idle cluster, alternating)": inter["overhead_ratio"] <= 1.10,
    }
    if "8" in plain:
        targets["c=8 >= 0.9 of the limit"] = plain["8"]["fraction_of_limit"] >= 0.9
        if sequential:
            targets["c=8 >= 1.3 x c=1"] = plain["8"]["vs_concurrency_1"] >= 1.3
    for c, level in plain.items():
        if int(c) >= 4:
            for name, v in level.get("vs_peers", {}).items():
                targets[f"c={c} vs {name}: >= 1.3 x throughput"] = v["throughput_ratio"] >= 1.3
                targets[f"c={c} vs {name}: <= 0.5 x p95"] = v["p95_ratio"] <= 0.5
    long = ours.get("long_audio")
    if long:
        rtf_30s = ours["service_30s_s"]["median"] / 30
        long["rtf_30s_clip"] = round(rtf_30s, 4)
        targets["60-min RTF <= 30 s clip RTF"] = long["rtf"] <= rtf_30s
        # The decoder must hold the upload (16-bit PCM here: half the decoded size) beside the decoded audio.
        allowed = 1.5 * long["decoded_audio_mb_per_hour"]
        for kind, field in (("RSS", "mb_per_audio_hour"), ("private memory", "private_mb_per_audio_hour")):
            grown = [v[field] for v in long["replicas"].values() if v.get("reference_peak_mb") and v.get(field) is not None]
            targets[f"60-min: every replica's peak {kind} grows <= {allowed:.0f} MB per audio hour "
                    f"(decoded audio + upload)"] = max(grown, default=0) <= allowed
    r["targets"] = targets


def markdown(r: dict) -> str:
    ours = r["service"]
    fl = r["in_process"]["floor_30s_s"]["median"]
    lines = [
        f"## {r['name']} ({r['config']}, {r['machine']})",
        "",
        f"Model {r['model']['name']} ({r['model']['compute_type']}, {r['model']['cpu_threads']} threads, batches of "
        f"up to {r['model']['max_batch_size']}); load mix {len(r['workload']['mix'])} requests, "
        f"{r['workload']['audio_s']:.0f} s of audio; medians of {r['workload']['runs']} runs.",
        "",
        f"- Overhead: one 30 s request {ours['service_30s_s']['median']:.2f} s through the graph vs {fl:.2f} s in "
        f"one process with nothing else running: ratio **{ours['overhead_ratio']:.2f}**. Alternating with the "
        f"same model in this process beside the idle cluster: {ours['interleaved']['service_30s_s']['median']:.2f} s "
        f"vs {ours['interleaved']['floor_30s_s']['median']:.2f} s, ratio **{ours['interleaved']['overhead_ratio']:.2f}**.",
        f"- Limit (all windows in batched calls, one process, best batch size: "
        f"{r['in_process']['limit_batch_size']}): {r['in_process']['limit_audio_s_per_s']['median']:.1f} audio s/s "
        f"(" + ", ".join(f"batches of {b}: {v['median']:.1f}" for b, v in r['in_process']['limit_by_batch_size'].items())
        + ").",
        f"- Cold start (`serve run` to the first 200): {ours['cold_start_s']:.0f} s.",
        f"- CPU in use while the service is up and idle (Ray's own processes): "
        f"{100 * ours['idle_cluster_cpu_fraction']:.0f}% of the machine.",
    ]
    long = ours.get("long_audio")
    if long:
        ref = long["reference"]
        mem = ", ".join(f"{k.split(':')[-1]} {v['before_mb']:.0f} -> {v['peak_mb']:.0f} MB "
                        f"({v['mb_per_audio_hour']:.0f} MB per audio hour; private "
                        f"{v['private_mb_per_audio_hour']:.0f})"
                        for k, v in long["replicas"].items() if v.get("before_mb") and v.get("reference_peak_mb")
                        and v.get("private_mb_per_audio_hour") is not None)
        lines.append(f"- {long['minutes']}-minute file: {long['wall_s']:.0f} s, RTF {long['rtf']:.3f} (30 s clip: "
                     f"{long['rtf_30s_clip']:.3f}; {ref['minutes']}-minute file: {ref['rtf']:.3f}). Each replica's "
                     f"memory before -> peak, and how much more the peak is than for the {ref['minutes']}-minute "
                     f"file, per extra audio hour (private: without the pages of Ray's shared-memory object store the "
                     f"replica touched): {mem}. The decoded audio itself is "
                     f"{long['decoded_audio_mb_per_hour']:.0f} MB per hour (float32, 16 kHz).")
    peers = [n for n, p in r["peers"].items() if "concurrency" in p]
    head = ("| concurrency | audio s / wall s (min-max) | of the limit | vs c=1 | p50 s | p95 s | p50 of 5 s clips "
            "| host: floor s |")
    sep = "|---|---|---|---|---|---|---|---|"
    for n in peers:
        head += f" {n}: audio s/s, p95 s, host: floor s | ours / {n}: throughput, p95 |"
        sep += "---|---|"
    lines += ["", "### Plain transcription (json), us against the limit and the peers", "", head, sep]
    plain = ours["variants"].get("plain", {})
    for c, level in plain.items():
        t = level["audio_s_per_s"]
        row = (f"| {c} | {t['median']:.1f} ({t['min']:.1f}-{t['max']:.1f}) | {level['fraction_of_limit']:.2f} | "
               f"{_ratio(level.get('vs_concurrency_1'))} | {level['p50_s']['median']:.1f} | {level['p95_s']['median']:.1f} | "
               f"{level['p50_5s_clip_s']['median']:.1f} | {_probe(level)} |")
        for n in peers:
            theirs = r["peers"][n]["concurrency"][c]
            v = level["vs_peers"][n]
            row += (f" {theirs['audio_s_per_s']['median']:.1f}, {theirs['p95_s']['median']:.1f}, {_probe(theirs)} | "
                    f"{v['throughput_ratio']:.2f}x, {v['p95_ratio']:.2f}x |")
        lines.append(row)
    if any("cores_busy" in level for level in plain.values()):
        lines += ["", "### Where the CPU went (plain): cores kept busy during each level, by process", "",
                  "| concurrency | ours: total | ours: the 5 busiest | " + " | ".join(f"{n}: total, busiest" for n in peers)
                  + (" |" if peers else ""), "|---|---|---|" + "---|" * len(peers)]
        for c, level in plain.items():
            busy = dict(level.get("cores_busy", {}))
            total = busy.pop("total", 0.0)
            top = ", ".join(f"{k} {v:.2f}" for k, v in list(busy.items())[:5])
            row = f"| {c} | {total:.2f} | {top} |"
            for n in peers:
                theirs = dict(r["peers"][n]["concurrency"][c].get("cores_busy", {}))
                if not theirs:
                    row += " - |"
                    continue
                their_total = theirs.pop("total")
                row += f" {their_total:.2f}, " + ", ".join(f"{k} {v:.2f}" for k, v in list(theirs.items())[:2]) + " |"
            lines.append(row)
    by_size = ours.get("plain_by_batch_size")
    if by_size:
        sizes = list(by_size)
        lines += ["", "### Plain, batch sizes alternated at each concurrency (`--batch-sizes`)", "",
                  "| concurrency | " + " | ".join(f"max_batch_size {b}: audio s/s, p95 s, p50 of 5 s clips, host: floor s, largest batch seen"
                                                  for b in sizes) + " |",
                  "|---|" + "---|" * len(sizes)]
        for c in by_size[sizes[0]]:
            cells = []
            for b in sizes:
                level = by_size[b][c]
                cells.append(f"{level['audio_s_per_s']['median']:.1f}, {level['p95_s']['median']:.1f}, "
                             f"{level['p50_5s_clip_s']['median']:.1f}, {_probe(level)}, {level['largest_batch']}")
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += ["", "### Variants (ours)", "", "| variant | concurrency | audio s / wall s (min-max) | p50 s | p95 s | p50 of 5 s clips |",
              "|---|---|---|---|---|---|"]
    for variant, by_c in ours["variants"].items():
        for c, level in by_c.items():
            t = level["audio_s_per_s"]
            lines.append(f"| {variant} | {c} | {t['median']:.1f} ({t['min']:.1f}-{t['max']:.1f}) | "
                         f"{level['p50_s']['median']:.1f} | {level['p95_s']['median']:.1f} | "
                         f"{level['p50_5s_clip_s']['median']:.1f} |")
    lines += ["", "### Peers", ""]
    for n, p in r["peers"].items():
        if "error" in p:
            lines.append(f"- {n} ({p['version']}): **could not run**: {p['error'].splitlines()[0]}")
        else:
            lines.append(f"- {n} ({p['version']}): one 30 s request {p['service_30s_s']['median']:.2f} s; {p['differences']}.")
    lines += ["", "### Targets", ""]
    lines += [f"- {'met' if ok else '**missed**'}: {name}" for name, ok in r["targets"].items()]
    return "\n".join(lines) + "\n"


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def _probe(level: dict) -> str:
    p = level.get("probe_floor_30s_s")
    return f"{p['median']:.2f}" if p else "-"


def plot(r: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # optional: the JSON and the table carry the numbers
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for variant, by_c in r["service"]["variants"].items():
        xs = [int(c) for c in by_c]
        ax.plot(xs, [by_c[str(c)]["audio_s_per_s"]["median"] for c in xs], marker="o",
                linestyle="-" if variant == "plain" else ":", label=f"serve-app ({variant})")
    for name, peer in r["peers"].items():
        if "concurrency" in peer:
            xs = [int(c) for c in peer["concurrency"]]
            ax.plot(xs, [peer["concurrency"][str(c)]["audio_s_per_s"]["median"] for c in xs], marker="s",
                    linestyle="--", label=name)
    ax.axhline(r["in_process"]["limit_audio_s_per_s"]["median"], linestyle="--", color="gray", label="in-process limit")
    ax.set_xlabel("concurrent requests")
    ax.set_ylabel("audio seconds per wall second")
    ax.set_title(f"{r['name']}: {r['machine']}")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
