"""The policy document: what admins write (YAML/JSON, camelCase keys), validated once at startup.

The global keys apply to every served namespace; ``namespaces: {team-a: {...}}`` replaces any of them for
one namespace. :meth:`Policy.for_namespace` gives the effective :class:`Rules` the checks read. Every
allowlist's default is closed: what a user may ask for beyond it is an admin's explicit choice.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from kubedask.spec import ServiceType
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Profile = Literal["baseline", "restricted", "privileged"]

#: Pod Security Standards control names (as the PSS page titles them, camelCased), for
#: ``podSecurityExemptions``. The first eleven are baseline's; restricted adds the rest and tightens
#: ``capabilities`` and ``seccomp``.
Control = Literal[
    "hostProcess", "hostNamespaces", "privileged", "capabilities", "hostPath", "hostPorts", "appArmor",
    "seLinux", "procMount", "seccomp", "sysctls",
    "volumeTypes", "privilegeEscalation", "runAsNonRoot", "runAsUser",
]

_NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DEFAULT_TOLERATIONS = ("k8s.dask.org/dedicated", "k8s.dask.org_dedicated", "nvidia.com/gpu")
DEFAULT_VOLUME_TYPES = ("emptyDir", "configMap", "downwardAPI")
#: Pod annotations known to grant nothing: read by Prometheus scraping the pod itself, by kubectl, by the
#: cluster autoscaler deciding whether it may evict the pod, and a domain nothing else trusts.
DEFAULT_POD_ANNOTATIONS = ("prometheus.io/*", "kubectl.kubernetes.io/default-container",
                           "cluster-autoscaler.kubernetes.io/safe-to-evict", "user.kubedask.io/*")
#: Pod and Service label keys allowed by default, under every profile: only the users' own domain. Labels
#: select pods into Services and NetworkPolicies (``run: payments`` receives another app's traffic), so
#: a key like any other would be a grant nobody chose.
DEFAULT_LABELS = ("user.kubedask.io/*",)
#: Scheduler Service annotations allowed by default: only the users' own domain. Nearly every other one is read
#: by a controller that acts outside the namespace (DNS records, cloud load balancers, address pools).
DEFAULT_SERVICE_ANNOTATIONS = ("user.kubedask.io/*",)


class Rules(BaseModel):
    """The effective policy for one namespace. Allowlists accept ``"*"`` for "anything"."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    profile: Profile = "baseline"
    pod_security_exemptions: tuple[Control, ...] = Field(default=(), alias="podSecurityExemptions")
    allowed_capabilities: tuple[str, ...] = Field(default=(), alias="allowedCapabilities")
    allowed_sysctls: tuple[str, ...] = Field(default=(), alias="allowedSysctls")
    allowed_service_accounts: tuple[str, ...] = Field(default=("default",), alias="allowedServiceAccounts")
    allowed_secrets: tuple[str, ...] = Field(default=(), alias="allowedSecrets")
    allow_service_account_token_projection: bool = Field(
        default=False, alias="allowServiceAccountTokenProjection")
    allow_service_account_token: bool = Field(default=False, alias="allowServiceAccountToken")
    allowed_volume_types: tuple[str, ...] = Field(default=DEFAULT_VOLUME_TYPES, alias="allowedVolumeTypes")
    allow_node_name: bool = Field(default=False, alias="allowNodeName")
    allowed_tolerations: tuple[str, ...] = Field(default=DEFAULT_TOLERATIONS, alias="allowedTolerations")
    allowed_priority_classes: tuple[str, ...] = Field(default=(), alias="allowedPriorityClasses")
    allowed_runtime_classes: tuple[str, ...] = Field(default=(), alias="allowedRuntimeClasses")
    allow_resource_claims: bool = Field(default=False, alias="allowResourceClaims")
    allowed_service_types: tuple[ServiceType, ...] = Field(default=("ClusterIP",), alias="allowedServiceTypes")
    allowed_pod_annotations: tuple[str, ...] = Field(default=DEFAULT_POD_ANNOTATIONS, alias="allowedPodAnnotations")
    allowed_pod_labels: tuple[str, ...] = Field(default=DEFAULT_LABELS, alias="allowedPodLabels")
    allowed_service_annotations: tuple[str, ...] = Field(default=DEFAULT_SERVICE_ANNOTATIONS,
                                                         alias="allowedServiceAnnotations")
    allowed_service_labels: tuple[str, ...] = Field(default=DEFAULT_LABELS, alias="allowedServiceLabels")
    max_workers: int = Field(default=1000, ge=0, alias="maxWorkers")
    max_clusters_per_namespace: int = Field(default=50, ge=0, alias="maxClustersPerNamespace")
    max_workers_per_namespace: int = Field(default=2000, ge=0, alias="maxWorkersPerNamespace")
    min_adapt_interval: float = Field(default=2.0, ge=0, alias="minAdaptInterval")

    @field_validator("allowed_pod_labels", "allowed_service_labels", mode="before")
    @classmethod
    def _null_labels(cls, value: Any) -> Any:
        # Earlier manifests and Helm values wrote null for "the profile's default" (then "*" under baseline):
        # such a policy keeps starting, with the one closed default.
        return DEFAULT_LABELS if value is None else value

    @field_validator("allowed_pod_annotations", "allowed_pod_labels", "allowed_service_annotations",
                     "allowed_service_labels")
    @classmethod
    def _key_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if not pattern or "*" in pattern[:-1]:
                # A "*" anywhere else would silently match nothing (it is not a glob).
                raise ValueError(f"{pattern!r} is not a key pattern: give an exact key, a prefix ending in "
                                 f"'*' (e.g. 'prometheus.io/*'), or '*' for any key")
        return value

    def exempt(self, control: str) -> bool:
        return control in self.pod_security_exemptions


