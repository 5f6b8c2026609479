"""The KubeRay manifests: generated from the Serve configs (no drift), valid against the RayService CRD
that KubeRay 1.7.0 ships, with a serveConfigV2 that Ray's own schema accepts."""

import subprocess
import sys

import jsonschema
import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from serve_app.app import build_app
from tests.support import ROOT_DIR

# KubeRay 1.7.0's RayService CRD (a copy of ../shared/kuberay/, so that CI has it).
CRD = ROOT_DIR / "tests" / "data" / "kuberay" / "ray.io_rayservices.v1.7.0.yaml"
OVERLAYS = {"prod": "gpu.yaml", "dev": "dev.yaml"}


def rayservice(overlay: str) -> dict:
    return yaml.safe_load((ROOT_DIR / "k8s" / "overlays" / overlay / "rayservice.yaml").read_text())


@pytest.fixture(scope="module")
def crd_schema() -> dict:
    crd = yaml.safe_load(CRD.read_text())
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return v1["schema"]["openAPIV3Schema"]


def test_manifests_match_the_configs():
    result = subprocess.run([sys.executable, str(ROOT_DIR / "k8s" / "generate.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_prod_serve_config_is_exactly_the_gpu_config():
    assert rayservice("prod")["spec"]["serveConfigV2"] == (ROOT_DIR / "configs" / "gpu.yaml").read_text()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rayservice_is_valid_against_the_crd(crd_schema, overlay):
    manifest = rayservice(overlay)
    jsonschema.validate(manifest, crd_schema)
    # and the schema really constrains: a wrong type is refused
    broken = yaml.safe_load(yaml.safe_dump(manifest))
    broken["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"] = "yes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, crd_schema)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rayservice_shape(overlay):
    spec = rayservice(overlay)["spec"]
    cluster = spec["rayClusterConfig"]
    pinned = next(line for line in (ROOT_DIR / "pyproject.toml").read_text().splitlines() if '"ray[serve]==' in line)
    assert cluster["rayVersion"] == pinned.split("==")[1].split('"')[0]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    (workers,) = cluster["workerGroupSpecs"]
    assert workers["minReplicas"] < workers["maxReplicas"]
    limits = workers["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert ("nvidia.com/gpu" in limits) == (overlay == "prod")
    for pod in (cluster["headGroupSpec"]["template"], workers["template"]):
        container = pod["spec"]["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        assert env["PYANNOTE_METRICS_ENABLED"]["value"] == "0"
        assert env["SERVE_APP_API_KEYS"]["valueFrom"]["secretKeyRef"]["name"] == "serve-app-secrets"
        assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "serve-app-secrets"
        assert container["volumeMounts"][0]["mountPath"] == "/models"
    # serveConfigV2 parses as a Serve config and builds the app.
    serve_config = yaml.safe_load(spec["serveConfigV2"])
    ServeDeploySchema.model_validate(serve_config)
    build_app(serve_config["applications"][0]["args"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kustomizations_name_files_that_exist(overlay):
    for folder in (ROOT_DIR / "k8s" / "base", ROOT_DIR / "k8s" / "overlays" / overlay):
        kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
        for resource in kustomization["resources"]:
            assert (folder / resource).exists(), f"{folder}/{resource}"
        for resource in kustomization["resources"]:
            path = folder / resource
            if path.is_file():
                for doc in yaml.safe_load_all(path.read_text()):
                    assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"]
