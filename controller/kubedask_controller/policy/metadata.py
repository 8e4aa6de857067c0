"""A template's labels and annotations: what other cluster components act on, so a grant like a spec field.

Annotations opt a pod into webhooks and agents (Vault injects secrets, kube2iam hands out cloud roles, a
mesh sidecar is skipped); only those known to grant nothing pass by default (``allowedPodAnnotations``).
Labels select a pod into Services (``run: payments`` receives that Service's traffic), NetworkPolicies and
webhooks; under every profile only ``user.kubedask.io/*`` passes by default (``allowedPodLabels``), so the
classic ``worker-spec.yml``'s ``foo: bar`` is refused with both fixes (rename it into that domain, or ask an
admin to allow ``foo``). The keys below are refused even when an admin allows ``"*"``: each must be named.
The AppArmor and seccomp annotations are Pod Security's to decide (:mod:`.pss`). :func:`refused_keys` is
shared with the scheduler Service's check (:mod:`.service`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from kubedask.spec import PodTemplate

from .document import Rules, key_of
from .findings import Refusal, show
from .pss import APPARMOR_ANNOTATION, SECCOMP_ANNOTATIONS

MESH = "it opts the pod into or out of the service mesh, whose policy guards the namespace's traffic"
OWN = "the controller finds and tells apart its own objects by keys of this domain"
_IDENTITY = "an admission webhook would inject cloud credentials into the pod"

#: Label keys (a trailing ``*``: a prefix) refused unless an allowlist entry names them, with why.
SENSITIVE_POD_LABELS: dict[str, str] = {
    "azure.workload.identity/use": _IDENTITY,
    "aadpodidbinding": "AAD Pod Identity would hand the pod the Azure identity bound to that value",
    "admission.datadoghq.com/enabled": "the Datadog admission webhook would inject configuration into the pod",
    "sidecar.istio.io/inject": MESH,
    "istio.io/rev": MESH,
    "istio-injection": MESH,
    "istio.io/dataplane-mode": MESH,
    "istio.io/use-waypoint": MESH,
    "security.istio.io/tlsMode": MESH,
    "app.kubernetes.io/managed-by": OWN,
    "kubedask.io/*": OWN,
    "dask.org/*": OWN,
}
#: Annotation keys a ``"*"`` entry does not cover either: the controller writes and reads these on its objects.
RESERVED_ANNOTATIONS: dict[str, str] = {"kubedask.io/*": OWN, "dask.org/*": OWN}
# Why a known annotation is refused; others get the general reason.
_ANNOTATION_WHY = (
    ("vault.hashicorp.com/", "the Vault agent injector would put Vault secrets into the pod"),
    ("iam.amazonaws.com/", "kube2iam or kiam would hand the pod that AWS role's credentials"),
    ("sidecar.istio.io/", MESH), ("traffic.sidecar.istio.io/", MESH), ("proxy.istio.io/", MESH),
    ("linkerd.io/", MESH), ("config.linkerd.io/", MESH), ("config.alpha.linkerd.io/", MESH),
)
_ANNOTATIONS = ("other cluster components act on pod annotations (secret injection, cloud credentials, "
                "mesh bypass), and this one is not known to grant nothing")
_LABELS = ("labels select pods into Services and NetworkPolicies (a pod labelled like another app's receives its "
           "traffic and passes its network rules) and webhooks act on them, and this key is not allowed")
#: The users' own label domain, allowed by default: a refused plain label can move there.
USER_DOMAIN = "user.kubedask.io/"
_NOT_STAR = "; a '*' entry does not cover this key"


def matches(key: str, pattern: str) -> bool:
    """``pattern`` is ``"*"``, the key itself, or a prefix of it followed by ``*``."""
    return pattern == "*" or pattern == key or (pattern.endswith("*") and key.startswith(pattern[:-1]))


def check(template: PodTemplate, rules: Rules) -> Iterator[Refusal]:
    annotations = {name: value for name, value in template.annotations.items()
                   if not name.startswith((APPARMOR_ANNOTATION, *SECCOMP_ANNOTATIONS))}
    yield from refused_keys("annotations", annotations, rules.allowed_pod_annotations, "allowed_pod_annotations",
                            RESERVED_ANNOTATIONS, _ANNOTATION_WHY, _ANNOTATIONS)
    yield from refused_keys("labels", template.labels, rules.allowed_pod_labels, "allowed_pod_labels",
                            SENSITIVE_POD_LABELS, (), _LABELS, renamable=True)


def refused_keys(part: str, keys: Mapping[str, str], allowlist: tuple[str, ...], field: str,
                 guarded: Mapping[str, str], known: tuple[tuple[str, str], ...], general: str,
                 renamable: bool = False) -> Iterator[Refusal]:
    """A refusal for each of the ``keys`` (of ``metadata.<part>``) that ``allowlist`` (policy ``field``) does
    not allow. A key matching a ``guarded`` pattern passes only by that pattern or its own name (not ``"*"``
    nor another prefix), refused with the guard's reason; others with the first ``known`` prefix's, else
    ``general``. ``renamable``: a key no component acts on (a label) may move to :data:`USER_DOMAIN`, and
    the refusal says so when the allowlist would pass the new name."""
    for name, value in keys.items():
        guard = next((pattern for pattern in guarded if matches(name, pattern)), None)
        fix = "Remove it"
        if guard is None:
            if any(matches(name, pattern) for pattern in allowlist):
                continue
            why = next((w for prefix, w in known if name.startswith(prefix)), general)
            renamed = USER_DOMAIN + name.rpartition("/")[2]
            if renamable and any(matches(renamed, pattern) for pattern in allowlist):
                fix = f"Rename it {show(renamed)} (or remove it)"
        elif name in allowlist or guard in allowlist:
            continue
        else:
            why = guarded[guard] + _NOT_STAR
        yield Refusal(f"metadata.{part}[{name!r}]", value, why, key_of(field), f"add {show(name)} to", fix=fix)
