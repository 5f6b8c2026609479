"""Where the diarization's time goes, in one process: the benchmark's clips through our pipeline.

    python -m benchmarks.profile_diarization --config configs/gpu-embedded.yaml [--clips 5s 30s 5min] [--runs 2]
        [--batch-sizes 32 128] [--workers 1 4]

Runs `PyannoteDiarizer` (the Diarizer deployment's backend, built from the config's `diarization` section) on
each clip and splits each run's wall time at the progress hooks pyannote's pipeline calls: segmentation
(the sliding-window model), speaker counting, embeddings (one hook per embedding batch), clustering and the
reconstruction of the turns, and what follows until the answer. Every stage ends in numpy arrays, so on a
GPU each time includes the kernels it waited for. `--batch-sizes` sets the segmentation and embedding batch
sizes in turn, `--workers` how many speech pieces the bundled CAM++ embeds at once (default: the config's).
Prints a table and writes
benchmarks/results/<name>-diarization-profile.json.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import yaml

from benchmarks.profile_asr import report
from benchmarks.measure import RATE, RESULTS, clips, machine
from serve_app.config import AppConfig

# The pipeline's hook names in the order it calls them, and what the time up to each one's last call was.
STAGES = {"segmentation": "segmentation", "speaker_counting": "speaker counting", "embeddings": "embeddings",
          "discrete_diarization": "clustering + reconstruction"}


class HookClock:
    """The time of the last call of each hook step since `start()`, and how many embedding batches ran."""

    def __init__(self) -> None:
        self.start_at = 0.0
        self.last: dict[str, float] = {}
        self.embedding_batches = 0

    def start(self) -> None:
        self.start_at, self.last, self.embedding_batches = time.perf_counter(), {}, 0

    def __call__(self, step: str, artifact, file=None, total=None, completed=None) -> None:
        self.last[step] = time.perf_counter()
        if step == "embeddings" and completed:  # one call per batch (completed counts from 1)
            self.embedding_batches += 1

    def stages(self, end: float) -> dict[str, float]:
        """Seconds per stage: from the previous stage's end to this one's last hook call."""
        out, previous = {}, self.start_at
        for step, name in STAGES.items():
            if step in self.last:  # a clip with no speech stops after counting
                out[name] = self.last[step] - previous
                previous = self.last[step]
        out["output (annotations)"] = end - previous
        return out


def profile(diarizer, samples, clock: HookClock) -> dict:
    pipeline = diarizer.pipeline
    original = pipeline.apply

    def apply(file, **kwargs):
        return original(file, hook=clock, **kwargs)

    pipeline.apply = apply  # PyannoteDiarizer calls the pipeline, which calls apply(file, ...)
    try:
        clock.start()
        result = diarizer(samples)
        end = time.perf_counter()
    finally:
        del pipeline.apply
    wall = end - clock.start_at
    return {"wall_s": round(wall, 3), "audio_s_per_s": round(len(samples) / RATE / wall, 1),
            "stages_s": {k: round(v, 3) for k, v in clock.stages(end).items()},
            "embedding_batches": clock.embedding_batches, "speakers": len({t.speaker for t in result.turns})}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_diarization", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/dev.yaml"))
    parser.add_argument("--name", default=None, help="default: the config's file name")
    parser.add_argument("--clips", nargs="+", default=["5s", "30s", "5min"], choices=["5s", "30s", "5min"])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                        help="segmentation and embedding batch sizes to compare (default: the config's)")
    parser.add_argument("--workers", type=int, nargs="+", default=None,
                        help="bundled CAM++ embedding workers to compare (default: the config's)")
    args = parser.parse_args()

    app = yaml.safe_load(args.config.read_text())["applications"][0]
    config = AppConfig.model_validate(app["args"]).diarization
    from serve_app.backends.diarization import PyannoteDiarizer, load_pipeline

    started = time.perf_counter()
    diarizer = PyannoteDiarizer(load_pipeline(config))
    diarizer.warmup()
    audio = clips()
    name = args.name or args.config.stem
    out = {"machine": machine(), "config": str(args.config), "diarization": config.model_dump(),
           "load_s": round(time.perf_counter() - started, 1), "runs": []}
    RESULTS.mkdir(parents=True, exist_ok=True)
    clock = HookClock()
    embedding = diarizer.pipeline._embedding.model_
    for batch, workers in itertools.product(args.batch_sizes or [config.embedding_batch_size],
                                            args.workers or [config.embedding_workers]):
        if args.workers:
            embedding.parallel(workers)  # a CamPlusPlusEmbedding (the bundled source)
        if args.batch_sizes:
            diarizer.pipeline.segmentation_batch_size = diarizer.pipeline.embedding_batch_size = batch
        diarizer.warmup()  # the first call of a batch shape allocates
        for clip in args.clips:
            for n in range(args.runs):
                r = {"clip": clip, "run": n, "batch_size": batch, "workers": workers} | profile(
                    diarizer, audio[clip], clock)
                out["runs"].append(r)
                report(f"{clip} run {n}, batches of {batch}, {workers} workers: {r['wall_s']:.3f} s, "
                       f"{r['audio_s_per_s']} audio s/s, {r['embedding_batches']} embedding batches, "
                       f"{r['speakers']} speakers", r, out, RESULTS / f"{name}-diarization-profile.json")


if __name__ == "__main__":
    main()
