"""build_app(args) -> Application: validate the typed config, bind the graph. Wiring only."""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from serve_app.config import AppConfig
from serve_app.deployments.asr import WhisperASR
from serve_app.deployments.decoder import AudioDecoder
from serve_app.deployments.diarizer import Diarizer
from serve_app.deployments.ingress import Ingress
from serve_app.deployments.merger import Merger


def build_app(args: dict[str, Any]) -> Application:
    config = AppConfig.model_validate(args)  # a typo in YAML fails here, at `serve run`
    asr = {m.name: WhisperASR.options(name=m.deployment_name).bind(m) for m in config.models}
    return Ingress.bind(
        config,
        AudioDecoder.bind(config.limits, config.fetch),
        asr,
        Diarizer.bind(config.diarization) if config.diarization is not None else None,
        Merger.bind(config.diarization.turn_gap_s) if config.diarization is not None else Merger.bind(),
    )
