"""Where the ASR's time goes, in one process: the benchmark's load mix through our backend in batches.

    python -m benchmarks.profile_asr --config configs/gpu-embedded.yaml [--batch-sizes 8 16] [--formats json verbose_json words]

Times each stage of `WhisperBackend.split` and `.decode` (Silero VAD, log-mel features, encoder, language
detection, beam search, word alignment, the Python around them) by wrapping the calls it makes, and counts
the tokens each `generate` call produced. On a GPU, CTranslate2 returns from `encode` before the kernels end,
so the encoder's time shows up in the next call that waits for it (`detect_language` or `generate`).
Prints a table and writes benchmarks/results/<name>-profile.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import yaml

from benchmarks.measure import MIX, RATE, RESULTS, VARIANTS, clips, machine, model_dir, request_options
from serve_app.config import AppConfig

# The requests' form fields: what each decodes with is what the service derives from them.
FORMATS = {"json": VARIANTS["plain"], "verbose_json": {"response_format": "verbose_json"}, "words": VARIANTS["words"]}


class Stages:
    """Wall time and call count per stage; the stage's own time only (nested stages are subtracted)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.tokens: list[tuple[int, int]] = []  # per generate call: (longest, total) tokens
        self._stack: list[list[float]] = []
        self._originals: list[tuple[object, str, object]] = []

    def wrap(self, owner, attr: str, stage: str) -> None:
        inner = getattr(owner, attr)
        self._originals.append((owner, attr, owner.__dict__.get(attr)))

        def timed(*args, **kwargs):
            self._stack.append([time.perf_counter(), 0.0])
            try:
                out = inner(*args, **kwargs)
            finally:
                start, nested = self._stack.pop()
                spent = time.perf_counter() - start
                self.seconds[stage] += spent - nested
                self.calls[stage] += 1
                if self._stack:
                    self._stack[-1][1] += spent
            if stage == "generate":
                lengths = [len(r.sequences_ids[0]) for r in out]
                self.tokens.append((max(lengths, default=0), sum(lengths)))
            return out

        setattr(owner, attr, timed)

    def restore(self) -> None:
        """Puts back what `wrap` replaced (an attribute that was the class's method is removed again)."""
        for owner, attr, original in reversed(self._originals):
            if original is None:
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)


def profile(backend, audio, batch: int, fmt: str) -> dict:
    import serve_app.backends.whisper as whisper

    stages = Stages()
    model = backend.model
    # The instance attributes shadow the classes' methods for this backend only.
    stages.wrap(whisper, "get_speech_timestamps", "vad")
    stages.wrap(model, "feature_extractor", "features")
    stages.wrap(model, "encode", "encode")
    ct2 = _Proxy(model.model)
    stages.wrap(ct2, "detect_language", "detect_language")
    stages.wrap(ct2, "generate", "generate")
    stages.wrap(ct2, "align", "align")
    model.model = ct2
    stages.wrap(model, "add_word_timestamps", "word_timestamps (python)")
    stages.wrap(backend, "decode", "decode (python)")
    options = request_options(FORMATS[fmt])
    try:
        start = time.perf_counter()
        windows = [w for j in MIX for w in backend.split(audio[j], options)]
        for i in range(0, len(windows), batch):
            backend.decode(windows[i : i + batch])
        wall = time.perf_counter() - start
    finally:
        model.model = ct2.inner
        stages.restore()
    seconds = sum(len(audio[j]) / RATE for j in MIX)
    steps = sum(longest for longest, _ in stages.tokens)
    return {
        "batch_size": batch,
        "format": fmt,
        "windows": len(windows),
        "wall_s": round(wall, 3),
        "audio_s_per_s": round(seconds / wall, 1),
        "stages_s": {k: round(v, 3) for k, v in sorted(stages.seconds.items(), key=lambda kv: -kv[1])}
        | {"other": round(wall - sum(stages.seconds.values()), 3)},
        "calls": dict(stages.calls) | {"other": 0},
        "generate_calls": len(stages.tokens),
        "decoder_steps": steps,  # each call runs as long as its longest item
        "tokens": sum(total for _, total in stages.tokens),
        "generate_ms_per_step": round(1000 * stages.seconds["generate"] / max(steps, 1), 2),
    }


def report(headline: str, run: dict, out: dict, path: Path) -> None:
    """Prints one profiled run (`run["stages_s"]`: each stage's seconds and share of `run["wall_s"]`, with
    `run["calls"]` where counted), then rewrites `path` with `out`, so that a profile stopped by a time limit
    keeps what it measured."""
    print(headline, flush=True)
    for stage, seconds in run["stages_s"].items():
        calls = f"  ({run['calls'][stage]} calls)" if "calls" in run else ""
        print(f"  {stage:<28} {seconds:8.3f} s  {100 * seconds / run['wall_s']:5.1f}%{calls}")
    path.write_text(json.dumps(out, indent=2) + "\n")


class _Proxy:
    """Stands in for the CTranslate2 model so its methods can be wrapped (the extension type's are read-only)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_asr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/dev.yaml"))
    parser.add_argument("--name", default=None, help="default: the config's file name")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--formats", nargs="+", default=["json", "verbose_json"], choices=list(FORMATS),
                        help="requests' response formats (json decodes without timestamps); all with the first "
                             "compute type, the first one with the others")
    parser.add_argument("--compute-types", nargs="+", default=None,
                        help="CTranslate2 compute types to compare (default: the config's)")
    args = parser.parse_args()

    app = yaml.safe_load(args.config.read_text())["applications"][0]
    config = AppConfig.model_validate(app["args"])
    model = config.resolve_model(config.default_model)
    model = model.model_copy(update={"source": str(model_dir(model))})
    from serve_app.backends.whisper import WhisperBackend

    audio = clips()
    runs = []
    name = args.name or args.config.stem
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"machine": machine(), "config": str(args.config), "device": model.device, "runs": runs}
    for n, compute_type in enumerate(args.compute_types or [model.compute_type]):
        backend = WhisperBackend(model.model_copy(update={"compute_type": compute_type}))
        backend.warmup()
        for fmt in args.formats if n == 0 else args.formats[:1]:
            for batch in args.batch_sizes:
                # Warm: the first call of a batch shape allocates.
                backend.decode(backend.split(audio["5min"], request_options(FORMATS[fmt]))[:batch])
                r = profile(backend, audio, batch, fmt)
                r["compute_type"] = compute_type
                runs.append(r)
                report(f"{compute_type}, batch {batch}, {fmt}: {r['audio_s_per_s']} audio s/s, {r['windows']} "
                       f"windows, {r['generate_calls']} generate calls, {r['decoder_steps']} decoder steps "
                       f"({r['generate_ms_per_step']} ms each), {r['tokens']} tokens", r, out,
                       RESULTS / f"{name}-profile.json")
        del backend


if __name__ == "__main__":
    main()
