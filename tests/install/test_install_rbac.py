"""Least privilege, proven by the API server's authorizer: the chart's RBAC, applied to the local
cluster, lets the controller's ServiceAccount do what the controller does and nothing else, and lets
users request Dask clusters without any pod rights. (That the controller WORKS with exactly these
rights is proven by the install tests, which run it under them.)"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from installkit import (
    REPO,
    can_i,
    controller_container,
    one,
    one_worker_request,
    render,
    service_account,
    to_yaml,
)

# What the controller does in a namespace it serves (resource, verb).
CONTROLLER_NEEDS = [
    ("configmaps", "list"),
    ("configmaps", "watch"),
    ("configmaps", "patch"),
    ("configmaps", "delete"),
    ("pods", "get"),
    ("pods", "list"),
    ("pods", "watch"),
    ("pods", "create"),
    ("pods", "delete"),
    ("services", "get"),
    ("services", "list"),
    ("services", "watch"),
    ("services", "create"),
    ("services", "patch"),
    ("services", "delete"),
    ("poddisruptionbudgets.policy", "get"),
    ("poddisruptionbudgets.policy", "list"),
    ("poddisruptionbudgets.policy", "watch"),
    ("poddisruptionbudgets.policy", "create"),
    ("poddisruptionbudgets.policy", "delete"),
    ("pods/log", "get"),
    ("events", "create"),
]
# What it must never be able to do in a namespace it serves.
CONTROLLER_FORBIDDEN = [
    ("secrets", "get"),
    ("secrets", "list"),
    ("secrets", "watch"),
    ("configmaps", "create"),
    ("pods/exec", "create"),
    ("pods/attach", "create"),
    ("pods/portforward", "create"),
    ("pods", "update"),
    ("services", "update"),
    ("poddisruptionbudgets.policy", "patch"),
    ("deployments.apps", "create"),
    ("jobs.batch", "create"),
    ("persistentvolumeclaims", "create"),
    ("serviceaccounts/token", "create"),
    ("roles.rbac.authorization.k8s.io", "create"),
    ("rolebindings.rbac.authorization.k8s.io", "create"),
]
CLUSTER_FORBIDDEN = [
    ("nodes", "list"),
    ("namespaces", "list"),
    ("namespaces", "create"),
    ("secrets", "list"),
    ("clusterrolebindings.rbac.authorization.k8s.io", "create"),
    ("customresourcedefinitions.apiextensions.k8s.io", "create"),
    ("persistentvolumes", "create"),
]


class Install:
    """The chart's ServiceAccount and RBAC objects applied for real (no Deployment: nothing runs)."""

    def __init__(
        self, helm: str, kubectl: Callable[..., str], namespace: str, values: dict[str, Any]
    ) -> None:
        self.kubectl = kubectl
        self.release = f"rbac-{uuid.uuid4().hex[:6]}"
        self.namespace = namespace
        docs = render(helm, values, release=self.release, namespace=namespace)
        self.all_docs = docs
        self.docs = [
            d
            for d in docs
            if d["kind"]
            in ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "Lease")
        ]
        kubectl("apply", "-f", "-", input=to_yaml(self.docs))
        self.controller = service_account(namespace, f"{self.release}-kubedask-controller")
        self.lease = f"{self.release}-kubedask-controller"
        self.user_role = f"{self.release}-kubedask-user"

    def delete(self) -> None:
        self.kubectl(
            "delete", "--ignore-not-found", "--wait=false", "-f", "-", input=to_yaml(self.docs), check=False
        )


def scratch_namespace(kubectl: Callable[..., str], role: str) -> Iterator[str]:
    """Generator body for fixtures: a new namespace ``rbac-ROLE-xxxxx``, deleted (without waiting) after."""
    name = f"rbac-{role}-{uuid.uuid4().hex[:5]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def other_namespace(kubectl: Callable[..., str]) -> Iterator[str]:
    yield from scratch_namespace(kubectl, "other")


