"""Every Serve config in configs/ validates against Ray's own schema and builds the app (no model runs)."""

from pathlib import Path

import pytest
import yaml
from ray.serve import Application
from ray.serve.schema import ServeDeploySchema

from serve_app.app import build_app
from serve_app.config import AppConfig
from tests.support import ROOT_DIR

CONFIGS = sorted((ROOT_DIR / "configs").glob("*.yaml"))


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_there_are_dev_and_gpu_configs():
    assert {p.name for p in CONFIGS} >= {"dev.yaml", "gpu.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_is_a_valid_serve_config_and_builds(path):
    config = load(path)
    schema = ServeDeploySchema.model_validate(config)
    (app,) = schema.applications
    assert app.import_path == "serve_app.app:build_app"
    args = config["applications"][0]["args"]
    cfg = AppConfig.model_validate(args)
    with pytest.raises(ValueError):
        AppConfig.model_validate({**args, "unknown_knob": 1})
    # Binding builds the graph without loading a model.
    assert isinstance(build_app(args), Application)

    deployments = {d["name"]: d for d in config["applications"][0]["deployments"]}
    expected = {"Ingress", "AudioDecoder", "Merger", *(m.deployment_name for m in cfg.models)}
    if cfg.diarization is not None:
        expected.add("Diarizer")
    assert set(deployments) == expected
    for d in deployments.values():
        assert {"max_ongoing_requests", "max_queued_requests", "ray_actor_options", "autoscaling_config"} <= set(d)
        scaling = d["autoscaling_config"]
        assert 1 <= scaling["min_replicas"] < scaling["max_replicas"], d["name"]
    for m in cfg.models:
        asr = deployments[m.deployment_name]
        # A full batch can only form if that many requests may be in the replica at once.
        assert asr["max_ongoing_requests"] >= asr["user_config"]["max_batch_size"]


def test_dev_fits_two_cpus_even_at_max_replicas():
    deployments = load(ROOT_DIR / "configs" / "dev.yaml")["applications"][0]["deployments"]
    total_max = sum(d["ray_actor_options"]["num_cpus"] * d["autoscaling_config"]["max_replicas"] for d in deployments)
    assert total_max <= 2
    assert all(d["ray_actor_options"].get("num_gpus", 0) == 0 for d in deployments)


def test_gpu_config_puts_models_on_gpu_fractions():
    config = load(ROOT_DIR / "configs" / "gpu.yaml")
    cfg = AppConfig.model_validate(config["applications"][0]["args"])
    deployments = {d["name"]: d for d in config["applications"][0]["deployments"]}
    assert all(m.device == "cuda" and m.compute_type == "float16" for m in cfg.models)
    assert cfg.diarization.device == "cuda" and cfg.diarization.source == "pyannote/speaker-diarization-community-1"
    gpus = {name: d["ray_actor_options"].get("num_gpus", 0) for name, d in deployments.items()}
    assert 0 < gpus["Diarizer"] < 1 and all(0 < gpus[m.deployment_name] < 1 for m in cfg.models)
    assert gpus["AudioDecoder"] == gpus["Merger"] == gpus["Ingress"] == 0
    # One replica of each GPU deployment shares one card.
    assert sum(gpus.values()) <= 1
