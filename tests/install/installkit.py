"""Shared helpers for the install tests: rendering the chart, reading the manifests, asking RBAC."""

from __future__ import annotations

import copy
import json
import subprocess
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "kubedask"
MANIFESTS = REPO / "manifests"
MANIFESTS_ALL_NAMESPACES = MANIFESTS / "all-namespaces"

Doc = dict[str, Any]

# Values that exercise every optional branch of the templates at once.
NON_DEFAULT_VALUES: dict[str, Any] = {
    "fullnameOverride": "dask-control",
    "image": {
        "repository": "registry.example.com/kubedask-controller",
        "tag": "0.1.0-rc1",
        "pullPolicy": "Always",
    },
    "imagePullSecrets": [{"name": "regcred"}],
    "replicas": 2,
    "watchNamespaces": ["team-a", "team-b"],
    "serviceAccount": {
        "create": True,
        "name": "dask-controller",
        "annotations": {"iam.example.com/role": "x"},
    },
    "logLevel": "debug",
    "policy": {
        "profile": "restricted",
        "podSecurityExemptions": ["hostPath"],
        "allowedCapabilities": ["NET_BIND_SERVICE"],
        "allowedSysctls": ["net.ipv4.tcp_keepalive_time"],
        "allowedServiceAccounts": ["default", "dask"],
        "allowedSecrets": ["s3-creds"],
        "allowServiceAccountTokenProjection": True,
        "allowServiceAccountToken": True,
        "allowedVolumeTypes": ["emptyDir", "configMap", "downwardAPI", "persistentVolumeClaim"],
        "allowNodeName": True,
        "allowedTolerations": ["k8s.dask.org/dedicated", "example.com/spot"],
        "allowedPriorityClasses": ["dask-low"],
        "allowedRuntimeClasses": ["gvisor"],
        "allowResourceClaims": True,
        "allowedServiceTypes": ["ClusterIP", "LoadBalancer"],
        "allowedPodAnnotations": ["prometheus.io/*", "vault.hashicorp.com/agent-inject"],
        "allowedPodLabels": ["*", "sidecar.istio.io/inject"],
        "allowedServiceAnnotations": ["user.kubedask.io/*", "service.beta.kubernetes.io/aws-load-balancer-internal"],
        "allowedServiceLabels": ["*", "mirror.linkerd.io/exported"],
        "maxWorkers": 200,
        "maxClustersPerNamespace": 5,
        "maxWorkersPerNamespace": 400,
        "minAdaptInterval": 10,
        "namespaces": {
            "team-a": {"allowedSecrets": ["s3-creds", "db-read"], "maxWorkers": 50},
            "team-b": {"profile": "baseline", "allowedServiceTypes": ["ClusterIP"]},
        },
    },
    "metrics": {
        "enabled": True,
        "service": {"annotations": {"prometheus.io/scrape": "true"}},
        "serviceMonitor": {
            "enabled": True,
            "interval": "15s",
            "scrapeTimeout": "5s",
            "labels": {"release": "prometheus"},
        },
    },
    "resources": {"requests": {"cpu": "50m", "memory": "200Mi"}, "limits": {"memory": "300Mi"}},
    "podAnnotations": {"example.com/team": "data"},
    "podLabels": {"example.com/cost-centre": "42"},
    "nodeSelector": {"kubernetes.io/os": "linux", "node-role.example.com/infra": "true"},
    "tolerations": [{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 1,
                    "preference": {
                        "matchExpressions": [{"key": "node-role.example.com/infra", "operator": "Exists"}]
                    },
                }
            ]
        }
    },
    "priorityClassName": "system-cluster-critical",
    "extraEnv": [{"name": "KUBEDASK_RESYNC_INTERVAL", "value": "120"}],
    "extraArgs": ["--resync-interval=120"],
}

# Labels and annotations that only Helm adds; the plain manifests carry everything else.
HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")
HELM_ONLY_POD_ANNOTATIONS = ("checksum/policy",)


def package_version() -> str:
    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