@pytest.fixture
def watched_namespace(kubectl: Callable[..., str]) -> Iterator[str]:
    yield from scratch_namespace(kubectl, "watched")


@pytest.fixture
def namespaced_install(
    helm: str, kubectl: Callable[..., str], namespace: str, watched_namespace: str
) -> Iterator[Install]:
    install = Install(helm, kubectl, namespace, {"watchNamespaces": [watched_namespace]})
    yield install
    install.delete()


@pytest.fixture
def cluster_install(helm: str, kubectl: Callable[..., str], namespace: str) -> Iterator[Install]:
    install = Install(helm, kubectl, namespace, {"allNamespaces": True})
    yield install
    install.delete()


def denied(
    kubectl: Callable[..., str], who: str, checks: list[tuple[str, str]], namespace: str | None
) -> list[str]:
    return [
        f"{verb} {resource}" for resource, verb in checks if can_i(kubectl, who, verb, resource, namespace)
    ]


def allowed(
    kubectl: Callable[..., str], who: str, checks: list[tuple[str, str]], namespace: str | None
) -> list[str]:
    return [
        f"{verb} {resource}"
        for resource, verb in checks
        if not can_i(kubectl, who, verb, resource, namespace)
    ]


def test_namespaced_controller_acts_only_in_the_namespace_it_serves(
    namespaced_install: Install, kubectl: Callable[..., str], watched_namespace: str, other_namespace: str
) -> None:
    sa = namespaced_install.controller
    assert allowed(kubectl, sa, CONTROLLER_NEEDS, watched_namespace) == [], "missing rights where it serves"
    assert denied(kubectl, sa, CONTROLLER_FORBIDDEN, watched_namespace) == [], "more rights than it needs"
    # Neither in a namespace it doesn't serve, nor in its own (which only holds its Lease) ...
    for namespace in (other_namespace, namespaced_install.namespace):
        assert denied(kubectl, sa, CONTROLLER_NEEDS + CONTROLLER_FORBIDDEN, namespace) == [], namespace
    # ... nor anywhere at cluster scope.
    assert denied(kubectl, sa, CONTROLLER_NEEDS + CLUSTER_FORBIDDEN, None) == []


def test_controller_may_renew_only_its_own_lease(
    namespaced_install: Install, kubectl: Callable[..., str]
) -> None:
    sa, ns, lease = namespaced_install.controller, namespaced_install.namespace, namespaced_install.lease
    assert can_i(kubectl, sa, "get", "leases.coordination.k8s.io", ns, name=lease)
    assert can_i(kubectl, sa, "update", "leases.coordination.k8s.io", ns, name=lease)
    assert can_i(kubectl, sa, "create", "leases.coordination.k8s.io", ns)
    assert not can_i(kubectl, sa, "get", "leases.coordination.k8s.io", ns, name="kube-scheduler")
    assert not can_i(kubectl, sa, "update", "leases.coordination.k8s.io", ns, name="someone-else")
    assert not can_i(kubectl, sa, "delete", "leases.coordination.k8s.io", ns, name=lease)
    assert not can_i(kubectl, sa, "list", "leases.coordination.k8s.io", ns)
    assert not can_i(kubectl, sa, "update", "leases.coordination.k8s.io", "kube-system", name=lease)


def test_cluster_wide_controller_serves_every_namespace_but_still_no_secrets(
    cluster_install: Install, kubectl: Callable[..., str], other_namespace: str
) -> None:
    sa = cluster_install.controller
    assert allowed(kubectl, sa, CONTROLLER_NEEDS, other_namespace) == []
    assert allowed(kubectl, sa, CONTROLLER_NEEDS, None) == []  # every namespace at once
    assert denied(kubectl, sa, CONTROLLER_FORBIDDEN, other_namespace) == []
    assert denied(kubectl, sa, CLUSTER_FORBIDDEN, None) == []


