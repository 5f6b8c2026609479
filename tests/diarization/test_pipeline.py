"""The diarization backend with the real bundled models (segmentation-3.0 + CAM++), no Ray.

DER is scored as the evaluation command scores it (pyannote.metrics, overlap scored), on sample.wav's
reference turns. Timing lives in `python -m serve_app.eval.diarization evaluate`, not here.
"""

import os

import numpy as np
import pytest
import torch
import yaml
from pyannote.core import Annotation, Segment

from serve_app.backends.campplus import CamPlusPlusEmbedding, bundled_segmentation_path
from serve_app.backends.diarization import PyannoteDiarizer, bundled_parameters, load_pipeline
from serve_app.config import DiarizationConfig
from serve_app.eval.diarization import der, sample_item

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def diarizer():
    return PyannoteDiarizer(load_pipeline(DiarizationConfig()))


@pytest.fixture(scope="module")
def sample():
    return sample_item()


def annotation(turns) -> Annotation:
    out = Annotation(uri="sample")
    for t in turns:
        out[Segment(t.start, t.end)] = t.speaker
    return out


def test_sample_has_two_speakers_and_low_der(diarizer, sample):
    result = diarizer(sample.samples)
    hyp = {"sample": annotation(result.turns)}
    assert {t.speaker for t in result.turns} == {"SPEAKER_00", "SPEAKER_01"}
    der0, der25 = der([sample], hyp, 0.0), der([sample], hyp, 0.25)
    print(f"sample.wav DER collar 0: {der0:.4f}, collar 0.25: {der25:.4f}")
    assert der0 <= 0.06 and der25 <= 0.03
    # The exclusive turns never overlap: words are matched against them.
    ex = result.exclusive_turns
    assert all(a.end <= b.start + 1e-6 for a, b in zip(ex, ex[1:]))
    # Labels are numbered in order of first speech.
    assert result.turns[0].speaker == "SPEAKER_00"


def test_speaker_count_hints_reach_the_pipeline(diarizer, sample):
    three = diarizer(sample.samples, min_speakers=3, max_speakers=3)
    assert {t.speaker for t in three.turns} == {"SPEAKER_00", "SPEAKER_01", "SPEAKER_02"}
    one = diarizer(sample.samples, max_speakers=1)
    assert {t.speaker for t in one.turns} == {"SPEAKER_00"}


def test_silence_has_no_turns(diarizer):
    result = diarizer(np.zeros(16000 * 5, dtype=np.float32))
    assert result.turns == [] and result.exclusive_turns == []


def test_pipeline_from_a_local_directory_laid_out_like_the_hub_repo(diarizer, sample, tmp_path):
    # pyannote/speaker-diarization-community-1's layout: config.yaml + one folder per model, here
    # pointing at the bundled weights (the embedding saved as a pyannote checkpoint of the CAM++ adapter).
    (tmp_path / "segmentation").mkdir()
    (tmp_path / "embedding").mkdir()
    os.symlink(bundled_segmentation_path(), tmp_path / "segmentation" / "pytorch_model.bin")
    CamPlusPlusEmbedding.from_bundled().save_pyannote_checkpoint(tmp_path / "embedding" / "pytorch_model.bin")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({
        "dependencies": {"pyannote.audio": "4.0.7"},
        "pipeline": {
            "name": "pyannote.audio.pipelines.SpeakerDiarization",
            "params": {"segmentation": "$model/segmentation", "embedding": "$model/embedding", "plda": None,
                       "clustering": "AgglomerativeClustering", "segmentation_step": 0.1},
        },
        "params": bundled_parameters(),
    }))
    from_dir = PyannoteDiarizer(load_pipeline(DiarizationConfig(source=str(tmp_path))))
    assert isinstance(from_dir.pipeline._embedding.model_, CamPlusPlusEmbedding)
    got, expected = from_dir(sample.samples), diarizer(sample.samples)
    assert [(t.speaker, round(t.start, 2), round(t.end, 2)) for t in got.turns] == \
        [(t.speaker, round(t.start, 2), round(t.end, 2)) for t in expected.turns]


def test_config_overrides_parameters(sample):
    # An absurdly low threshold splits the two speakers into many: proof that `parameters` reach the pipeline.
    config = DiarizationConfig(parameters={"clustering": {"threshold": 0.05, "min_cluster_size": 1}})
    split = PyannoteDiarizer(load_pipeline(config))
    assert len({t.speaker for t in split(sample.samples).turns}) > 2


def test_the_cpu_fused_cam_graph_is_left_behind_when_the_module_moves_off_the_cpu():
    # The frozen graph holds MKLDNN ops with no CUDA kernels: on a GPU (configs/gpu-embedded.yaml) every
    # diarize request failed with "Could not run 'aten::to_mkldnn' ... 'CUDA' backend" until the module
    # itself ran there. "meta" stands in for the GPU that CI does not have.
    embedding = CamPlusPlusEmbedding.from_bundled().freeze()
    assert embedding._network is embedding.__dict__["_fast"]
    embedding.to("meta")
    assert embedding._network is embedding.campplus


def test_the_graph_frozen_for_a_gpu_gives_the_module_s_embeddings_for_any_length():
    # On a GPU the network runs as a graph traced there on 200 frames and frozen (benchmarks/README.md, GPU):
    # speech pieces have any length, so the trace must not have kept the example's. Traced here on the CPU,
    # the same call the GPU path makes.
    embedding = CamPlusPlusEmbedding.from_bundled()
    graph = embedding.frozen_graph(torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    for frames in (20, 57, 433, 998):
        x = torch.randn(1, frames, 80, generator=generator)
        with torch.inference_mode():
            expected, got = embedding.campplus(x), graph(x)
        assert got.shape == expected.shape == (1, 192)
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_reference_clips_name_the_speakers_of_another_part(diarizer, sample):
    # Clips from sample.wav after 18 s (where sample.rttm has each speaker alone) name the first 18 s.
    rate, s = 16_000, sample.samples
    alice = np.concatenate([s[int(18.6 * rate):int(21.45 * rate)], s[int(27.9 * rate):]])  # speaker90
    bob = s[int(21.8 * rate):int(27.8 * rate)]  # speaker91
    result = diarizer(s[:int(18 * rate)], references=[("Alice", alice), ("Bob", bob)])
    assert sorted(name for name, _ in result.known.values()) == ["Alice", "Bob"]
    assert {t.speaker for t in result.exclusive_turns} == {"Alice", "Bob"}
    assert all(t.known for t in result.turns)
    # The turns carry the right names: scored against sample.rttm's first 18 s with its labels renamed.
    truth = sample.reference.crop(Segment(0, 18)).rename_labels({"speaker90": "Alice", "speaker91": "Bob"})
    hyp = annotation(result.turns)
    print("known speakers:", result.known)
    assert _named_error(truth, hyp) <= 0.15
    # A reference of nobody in the recording names no one.
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(3 * rate) / rate)).astype(np.float32)
    result = diarizer(s[:int(18 * rate)], references=[("Nobody", tone)])
    assert result.known == {} and not any(t.known for t in result.turns)


def _named_error(truth: Annotation, hyp: Annotation) -> float:
    """The share of reference speech that no hypothesis turn of the same NAME covers (missed or given to the
    wrong name): DER's miss + confusion without its optimal label mapping, so the names must be right."""
    wrong = total = 0.0
    for seg, _, label in truth.itertracks(yield_label=True):
        total += seg.duration
        right = sum((seg & h).duration for h, _, l in hyp.itertracks(yield_label=True) if l == label and seg.intersects(h))
        wrong += seg.duration - min(right, seg.duration)
    return wrong / total