def helm_run(
    helm: str, *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([helm, *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def set_args(values: Mapping[str, Any] | None) -> list[str]:
    """`--set-json key=value` for each value (JSON keeps types: lists, booleans, numbers)."""
    args: list[str] = []
    for key, value in (values or {}).items():
        args += ["--set-json", f"{key}={json.dumps(value)}"]
    return args


def render(
    helm: str, values: Mapping[str, Any] | None = None, release: str = "kubedask", namespace: str = "kubedask"
) -> list[Doc]:
    """`helm template` the chart; the documents, in Helm's install order."""
    out = helm_run(helm, "template", release, str(CHART), "--namespace", namespace, *set_args(values)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def render_text(
    helm: str, values: Mapping[str, Any] | None = None, release: str = "kubedask", namespace: str = "kubedask"
) -> str:
    return helm_run(helm, "template", release, str(CHART), "--namespace", namespace, *set_args(values)).stdout


def load_dir(path: Path) -> list[Doc]:
    """Every document of every .yaml file directly in `path`, in `kubectl apply -f` order."""
    docs: list[Doc] = []
    for file in sorted(path.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(file.read_text()) if d]
    return docs


def key(doc: Doc) -> tuple[str, str, str]:
    return doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]


def by_key(docs: Iterable[Doc]) -> dict[tuple[str, str, str], Doc]:
    return {key(d): d for d in docs}


def find(docs: Iterable[Doc], kind: str, name: str | None = None) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: Iterable[Doc], kind: str, name: str | None = None) -> Doc:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[key(d) for d in found]}"
    return found[0]


def controller_container(docs: Iterable[Doc]) -> Doc:
    deployment = one(docs, "Deployment")
    return dict(deployment["spec"]["template"]["spec"]["containers"][0])


def without_helm_bookkeeping(doc: Doc) -> Doc:
    """The object as the plain manifests carry it: no Helm-only labels, checksums or policy formatting."""
    doc = copy.deepcopy(doc)
    for meta in _metadatas(doc):
        labels = meta.get("labels") or {}
        for label in HELM_ONLY_LABELS:
            labels.pop(label, None)
        annotations = meta.get("annotations") or {}
        for annotation in HELM_ONLY_POD_ANNOTATIONS:
            annotations.pop(annotation, None)
        if "annotations" in meta and not meta["annotations"]:
            del meta["annotations"]
    if doc["kind"] == "ConfigMap" and "policy.yaml" in doc.get("data", {}):
        # Compared by meaning: the manifests' copy carries comments, the chart's is toYaml output.
        doc["data"]["policy.yaml"] = yaml.safe_load(doc["data"]["policy.yaml"])
    return doc


def _metadatas(doc: Doc) -> list[Doc]:
    metas = [doc.setdefault("metadata", {})]
    template = doc.get("spec", {}).get("template") if isinstance(doc.get("spec"), dict) else None
    if isinstance(template, dict):
        metas.append(template.setdefault("metadata", {}))
    return metas


def relocate(
    docs: Iterable[Doc],
    namespace: str,
    suffix: str,
    served: str | None = None,
    old_namespace: str = "kubedask",
    old_served: str = "default",
) -> list[Doc]:
    """The manifests moved to `namespace` (the controller's) and `served` (the one it serves, when
    given), with cluster-scoped names suffixed: what an admin does with kustomize's `namespace:` and
    `nameSuffix:`, so a test never collides with a real installation."""
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    moves = {old_namespace: namespace, **({old_served: served} if served else {})}
    out = []
    for doc in copy.deepcopy(list(docs)):
        meta = doc["metadata"]
        if doc["kind"] == "Namespace":
            meta["name"] = moves.get(meta["name"], meta["name"])
        elif doc["kind"] in cluster_scoped:
            meta["name"] += suffix
        elif meta.get("namespace") in moves:
            meta["namespace"] = moves[meta["namespace"]]
        if doc["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            for subject in doc.get("subjects", []):
                if subject.get("namespace") in moves:
                    subject["namespace"] = moves[subject["namespace"]]
            if doc["roleRef"]["kind"] == "ClusterRole":
                doc["roleRef"]["name"] += suffix
        if doc["kind"] == "Deployment":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            container["args"] = [
                f"--namespace={moves[a.partition('=')[2]]}"
                if a.startswith("--namespace=") and a.partition("=")[2] in moves
                else a
                for a in container["args"]
            ]
        out.append(doc)
    return out


def served_namespaces(docs: Iterable[Doc]) -> list[str] | None:
    """The namespaces the rendered controller serves (its --namespace flags); None for all of them."""
    args = controller_container(docs)["args"]
    if "--all-namespaces" in args:
        return None
    return [a.partition("=")[2] for a in args if a.startswith("--namespace=")]


def to_yaml(docs: Iterable[Doc]) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False)


def can_i(
    kubectl: Callable[..., str],
    who: str,
    verb: str,
    resource: str,
    namespace: str | None = None,
    name: str | None = None,
) -> bool:
    """`kubectl auth can-i`, impersonating `who` (e.g. system:serviceaccount:NS:NAME). `resource` may
    name a subresource (pods/log); `namespace=None` asks about every namespace at once."""
    resource, _, subresource = resource.partition("/")  # pods/log: a subresource, not a name
    args = ["auth", "can-i", verb, resource if name is None else f"{resource}/{name}", "--as", who]
    args += ["--subresource", subresource] if subresource else []
    args += ["--namespace", namespace] if namespace else ["--all-namespaces"]
    out = kubectl(*args, check=False).strip().splitlines()
    answer = out[0].strip() if out else ""
    assert answer in ("yes", "no"), f"kubectl auth can-i {verb} {resource} -> {out}"
    return answer == "yes"


def service_account(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


# A freshly installed controller pulls nothing but may take a while on 2 busy cores: wait generously.
PATIENT_CLIENT_CONFIG = {
    "kubernetes.scheduler-service-wait-timeout": 180,
    "kubernetes.controller-timeout": 60,
    "distributed.comm.timeouts.connect": "60s",
}


def small_worker_spec() -> Any:
    """make_pod_spec sized so that a few workers fit the local cluster's 2-core node."""
    from kubedask import make_pod_spec

    return make_pod_spec(
        image="ghcr.io/dask/dask:latest", memory_limit="1G", memory_request="256M", cpu_limit=1, cpu_request="100m"
    )


def one_worker_request(name: str) -> str:
    """A minimal request ConfigMap (YAML for ``kubectl apply``): one small worker, the local image."""
    return f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  labels: {{kubedask.io/request: cluster}}
data:
  workers: "1"
  worker-template: |
    kind: Pod
    spec:
      containers:
      - name: dask-worker
        image: ghcr.io/dask/dask:latest
        args: [dask-worker, --nthreads, "1"]
"""
