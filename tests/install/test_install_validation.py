"""Everything the chart renders, and the plain manifests, pass the API server's own validation
(server-side dry-run with strict field validation on the local cluster: exact schemas, admission)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from installkit import (
    MANIFESTS,
    MANIFESTS_ALL_NAMESPACES,
    NON_DEFAULT_VALUES,
    Doc,
    load_dir,
    relocate,
    render,
    to_yaml,
)


def served_api_versions(kubectl: Callable[..., str]) -> set[str]:
    return set(kubectl("api-versions").split())


def dry_run(kubectl: Callable[..., str], docs: list[Doc]) -> str:
    """`kubectl apply --dry-run=server --validate=strict`: unknown fields are errors, not warnings."""
    return kubectl("apply", "--dry-run=server", "--validate=strict", "-f", "-", input=to_yaml(docs))


@pytest.fixture
def other_namespaces(kubectl: Callable[..., str]) -> Iterator[list[str]]:
    names = [f"dry-run-team-{c}-{uuid.uuid4().hex[:5]}" for c in "ab"]
    for name in names:
        kubectl("create", "namespace", name)
    yield names
    for name in names:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.mark.parametrize("case", ["defaults", "non-default", "all-namespaces"])
def test_rendered_chart_passes_server_side_validation(
    case: str, helm: str, kubectl: Callable[..., str], namespace: str, other_namespaces: list[str]
) -> None:
    values: dict[str, Any] = {
        "defaults": {},
        "non-default": {**NON_DEFAULT_VALUES, "watchNamespaces": other_namespaces},
        "all-namespaces": {"allNamespaces": True},
    }[case]
    # A unique release name keeps cluster-scoped names (ClusterRoles) apart from real installations.
    docs = render(helm, values, release=f"dry-{uuid.uuid4().hex[:6]}", namespace=namespace)
    served = served_api_versions(kubectl)
    unserved = [d for d in docs if d["apiVersion"] not in served]
    # Only the prometheus-operator ServiceMonitor may be missing: the local cluster has no such CRD.
    assert {d["kind"] for d in unserved} <= {"ServiceMonitor"}
    out = dry_run(kubectl, [d for d in docs if d not in unserved])
    assert out.count("(server dry run)") == len(docs) - len(unserved), out


@pytest.mark.parametrize(
    "directory", [MANIFESTS, MANIFESTS_ALL_NAMESPACES], ids=["namespaced", "all-namespaces"]
)
def test_manifests_pass_server_side_validation(
    directory: Any, kubectl: Callable[..., str], namespace: str, other_namespaces: list[str]
) -> None:
    docs = relocate(load_dir(directory), namespace, suffix=f"-{namespace}", served=other_namespaces[0])
    out = dry_run(kubectl, docs)
    assert out.count("(server dry run)") == len(docs), out


def test_controller_pod_is_admitted_where_restricted_is_enforced(
    helm: str, kubectl: Callable[..., str], namespace: str
) -> None:
    """The Pod Security admission plugin itself judges the controller's pod template."""
    kubectl(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    kubectl("create", "serviceaccount", "kubedask-controller", "-n", namespace)
    deployment = next(d for d in render(helm, namespace=namespace) if d["kind"] == "Deployment")
    template = deployment["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "controller-admission-check",
            "namespace": namespace,
            "labels": template["metadata"]["labels"],
        },
        "spec": template["spec"],
    }
    # No warnings and no rejection: a dry-run create goes through admission in full.
    out = kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(pod), check=False)
    assert '"kind": "Pod"' in out and "violate" not in out and "Warning" not in out, out
    # And the check has teeth: the same pod without the restricted securityContext is refused.
    pod["spec"] = {**pod["spec"], "securityContext": {}}
    pod["spec"]["containers"] = [{**c, "securityContext": {}} for c in pod["spec"]["containers"]]
    out = kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert 'violates PodSecurity "restricted:latest"' in out, out
