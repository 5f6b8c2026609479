"""Benchmark the service against its own floor and limit (peers: not yet, see benchmarks/README.md).

    python -m benchmarks.run --config configs/dev.yaml --name dev-cpu [--runs 3] [--concurrency 1 4 8 16]

1. In one Python process, before the service starts (so nothing competes for the cores):
   - floor: the default model, same settings, transcribes the 30 s clip (VAD split + batched decode);
   - limit: every window of the whole workload handed to the model in large batched calls.
2. Then the service itself (`serve run` on a copy of the config, on a free port), warmed up, and:
   - overhead: one request for the 30 s clip through the whole graph, against the floor;
   - throughput and latency at each concurrency, over a fixed mix of 5 s and 30 s clips (and a 5-minute
     one with --long): audio seconds per wall second, p50 and p95 latency.
Each figure is the median of --runs runs, with min and max. Writes benchmarks/results/<name>.{json,md,png}.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import platform
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from serve_app.config import AppConfig
from serve_app.eval.diarization import sample_dir
from serve_app.eval.runner import running_app

RESULTS = Path(__file__).resolve().parent / "results"
RATE = 16_000


def clips(long: bool) -> dict[str, np.ndarray]:
    samples, _ = sf.read(sample_dir() / "sample.wav", dtype="float32")  # (T,) 30 s, speech from 6.4 s
    out = {"5s": samples[int(6.4 * RATE) : int(11.4 * RATE)], "30s": samples}
    if long:
        out["5min"] = np.tile(samples, 10)
    return out


def workload(names: list[str], requests: int) -> list[str]:
    return list(itertools.islice(itertools.cycle(names), requests))


def wav(samples: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def in_process(config: AppConfig, audio: dict[str, np.ndarray], jobs: list[str], runs: int, batch: int) -> dict:
    from serve_app.backends.whisper import WhisperBackend
    from serve_app.pipeline.types import DecodeOptions

    model = config.resolve_model(config.default_model)
    backend = WhisperBackend(model)
    backend.warmup()
    options = DecodeOptions()
    floor = []
    for _ in range(runs):
        start = time.perf_counter()
        backend.decode(backend.split(audio["30s"], options))
        floor.append(time.perf_counter() - start)
    limit = []
    seconds = sum(len(audio[j]) / RATE for j in jobs)
    for _ in range(runs):
        start = time.perf_counter()
        windows = [w for j in jobs for w in backend.split(audio[j], options)]
        for i in range(0, len(windows), batch):
            backend.decode(windows[i : i + batch])
        limit.append(seconds / (time.perf_counter() - start))
    return {"model": model.name, "floor_30s_s": summary(floor), "limit_audio_s_per_s": summary(limit)}


def load(server, audio: dict[str, np.ndarray], jobs: list[str], concurrency: int) -> tuple[float, list[float]]:
    payloads = {name: wav(samples) for name, samples in audio.items()}

    def one(name: str) -> float:
        start = time.perf_counter()
        r = server.post(files={"file": (f"{name}.wav", payloads[name])}, timeout=900)
        r.raise_for_status()
        return time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, jobs))
    wall = time.perf_counter() - start
    return sum(len(audio[j]) / RATE for j in jobs) / wall, latencies


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/dev.yaml"))
    parser.add_argument("--name", default="dev-cpu")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--requests", type=int, default=16, help="requests per concurrency level and run")
    parser.add_argument("--long", action="store_true", help="add a 5-minute clip to the mix")
    args = parser.parse_args()

    serve_config = yaml.safe_load(args.config.read_text())
    config = AppConfig.model_validate(serve_config["applications"][0]["args"])
    asr = next(d for d in serve_config["applications"][0]["deployments"] if d["name"].startswith("WhisperASR"))
    audio = clips(args.long)
    jobs = workload(list(audio), args.requests)
    result: dict = {
        "name": args.name,
        "config": str(args.config),
        "machine": f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} CPUs",
        "workload": {"clips": list(audio), "requests_per_level": args.requests, "runs": args.runs},
        "in_process": in_process(config, audio, jobs, args.runs, asr["user_config"]["max_batch_size"]),
    }

    def one_replica(c: dict) -> None:
        for d in c["applications"][0]["deployments"]:
            d["autoscaling_config"].update(min_replicas=1, max_replicas=1)  # the machine, not the autoscaler

    with tempfile.TemporaryDirectory() as tmp, running_app(Path(tmp), one_replica, args.config) as server:
        payload = wav(audio["30s"])
        for _ in range(2):
            server.post(files={"file": ("w.wav", payload)}, timeout=900).raise_for_status()  # warm-up
        single = []
        for _ in range(args.runs):
            start = time.perf_counter()
            server.post(files={"file": ("30s.wav", payload)}, timeout=900).raise_for_status()
            single.append(time.perf_counter() - start)
        result["service_30s_s"] = summary(single)
        result["overhead_ratio"] = round(statistics.median(single) / result["in_process"]["floor_30s_s"]["median"], 3)
        levels = {}
        for c in args.concurrency:
            throughput, p50, p95 = [], [], []
            for _ in range(args.runs):
                t, lat = load(server, audio, jobs, c)
                lat.sort()
                throughput.append(t)
                p50.append(statistics.median(lat))
                p95.append(lat[int(0.95 * (len(lat) - 1))])
            levels[str(c)] = {"audio_s_per_s": summary(throughput), "p50_s": summary(p50), "p95_s": summary(p95)}
        result["concurrency"] = levels
    limit = result["in_process"]["limit_audio_s_per_s"]["median"]
    for level in result["concurrency"].values():
        level["fraction_of_limit"] = round(level["audio_s_per_s"]["median"] / limit, 3)
    first = result["concurrency"][str(args.concurrency[0])]["audio_s_per_s"]["median"]
    for level in result["concurrency"].values():
        level["vs_concurrency_1"] = round(level["audio_s_per_s"]["median"] / first, 3)

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(markdown(result))
    plot(result, RESULTS / f"{args.name}.png")
    print(markdown(result))


def markdown(r: dict) -> str:
    lines = [
        f"## {r['name']} ({r['config']}, {r['machine']})",
        "",
        f"Overhead: one 30 s request through the graph {r['service_30s_s']['median']:.2f} s vs "
        f"{r['in_process']['floor_30s_s']['median']:.2f} s in one process: ratio **{r['overhead_ratio']:.2f}**.",
        f"Limit (all windows in batched calls, one process): "
        f"{r['in_process']['limit_audio_s_per_s']['median']:.1f} audio s/s.",
        "",
        "| concurrency | audio s / wall s (min-max) | of the limit | vs c=1 | p50 s | p95 s |",
        "|---|---|---|---|---|---|",
    ]
    for c, level in r["concurrency"].items():
        t = level["audio_s_per_s"]
        lines.append(f"| {c} | {t['median']:.1f} ({t['min']:.1f}-{t['max']:.1f}) | {level['fraction_of_limit']:.2f} | "
                     f"{level['vs_concurrency_1']:.2f} | {level['p50_s']['median']:.1f} | {level['p95_s']['median']:.1f} |")
    return "\n".join(lines) + "\n"


def plot(r: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # optional: the JSON and the table carry the numbers
        return
    levels = [int(c) for c in r["concurrency"]]
    ours = [r["concurrency"][str(c)]["audio_s_per_s"]["median"] for c in levels]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(levels, ours, marker="o", label="serve-app")
    ax.axhline(r["in_process"]["limit_audio_s_per_s"]["median"], linestyle="--", color="gray", label="in-process limit")
    ax.set_xlabel("concurrent requests")
    ax.set_ylabel("audio seconds per wall second")
    ax.set_title(r["name"])
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
