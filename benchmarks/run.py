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
import functools
import json
import tempfile
from pathlib import Path

import httpx
import yaml

from benchmarks.measure import (
    MIX, QUICK_MIX, RATE, RESULTS, VARIANTS, busy_cpu, clips, compare_batch_sizes, floor, in_process, levels,
    long_audio, machine, model_dir, run_peer, single, summary, wav,
)
from benchmarks.peers import PEERS
from benchmarks.report import derive, markdown, plot
from harness.runner import running_app
from serve_app.config import AppConfig


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


if __name__ == "__main__":
    main()
