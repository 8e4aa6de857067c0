"""A template's annotations and labels on the real API server: a Vault injection annotation, a cloud
identity label and a plain label that would select the workers into another app's Service are refused
(phase Failed, the message naming the template, the field, both fixes and the policy key, a Warning Event,
no pod) while a label the admin allows and one in the users' own domain pass; once the admin allowlists
them for the namespace, the restarted controller creates the pods, and the pods carry what was asked for.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from controller_harness import SIMULATED_NODES_POLICY, SIMULATED_TEMPLATE, Cluster, running_controller, wait_for

VAULT = {"vault.hashicorp.com/agent-inject": "true", "vault.hashicorp.com/role": "db-admin"}
IDENTITY = {"azure.workload.identity/use": "true"}


def template(annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    made = copy.deepcopy(SIMULATED_TEMPLATE)
    made["metadata"] = {"annotations": annotations or {}, "labels": labels or {}}
    return made


def assert_refused(cluster: Cluster, name: str, field: str, key: str) -> None:
    status = cluster.wait_phase(name, "Failed", timeout=120)
    assert status.message.startswith(f"policy violation in {field}"), status.message
    assert f"policy key {key}" in status.message and f"namespaces.{cluster.namespace}.{key}" in status.message
    events = wait_for(f"a Warning event on {name}", lambda: [
        e for e in cluster.events(name) if e.type == "Warning" and key in (e.message or "")])
    assert field.split(": ")[1] in events[0].message
    assert cluster.pods(name, include_deleting=True) == [], f"{name} got pods although refused"


def test_webhook_annotations_and_labels_are_refused_until_the_admin_allowlists_them(
        kubeconfig: str, namespace: str, api: Any, tmp_path: Path) -> None:
    cluster = Cluster(api, namespace)
    cluster.create_request("vault", worker_template=template(annotations=VAULT), workers=1)
    cluster.create_request("identity", worker_template=SIMULATED_TEMPLATE,
                           scheduler_template=template(labels=IDENTITY), workers=1)
    cluster.create_request("selector", worker_template=template(labels={"run": "payments"}), workers=1)
    cluster.create_request("plain", worker_template=template(labels={"foo": "bar", "user.kubedask.io/team": "a"}),
                           workers=1)

    before = tmp_path / "before"
    before.mkdir()
    for _ in running_controller(kubeconfig, [namespace], before, policy=SIMULATED_NODES_POLICY):
        assert_refused(cluster, "vault", "worker-template: metadata.annotations['vault.hashicorp.com/agent-inject']",
                       "allowedPodAnnotations")
        assert "metadata.annotations['vault.hashicorp.com/role']" in cluster.status("vault").message  # type: ignore[union-attr]
        assert_refused(cluster, "identity", "scheduler-template: metadata.labels['azure.workload.identity/use']",
                       "allowedPodLabels")
        # Labels are allowlisted under every profile: a key the admin did not allow is refused.
        assert_refused(cluster, "selector", "worker-template: metadata.labels['run']", "allowedPodLabels")
        message = cluster.status("selector").message  # type: ignore[union-attr]
        assert 'Rename it "user.kubedask.io/run"' in message and "Helm value policy.allowedPodLabels" in message
        # This cluster's admin allows worker-spec.yml's foo (the harness's policy); user.kubedask.io/ always passes.
        workers = cluster.wait_workers("plain", 1)
        assert [(p.metadata.labels["foo"], p.metadata.labels["user.kubedask.io/team"])
                for p in cluster.pods("plain", "worker")] == [("bar", "a")], workers

    after = tmp_path / "after"
    after.mkdir()
    policy = {**SIMULATED_NODES_POLICY, "namespaces": {namespace: {
        "allowedPodAnnotations": ["vault.hashicorp.com/*"], "allowedPodLabels": ["*", "azure.workload.identity/use"]}}}
    for _ in running_controller(kubeconfig, [namespace], after, policy=policy):
        cluster.wait_workers("vault", 1, timeout=120)
        for pod in cluster.pods("vault"):
            assert {k: pod.metadata.annotations.get(k) for k in VAULT} == VAULT, pod.metadata.name
        scheduler = wait_for("the identity request's scheduler", lambda: cluster.pods("identity", "scheduler"),
                             timeout=120)
        assert scheduler[0].metadata.labels["azure.workload.identity/use"] == "true"
        wait_for("the selector request's workers", lambda: cluster.pods("selector", "worker"), timeout=120)
        for name in ("vault", "identity", "selector"):
            def left_failed(name: str = name) -> bool:
                status = cluster.status(name)
                return status is not None and status.phase != "Failed"
            wait_for(f"{name} to leave phase Failed", left_failed)
