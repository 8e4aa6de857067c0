"""Deputy rules: what a pod creator could do that a ConfigMap writer must not gain through the controller.

Pod Security says nothing about these. Each is refused under every profile (``privileged`` too) unless
the admin's allowlist names it: Secrets, service-account tokens (mounted or projected), volume types, node
placement, priority and runtime classes, resource claims.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .document import Rules, key_of
from .findings import Refusal, containers, items, mapping, show, volume_sources

#: Volume types whose permission comes from what they hold: a ``secret`` volume is a Secret reference
#: (``allowedSecrets``), a ``projected`` one is allowed when each of its sources is.
_BY_CONTENT = ("secret", "projected")


def check(spec: dict[str, Any], rules: Rules) -> Iterator[Refusal]:
    yield from _secrets(spec, rules)
    yield from _service_accounts(spec, rules)
    yield from _volumes(spec, rules)
    yield from _placement(spec, rules)
    yield from _resource_claims(spec, rules)


def allowed(name: Any, allowlist: tuple[str, ...]) -> bool:
    return "*" in allowlist or (isinstance(name, str) and name in allowlist)


def _list_refusal(path: str, value: Any, why: str, field: str) -> Refusal:
    return Refusal(path, value, why, key_of(field), f"add {show(value)} to" if isinstance(value, str)
                   else "add the name to")


def secret_references(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """``(path, name)`` for every Secret a pod spec names, wherever it does: the walk is generic so
    that a field Kubernetes adds later (another ``...SecretRef``) is found too."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from secret_references(item, f"{path}[{i}]")
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        where = f"{path}.{key}"
        if key == "imagePullSecrets":
            for i, ref in enumerate(items(value)):
                yield f"{where}[{i}].name", mapping(ref).get("name")
        elif key in ("secretRef", "secretKeyRef") or key.endswith("SecretRef"):
            yield f"{where}.name", mapping(value).get("name")
        elif key == "secretName":
            yield where, value
        elif key == "secret" and isinstance(value, dict) and "secretName" not in value:
            yield f"{where}.name", value.get("name")  # a projected volume's secret source
        else:
            yield from secret_references(value, where)


def _secrets(spec: dict[str, Any], rules: Rules) -> Iterator[Refusal]:
    for path, name in secret_references(spec, "spec"):
        if not allowed(name, rules.allowed_secrets):
            yield _list_refusal(path, name, "referencing a Secret would hand its contents to the pod's "
                                "user", "allowed_secrets")


def _service_accounts(spec: dict[str, Any], rules: Rules) -> Iterator[Refusal]:
    for field in ("serviceAccountName", "serviceAccount"):
        account = spec.get(field)
        if account not in (None, "") and not allowed(account, rules.allowed_service_accounts):
            yield _list_refusal(f"spec.{field}", account, "the pod would run with that service account's "
                                "rights", "allowed_service_accounts")
    # The controller mounts no token unless a template asks; allowing a service account does not imply its
    # token (an account's rights may be meant for the pod's identity elsewhere, e.g. a cloud's workload
    # identity): an admin allows both.
    if spec.get("automountServiceAccountToken") is True and not rules.allow_service_account_token:
        yield Refusal("spec.automountServiceAccountToken", True, "its user could call the API server as that "
                      "service account", key_of("allow_service_account_token"), "set true",
                      fix="Remove it (the controller mounts no token)")
    if rules.allow_service_account_token_projection:
        return
    for path, _type, source in volume_sources(spec):
        if _type != "projected":
            continue
        for i, projection in enumerate(items(mapping(source).get("sources"))):
            token = mapping(projection).get("serviceAccountToken")
            if token is not None:
                yield Refusal(f"{path}.sources[{i}].serviceAccountToken", token,
                              "projected service-account tokens are credentials for the API server",
                              key_of("allow_service_account_token_projection"), "set true")


def _volumes(spec: dict[str, Any], rules: Rules) -> Iterator[Refusal]:
    why = "this volume type is not in the allowed list"
    for path, _type, source in volume_sources(spec):
        if _type not in _BY_CONTENT and not allowed(_type, rules.allowed_volume_types):
            yield _list_refusal(path, _type, why, "allowed_volume_types")
        if _type != "projected":
            continue
        for i, projection in enumerate(items(mapping(source).get("sources"))):
            for kind in mapping(projection):
                # Secrets and tokens have their own rules (above); the rest are volume types.
                if kind not in ("secret", "serviceAccountToken") and not allowed(kind, rules.allowed_volume_types):
                    yield _list_refusal(f"{path}.sources[{i}].{kind}", kind, why, "allowed_volume_types")


def _placement(spec: dict[str, Any], rules: Rules) -> Iterator[Refusal]:
    if spec.get("nodeName") not in (None, "") and not rules.allow_node_name:
        yield Refusal("spec.nodeName", spec["nodeName"], "picking a node bypasses the scheduler and taints",
                      key_of("allow_node_name"), "set true")
    for i, toleration in enumerate(items(spec.get("tolerations"))):
        key = mapping(toleration).get("key") or ""
        if not key:
            # No key with operator Exists tolerates every taint: only the wildcard allows that.
            if "*" not in rules.allowed_tolerations:
                yield Refusal(f"spec.tolerations[{i}]", toleration, "a toleration without a key tolerates "
                              "every taint", key_of("allowed_tolerations"), "add '*' to")
        elif not allowed(key, rules.allowed_tolerations):
            yield _list_refusal(f"spec.tolerations[{i}].key", key, "tolerating this taint would place pods on "
                                "nodes kept for others", "allowed_tolerations")
    for field, rule, why in (
            ("priorityClassName", "allowed_priority_classes", "a priority class can preempt other workloads"),
            ("runtimeClassName", "allowed_runtime_classes", "a runtime class changes how containers are "
             "isolated")):
        value = spec.get(field)
        if value not in (None, "") and not allowed(value, getattr(rules, rule)):
            yield _list_refusal(f"spec.{field}", value, why, rule)


def _resource_claims(spec: dict[str, Any], rules: Rules) -> Iterator[Refusal]:
    if rules.allow_resource_claims:
        return
    why = "resource claims allocate devices the namespace's quota does not cover"
    if items(spec.get("resourceClaims")):
        yield Refusal("spec.resourceClaims", spec["resourceClaims"], why, key_of("allow_resource_claims"),
                      "set true")
    for path, container in containers(spec):
        claims = mapping(container.get("resources")).get("claims")
        if items(claims):
            yield Refusal(f"{path}.resources.claims", claims, why, key_of("allow_resource_claims"), "set true")
