"""What a request may ask for: the controller creates pods on users' behalf, so it is a deputy.

Users who may only write ConfigMaps must not gain more through the controller than the policy allows.
The defaults refuse privileged containers, host namespaces, hostPath volumes, added capabilities and
any service account outside an allowed list. A template can never pick another namespace; that rule is
not configurable.

Admins change the policy with a YAML/JSON file (``--policy FILE``) and/or environment variables
(``KUBEDASK_POLICY_<FIELD>``; lists are comma-separated), e.g.::

    allowPrivileged: false
    allowHostNamespaces: false
    allowHostPath: false
    allowedCapabilities: [NET_BIND_SERVICE]
    allowedServiceAccounts: [default, dask]
    maxWorkers: 500
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from kubedask.spec import ClusterRequest, PodTemplate, RequestError
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Policy(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    allow_privileged: bool = Field(default=False, alias="allowPrivileged")
    allow_host_namespaces: bool = Field(default=False, alias="allowHostNamespaces")
    allow_host_path: bool = Field(default=False, alias="allowHostPath")
    allow_privilege_escalation: bool = Field(default=True, alias="allowPrivilegeEscalation")
    #: Capabilities a container may add; "*" allows any.
    allowed_capabilities: tuple[str, ...] = Field(default=(), alias="allowedCapabilities")
    #: serviceAccountName values a template may use ("" / unset always means the namespace default).
    allowed_service_accounts: tuple[str, ...] = Field(default=("default",), alias="allowedServiceAccounts")
    max_workers: int = Field(default=1000, ge=0, alias="maxWorkers")


class PolicyViolation(RequestError):
    """A request asks for something the policy refuses."""


_ENV_PREFIX = "KUBEDASK_POLICY_"


def load_policy(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Policy:
    """The policy from an optional file, overridden field by field by environment variables."""
    values: dict[str, Any] = {}
    if path:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"policy file {path} must hold a mapping of policy fields")
        values.update(loaded)
    environ = os.environ if environ is None else environ
    for field_name, field in Policy.model_fields.items():
        alias = field.alias or field_name
        env_name = _ENV_PREFIX + _snake(alias).upper()
        if env_name in environ:
            raw = environ[env_name]
            if field.annotation in (bool, "bool"):
                values[alias] = raw.strip().lower() in ("1", "true", "yes", "on")
            elif "tuple" in str(field.annotation):
                values[alias] = tuple(s.strip() for s in raw.split(",") if s.strip())
            else:
                values[alias] = raw
    try:
        return Policy.model_validate(values)
    except ValidationError as exc:
        raise ValueError(f"invalid policy: {exc}") from None


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def check_request(request: ClusterRequest, policy: Policy) -> None:
    """Raise :class:`PolicyViolation` naming the first thing the policy refuses."""
    workers = max(request.workers, request.adapt.maximum if request.adapt else 0)
    if workers > policy.max_workers:
        which = "adapt maximum" if request.adapt and request.adapt.maximum == workers else "workers"
        raise PolicyViolation(
            f"the request asks for {workers} workers ({which}); this controller's policy allows at most "
            f"{policy.max_workers} per cluster.", key="workers")
    templates = [("worker-template", request.worker_template)]
    if request.scheduler_template is not None:
        templates.append(("scheduler-template", request.scheduler_template))
    for key, template in templates:
        check_template(template, policy, key)


def check_template(template: PodTemplate, policy: Policy, key: str) -> None:
    def refuse(what: str, fix: str) -> PolicyViolation:
        return PolicyViolation(f"policy violation in {key!r}: {what} is not allowed by this controller's "
                               f"policy; {fix}.", key=key)

    if template.namespace is not None:
        raise refuse(f"metadata.namespace ({template.namespace!r})",
                     "remove it: pods are always created in the request's namespace")
    spec = template.spec
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field) and not policy.allow_host_namespaces:
            raise refuse(f"spec.{field}: true", f"remove {field}")
    for i, volume in enumerate(spec.get("volumes") or []):
        if isinstance(volume, dict) and "hostPath" in volume and not policy.allow_host_path:
            raise refuse(f"hostPath volume {volume.get('name', i)!r}", "use an emptyDir or a PVC instead")
    account = spec.get("serviceAccountName") or spec.get("serviceAccount")
    if account and account not in policy.allowed_service_accounts:
        allowed = ", ".join(policy.allowed_service_accounts) or "none"
        raise refuse(f"serviceAccountName {account!r}", f"use one of: {allowed}, or leave it out")
    pod_security = spec.get("securityContext") or {}
    if isinstance(pod_security, dict) and pod_security.get("sysctls") and not policy.allow_privileged:
        raise refuse("spec.securityContext.sysctls", "remove the sysctls")
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for i, container in enumerate(spec.get(group) or []):
            if not isinstance(container, dict):
                continue
            where = f"{group}[{i}] ({container.get('name', '?')})"
            security = container.get("securityContext") or {}
            if not isinstance(security, dict):
                continue
            if security.get("privileged") and not policy.allow_privileged:
                raise refuse(f"{where}.securityContext.privileged: true", "remove privileged")
            if security.get("allowPrivilegeEscalation") and not policy.allow_privilege_escalation:
                raise refuse(f"{where}.securityContext.allowPrivilegeEscalation: true",
                             "remove allowPrivilegeEscalation")
            added = _added_capabilities(security)
            refused = [c for c in added if c not in policy.allowed_capabilities
                       and "*" not in policy.allowed_capabilities]
            if refused:
                raise refuse(f"{where} adding capabilities {', '.join(refused)}",
                             "remove securityContext.capabilities.add")
            for port in container.get("ports") or []:
                if isinstance(port, dict) and port.get("hostPort") and not policy.allow_host_namespaces:
                    raise refuse(f"{where} hostPort {port['hostPort']}", "remove hostPort")


def _added_capabilities(security: Mapping[str, Any]) -> Iterable[str]:
    capabilities = security.get("capabilities") or {}
    if not isinstance(capabilities, dict):
        return []
    return [str(c).upper().removeprefix("CAP_") for c in capabilities.get("add") or []]


# --- the admission interface (shared with the loop) ----------------------------------------------------

import dataclasses  # noqa: E402


@dataclasses.dataclass(frozen=True)
class NamespaceUsage:
    """What other, older, admitted requests of the same namespace already hold."""

    clusters: int = 0
    workers: int = 0


def worker_claim(request: ClusterRequest) -> int:
    """The most workers a request may run: its worker count or its adapt maximum, whichever is larger."""
    return max(request.workers, request.adapt.maximum if request.adapt else 0)


def admit(request: ClusterRequest, policy: Policy, namespace: str,
          usage: NamespaceUsage = NamespaceUsage()) -> ClusterRequest:
    """The request to run, or :class:`PolicyViolation` naming what the policy refuses."""
    del namespace, usage  # the per-namespace rules arrive with the policy package
    check_request(request, policy)
    return request