class Policy(Rules):
    """The whole document: global rules plus per-namespace replacements."""

    namespaces: dict[str, Rules] = Field(default_factory=dict)

    @field_validator("namespaces")
    @classmethod
    def _namespace_names(cls, value: dict[str, Rules]) -> dict[str, Rules]:
        for name in value:
            if not _NAMESPACE_RE.match(name):
                # An override for a name no namespace can have would silently never apply.
                raise ValueError(f"{name!r} is not a namespace name (lower-case letters, digits and '-', "
                                 f"at most 63 characters)")
        return value

    def for_namespace(self, namespace: str) -> Rules:
        base = Rules.model_validate(self.model_dump(exclude={"namespaces"}))
        override = self.namespaces.get(namespace)
        if override is None:
            return base
        # Only what the override spells out replaces the global value; the rest stays global.
        return base.model_copy(update={name: getattr(override, name) for name in override.model_fields_set})


def key_of(field_name: str) -> str:
    """``allowed_secrets`` -> ``allowedSecrets``: the name admins write."""
    return Rules.model_fields[field_name].alias or field_name


# Keys of the first policy format, with what replaced them, so an old file fails with directions.
_REPLACED = {
    "allowPrivileged": "use 'podSecurityExemptions: [privileged]' or 'profile: privileged'",
    "allowHostNamespaces": "use 'podSecurityExemptions: [hostNamespaces, hostPorts]'",
    "allowHostPath": "use 'podSecurityExemptions: [hostPath]' and add hostPath to 'allowedVolumeTypes'",
    "allowPrivilegeEscalation": "'profile: baseline' allows it; under 'restricted' use "
                                "'podSecurityExemptions: [privilegeEscalation]'",
}
_ENV_PREFIX = "KUBEDASK_POLICY_"


def load_policy(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Policy:
    """The policy from an optional file, overridden key by key by ``KUBEDASK_POLICY_<KEY>`` variables
    (``KUBEDASK_POLICY_MAX_WORKERS=10``; lists comma-separated). Raises ``ValueError`` saying what is
    wrong, where, and what is allowed, so a bad policy stops the controller at start."""
    where = f"policy file {path}" if path else "policy"
    values: dict[str, Any] = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"invalid {where}: not valid YAML/JSON ({exc})") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"invalid {where}: it must hold a mapping of policy keys, not "
                             f"{type(loaded).__name__}")
        values.update(loaded)
    environ = os.environ if environ is None else environ
    for name, field in Policy.model_fields.items():
        alias = field.alias or name
        raw = environ.get(_ENV_PREFIX + name.upper())
        if raw is None or name == "namespaces":
            continue
        if "tuple" in str(field.annotation):
            values[alias] = tuple(s.strip() for s in raw.split(",") if s.strip())
        elif field.annotation in (bool, "bool"):
            values[alias] = raw.strip().lower() in ("1", "true", "yes", "on")
        else:
            values[alias] = raw.strip()
    try:
        return Policy.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(_explain(error) for error in exc.errors())
        raise ValueError(f"invalid {where}: {problems}") from None


def _explain(error: Any) -> str:
    loc = [str(part) for part in error["loc"]]
    # pydantic reports the value of a tuple item as e.g. ('allowedSecrets', 0): name the key.
    key = ".".join(p for p in loc if not p.isdigit())
    if error["type"] == "extra_forbidden":
        unknown = loc[-1]
        if unknown in _REPLACED:
            return f"key {key!r} is no longer used: {_REPLACED[unknown]}"
        known = [k for k in (f.alias or n for n, f in Policy.model_fields.items())
                 if k != "namespaces" or len(loc) == 1]
        close = difflib.get_close_matches(unknown, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {key!r}{hint}; known keys: {', '.join(known)}"
    return f"key {key!r} has value {error.get('input')!r}: {error['msg']}"
