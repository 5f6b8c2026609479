"""Generate the KubeRay manifests from the Serve configs, so that they can never drift apart.

    python k8s/generate.py          # (re)write the generated files below
    python k8s/generate.py --check  # exit 1 if the files differ from what the configs give

Writes k8s/overlays/{prod,dev}/rayservice.yaml and k8s/base/networkpolicy.yaml.

prod embeds configs/gpu.yaml verbatim as serveConfigV2. dev embeds configs/dev.yaml with one change:
Serve's HTTP proxy listens on 0.0.0.0, because inside a pod 127.0.0.1 is unreachable from the Service.

Security (see README, "Deploy on Kubernetes (KubeRay)"):
- no key value anywhere in k8s/: the Secret `serve-app-secrets` is created by the user, never shipped;
- Ray token auth (`authOptions: {mode: token}`): the dashboard and job API (8265), GCS (6379) and the
  client server (10001) refuse requests without the cluster's token, which KubeRay generates per RayCluster;
- a NetworkPolicy admits ingress to the Ray pods on the Serve port only, all other ports only from the same
  RayService's Ray pods (plus the two narrow exceptions in `networkpolicy()`);
- every container runs as the image's `ray` user (uid 1000), without privilege escalation or capabilities,
  under the RuntimeDefault seccomp profile, with an ephemeral-storage request and limit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from serve_app import proxy  # noqa: E402
from serve_app.config import LimitsConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NAME = "speech"  # the RayService; KubeRay names its head Service `speech-head-svc`, the Serve one `speech-serve-svc`
RAY_VERSION = "2.60.0"  # the pinned ray (pyproject.toml); the image is built FROM rayproject/ray:<this>
IMAGE = "ghcr.io/example/serve-app:0.1.0"  # set by `kustomize edit set image` in a real deployment
SECRET = "serve-app-secrets"  # created by the user (README); k8s/ ships no Secret
MODEL_CACHE = "serve-app-model-cache"

SERVE_PORT = 8000
DASHBOARD_PORT = 8265  # dashboard and job submission API
GCS_PORT = 6379
CLIENT_PORT = 10001  # Ray client (ray://)
METRICS_PORT = 8080

# The pods of a RayService's cluster carry `ray.io/cluster: speech-<5 random chars>`: the RayCluster's
# name, which KubeRay generates and replaces on every upgrade that starts a new cluster, so a static
# NetworkPolicy cannot select by it. Both pod templates carry this label instead (KubeRay copies template
# labels onto the pods); `ray.io/is-ray-node` is set by KubeRay on every Ray pod it creates.
POD_LABELS = {"serve-app/rayservice": NAME}
RAY_PODS = {**POD_LABELS, "ray.io/is-ray-node": "yes"}
# The KubeRay operator's pods (its Helm chart and kustomize manifests label them so), in whatever namespace
# it runs. A RayService cannot work without it reaching the head's dashboard port: it submits serveConfigV2
# and reads the applications' status through the dashboard API (with the cluster's token).
OPERATOR_PODS = {"app.kubernetes.io/name": "kuberay-operator"}
# Prometheus pods as the Prometheus Operator (kube-prometheus-stack) labels them, in any namespace: a scrape
# of Ray's metrics port (README, "Metrics") needs ingress on 8080. Change it to your Prometheus's labels.
PROMETHEUS_PODS = {"app.kubernetes.io/name": "prometheus"}

RAY_UID = 1000  # the `ray` user of rayproject/ray (and so of our image, which ends with `USER ray`)

# ephemeral-storage: Ray keeps its session directory (/tmp/ray: logs of every process, the object store's
# spill files when shared memory fills up) on the container's writable layer, which counts against it.
# - head: GCS, dashboard, Serve controller and autoscaler logs, no replicas (num-cpus 0), so little
#   spilling: 10Gi.
# - workers: replica logs plus object spilling of uploads and decoded audio (a 500 MB upload is several
#   objects on its way through the graph): 20Gi.
# The hub cache is on the PVC (/models), not here. Request = limit, so that a pod is only scheduled onto a
# node with that much disk free, and is evicted (not the node starved) if Ray writes past it.
HEAD_EPHEMERAL = "10Gi"
WORKER_EPHEMERAL = "20Gi"
AUTOSCALER_EPHEMERAL = "1Gi"  # the autoscaler sidecar only writes its log


def _container_security() -> dict:
    # Not readOnlyRootFilesystem: Ray writes its session directory under /tmp and runtime files under $HOME.
    return {
        "runAsNonRoot": True,
        "runAsUser": RAY_UID,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


def _pod_security() -> dict:
    return {
        "runAsNonRoot": True,
        "runAsUser": RAY_UID,
        # The model cache volume becomes group-writable for the ray user; chown it only when its root does
        # not match yet, not through the whole (large) cache on every pod start.
        "fsGroup": RAY_UID,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _env(proxy_env: dict[str, str]) -> list[dict]:
    # Values of keys only by reference to the user's Secret. KubeRay adds RAY_AUTH_MODE and RAY_AUTH_TOKEN
    # (from the Secret it generates) to the Ray containers and its wait-gcs-ready init container.
    return [
        {"name": "PYANNOTE_METRICS_ENABLED", "value": "0"},
        {"name": "HF_HOME", "value": "/models/hf"},
        # Ray's proxy drops its control headers from clients and bounds request bodies with the Serve
        # config's upload limits (serve_app/proxy.py).
        *({"name": k, "value": v} for k, v in proxy_env.items()),
        {"name": "SERVE_APP_API_KEYS", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "SERVE_APP_API_KEYS"}}},
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "HF_TOKEN", "optional": True}}},
    ]


def _pod(resources: dict, ephemeral: str, proxy_env: dict[str, str], *, ports: bool = False) -> dict:
    resources = {**resources, "ephemeral-storage": ephemeral}
    container = {
        "name": "ray",
        "image": IMAGE,
        "env": _env(proxy_env),
        "resources": {"requests": resources, "limits": resources},
        # KubeRay copies this to the wait-gcs-ready init container it injects into worker pods.
        "securityContext": _container_security(),
        "volumeMounts": [{"name": "model-cache", "mountPath": "/models"}],
    }
    if ports:
        container["ports"] = [
            {"containerPort": GCS_PORT, "name": "gcs"},
            {"containerPort": DASHBOARD_PORT, "name": "dashboard"},
            {"containerPort": CLIENT_PORT, "name": "client"},
            {"containerPort": SERVE_PORT, "name": "serve"},
            {"containerPort": METRICS_PORT, "name": "metrics"},
        ]
    return {
        "metadata": {"labels": dict(POD_LABELS)},
        "spec": {
            "securityContext": _pod_security(),
            "containers": [container],
            "volumes": [{"name": "model-cache", "persistentVolumeClaim": {"claimName": MODEL_CACHE}}],
        },
    }


def rayservice(serve_config: str, *, gpu: bool) -> dict:
    worker = {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"} if gpu else {"cpu": "2", "memory": "8Gi"}
    autoscaler = {"cpu": "500m", "memory": "512Mi", "ephemeral-storage": AUTOSCALER_EPHEMERAL}
    limits = LimitsConfig.of_serve_config(yaml.safe_load(serve_config))
    proxy_env = proxy.environment(limits)
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": NAME},
        "spec": {
            "serveConfigV2": serve_config,
            "rayClusterConfig": {
                "rayVersion": RAY_VERSION,
                # Ray token auth (Ray >= 2.52, KubeRay >= 1.5.1): KubeRay generates a random token in a Secret
                # named after the RayCluster and sets RAY_AUTH_MODE/RAY_AUTH_TOKEN in every Ray container.
                "authOptions": {"mode": "token"},
                "enableInTreeAutoscaling": True,
                # The autoscaler sidecar KubeRay adds to the head (our image, so the same uid).
                "autoscalerOptions": {
                    "resources": {"requests": autoscaler, "limits": autoscaler},
                    "securityContext": _container_security(),
                },
                "headGroupSpec": {
                    # The head runs the controller and GCS, no replicas. The dashboard listens on all
                    # interfaces because the operator reaches it through the head Service; the token and the
                    # NetworkPolicy guard it.
                    "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
                    "template": _pod({"cpu": "2", "memory": "8Gi"}, HEAD_EPHEMERAL, proxy_env, ports=True),
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "gpu-workers" if gpu else "cpu-workers",
                        "replicas": 1,
                        "minReplicas": 1,
                        "maxReplicas": 4 if gpu else 2,
                        "rayStartParams": {},
                        "template": _pod(worker, WORKER_EPHEMERAL, proxy_env),
                    }
                ],
            },
        },
    }


def networkpolicy() -> dict:
    """Ingress to the RayService's Ray pods (head and workers, every cluster it starts).

    Egress is left alone (the pods need DNS, the hub, the API server for the autoscaler). Traffic from the
    pod's own node is always allowed (Kubernetes' NetworkPolicy rule), so the kubelet's probes of the dashboard
    agent (52365) pass; kubectl port-forward goes through the kubelet too, not the pod network."""

    def tcp(*ports: int) -> list[dict]:
        return [{"protocol": "TCP", "port": p} for p in ports]

    def anywhere(labels: dict) -> dict:
        return {"namespaceSelector": {}, "podSelector": {"matchLabels": dict(labels)}}

    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"{NAME}-ray-pods"},
        "spec": {
            "podSelector": {"matchLabels": dict(RAY_PODS)},
            "policyTypes": ["Ingress"],
            "ingress": [
                # The Serve HTTP proxy (the API; its own API keys): from anywhere.
                {"ports": tcp(SERVE_PORT)},
                # Everything else (GCS 6379, dashboard and job API 8265, client 10001, raylet, object
                # manager, dashboard agent, worker ports): only from this RayService's own Ray pods.
                {"from": [{"podSelector": {"matchLabels": dict(RAY_PODS)}}]},
                # The KubeRay operator: the dashboard API only (serveConfigV2, application status).
                {"from": [anywhere(OPERATOR_PODS)], "ports": tcp(DASHBOARD_PORT)},
                # Prometheus: the metrics port only, for its scrape.
                {"from": [anywhere(PROMETHEUS_PODS)], "ports": tcp(METRICS_PORT)},
            ],
        },
    }


def serve_config_text(name: str) -> str:
    text = (ROOT / "configs" / name).read_text()
    if name == "dev.yaml":
        config = yaml.safe_load(text)
        config["http_options"]["host"] = "0.0.0.0"
        text = yaml.safe_dump(config, sort_keys=False)
    return text


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data) -> bool:
        return True  # requests and limits written out, not as `&id001` / `*id001`


def _block_strings(dumper: yaml.SafeDumper, value: str):
    # serveConfigV2 as a readable `|` block, not one escaped line.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _block_strings)


def _dump(manifest: dict) -> str:
    return yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, width=120)


def rendered() -> dict[Path, str]:
    header = "# Generated by k8s/generate.py from {}: edit that file, then run the script.\n"
    out = {}
    for overlay, config, gpu in (("prod", "gpu.yaml", True), ("dev", "dev.yaml", False)):
        body = _dump(rayservice(serve_config_text(config), gpu=gpu))
        out[ROOT / "k8s" / "overlays" / overlay / "rayservice.yaml"] = header.format(f"configs/{config}") + body
    policy_header = "# Generated by k8s/generate.py (networkpolicy()): edit that function, then run the script.\n"
    out[ROOT / "k8s" / "base" / "networkpolicy.yaml"] = policy_header + _dump(networkpolicy())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    stale = [p for p, text in rendered().items() if not p.exists() or p.read_text() != text]
    if args.check:
        if stale:
            print("out of date: " + ", ".join(str(p.relative_to(ROOT)) for p in stale), file=sys.stderr)
            sys.exit(1)
        return
    for path, text in rendered().items():
        path.write_text(text)


if __name__ == "__main__":
    main()