def test_user_role_lets_a_user_run_dask_clusters_without_pod_rights(
    namespaced_install: Install, kubectl: Callable[..., str], watched_namespace: str, other_namespace: str
) -> None:
    user = "alice@example.com"
    kubectl(
        "create",
        "rolebinding",
        "dask-users",
        "-n",
        watched_namespace,
        f"--clusterrole={namespaced_install.user_role}",
        f"--user={user}",
    )
    needs = [("configmaps", v) for v in ("create", "get", "list", "watch", "update", "patch", "delete")]
    needs += [(r, v) for r in ("pods", "services") for v in ("get", "list", "watch")]
    needs += [
        ("pods/log", "get"),
        ("pods/portforward", "create"),
        ("pods/portforward", "get"),
        ("events", "list"),
    ]
    forbidden = [
        ("pods", "create"),
        ("pods", "delete"),
        ("pods", "patch"),
        ("pods/exec", "create"),
        ("services", "create"),
        ("secrets", "get"),
        ("secrets", "list"),
        ("poddisruptionbudgets.policy", "create"),
        ("rolebindings.rbac.authorization.k8s.io", "create"),
    ]
    assert allowed(kubectl, user, needs, watched_namespace) == []
    assert denied(kubectl, user, forbidden, watched_namespace) == []
    # The binding is per namespace: nothing elsewhere.
    assert denied(kubectl, user, needs, other_namespace) == []


REQUEST = one_worker_request("rbac-check")


def test_controller_works_with_exactly_the_chart_rbac(
    namespaced_install: Install,
    kubectl: Callable[..., str],
    watched_namespace: str,
    user_kubeconfig: Callable[[str, str], str],
    tmp_path: Path,
) -> None:
    """The controller, run with the chart's own arguments and only its ServiceAccount's token, serves a
    request: scheduler pod, Service, PDB and status appear, and nothing it tried was forbidden. (Pods
    stay Pending here: this test needs no real node.)"""
    install = namespaced_install
    policy = tmp_path / "policy.yaml"
    policy.write_text(one(install.all_docs, "ConfigMap")["data"]["policy.yaml"])
    container = controller_container(install.all_docs)
    args = [a for a in container["args"] if not a.startswith(("--health-port", "--metrics-port", "--policy"))]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    log_path = tmp_path / "controller.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kubedask_controller",
                *args,
                f"--policy={policy}",
                "--health-port=0",
                "--metrics-port=0",
            ],
            env={
                **os.environ,
                **env,
                "POD_NAMESPACE": install.namespace,
                "POD_NAME": "rbac-check",
                "KUBECONFIG": user_kubeconfig(install.namespace, install.controller.rpartition(":")[2]),
                "PYTHONPATH": f"{REPO}/client:{REPO}/controller",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            kubectl("apply", "-n", watched_namespace, "-f", "-", input=REQUEST)
            for obj in (
                "pod/rbac-check-scheduler",
                "service/rbac-check-scheduler",
                "poddisruptionbudget.policy/rbac-check-scheduler",
            ):
                kubectl("wait", "-n", watched_namespace, "--for=create", obj, "--timeout=30s")
            kubectl(
                "wait",
                "-n",
                watched_namespace,
                "configmap/rbac-check",
                "--timeout=30s",
                "--for=jsonpath={.metadata.annotations.kubedask\\.io/status}",
            )
        except AssertionError as exc:
            status = kubectl("get", "-n", watched_namespace, "configmap/rbac-check", "-o", "yaml", check=False)
            log_tail = log_path.read_text(errors="replace")[-4000:]
            raise AssertionError(f"{exc}\nrequest:\n{status}\ncontroller log (tail):\n{log_tail}") from None
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    log_text = log_path.read_text(errors="replace")
    assert "Forbidden" not in log_text and "403" not in log_text, log_text[-3000:]
