"""A template's labels and annotations: what other cluster components act on, so a grant like a spec field.

Annotations opt a pod into webhooks and agents (Vault injects secrets, kube2iam hands out cloud roles, a
mesh sidecar is skipped); only those known to grant nothing pass by default (``allowedPodAnnotations``).
Labels select a pod into Services, NetworkPolicies and webhooks; any passes under ``baseline`` (the classic
``worker-spec.yml`` carries ``foo: bar``) except the keys below, which a ``"*"`` entry does not cover: an
admin must name each (``allowedPodLabels``). The AppArmor and seccomp annotations are Pod Security's to
decide (:mod:`.pss`).
"""

from __future__ import annotations

from collections.abc import Iterator

from kubedask.spec import PodTemplate

from .document import Rules, key_of
from .findings import Refusal, show
from .pss import APPARMOR_ANNOTATION, SECCOMP_ANNOTATIONS

_MESH = "it opts the pod into or out of the service mesh, whose policy guards the namespace's traffic"
_OWN = "the controller finds and tells apart its own pods by keys of this domain"
_IDENTITY = "an admission webhook would inject cloud credentials into the pod"

#: Label keys (a trailing ``*``: a prefix) refused unless an allowlist entry names them, with why.
SENSITIVE_POD_LABELS: dict[str, str] = {
    "azure.workload.identity/use": _IDENTITY,
    "aadpodidbinding": "AAD Pod Identity would hand the pod the Azure identity bound to that value",
    "admission.datadoghq.com/enabled": "the Datadog admission webhook would inject configuration into the pod",
    "sidecar.istio.io/inject": _MESH,
    "istio.io/rev": _MESH,
    "istio-injection": _MESH,
    "istio.io/dataplane-mode": _MESH,
    "istio.io/use-waypoint": _MESH,
    "security.istio.io/tlsMode": _MESH,
    "app.kubernetes.io/managed-by": _OWN,
    "kubedask.io/*": _OWN,
    "dask.org/*": _OWN,
}
#: Annotation keys a ``"*"`` entry does not cover either: the controller writes and reads these on its pods.
RESERVED_POD_ANNOTATIONS = ("kubedask.io/*", "dask.org/*")
# Why a known annotation is refused; others get the general reason.
_ANNOTATION_WHY = (
    ("vault.hashicorp.com/", "the Vault agent injector would put Vault secrets into the pod"),
    ("iam.amazonaws.com/", "kube2iam or kiam would hand the pod that AWS role's credentials"),
    ("sidecar.istio.io/", _MESH), ("traffic.sidecar.istio.io/", _MESH), ("proxy.istio.io/", _MESH),
    ("linkerd.io/", _MESH), ("config.linkerd.io/", _MESH), ("config.alpha.linkerd.io/", _MESH),
    ("kubedask.io/", _OWN), ("dask.org/", _OWN),
)
_ANNOTATIONS = ("other cluster components act on pod annotations (secret injection, cloud credentials, "
                "mesh bypass), and this one is not known to grant nothing")
_LABELS = "labels select pods into Services, NetworkPolicies and webhooks, and this key is not allowed"
_NOT_STAR = "; a '*' entry does not cover this key"


def matches(key: str, pattern: str) -> bool:
    """``pattern`` is ``"*"``, the key itself, or a prefix of it followed by ``*``."""
    return pattern == "*" or pattern == key or (pattern.endswith("*") and key.startswith(pattern[:-1]))


def check(template: PodTemplate, rules: Rules) -> Iterator[Refusal]:
    for name, value in template.annotations.items():
        if name.startswith((APPARMOR_ANNOTATION, *SECCOMP_ANNOTATIONS)):
            continue
        reserved = next((p for p in RESERVED_POD_ANNOTATIONS if matches(name, p)), None)
        if not _allowed(name, reserved, rules.allowed_pod_annotations):
            why = next((w for prefix, w in _ANNOTATION_WHY if name.startswith(prefix)), _ANNOTATIONS)
            yield _refusal(f"metadata.annotations[{name!r}]", name, value, why + (_NOT_STAR if reserved else ""),
                           "allowed_pod_annotations")
    for name, value in template.labels.items():
        sensitive = next((p for p in SENSITIVE_POD_LABELS if matches(name, p)), None)
        if not _allowed(name, sensitive, rules.pod_labels()):
            why = SENSITIVE_POD_LABELS[sensitive] + _NOT_STAR if sensitive else _LABELS
            yield _refusal(f"metadata.labels[{name!r}]", name, value, why, "allowed_pod_labels")


def _allowed(name: str, guarded_by: str | None, allowlist: tuple[str, ...]) -> bool:
    """Whether ``allowlist`` allows key ``name``; a guarded key only by the key itself or its guard pattern."""
    if guarded_by is None:
        return any(matches(name, pattern) for pattern in allowlist)
    return name in allowlist or guarded_by in allowlist


def _refusal(path: str, name: str, value: str, why: str, field: str) -> Refusal:
    return Refusal(path, value, why, key_of(field), f"add {show(name)} to", fix="Remove it")
