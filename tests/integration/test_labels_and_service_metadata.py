"""On the real API server: request labels under ``user.kubedask.io/`` reach every object of the cluster and
follow live edits on the Service; keys dropped from ``scheduler-service-template`` leave the Service while
keys someone else set there stay."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from controller_harness import SIMULATED_NODES_POLICY, SIMULATED_TEMPLATE, Cluster, ControllerProcess, dump, wait_for
from kubedask.spec import build_request_configmap, build_request_data

TEAM = "user.kubedask.io/team"
APPLIED = "kubedask.io/applied-keys"


@pytest.fixture
def controller_policy() -> dict[str, Any]:
    """The admin allows the Service annotations and labels the templates use (both are allowlisted)."""
    return {**SIMULATED_NODES_POLICY,
            "allowedServiceAnnotations": ["user.kubedask.io/*", "lb.example.com/*", "keep.example.com/*"],
            "allowedServiceLabels": ["user.kubedask.io/*", "team", "tier"]}


def service_of(cluster: Cluster, name: str) -> Any:
    found = cluster.core.list_namespaced_service(cluster.namespace, field_selector=f"metadata.name={name}-scheduler")
    return found.items[0] if found.items else None


def labels_of(obj: Any) -> dict[str, str]:
    return dict(obj.metadata.labels or {}) if obj is not None else {}


def test_prefixed_request_labels_reach_every_object_and_live_edits_reach_the_service(
        controller: ControllerProcess, cluster: Cluster, namespace: str, kubectl: Callable[..., str]) -> None:
    # Only the prefixed label propagates; a plain one could match a NetworkPolicy or another Service.
    body = build_request_configmap("labelled", namespace, build_request_data(
        worker_template=SIMULATED_TEMPLATE, workers=2), labels={TEAM: "risk", "team": "plain"})
    cluster.core.create_namespaced_config_map(namespace, body)
    old_workers = set(cluster.wait_workers("labelled", 2))
    cluster.wait_phase("labelled", "Running", requested=2)

    pods = cluster.pods("labelled")
    pdb = cluster.policy.read_namespaced_pod_disruption_budget("labelled-scheduler", namespace)
    owned = {**{p.metadata.name: p for p in pods}, "Service": service_of(cluster, "labelled"), "PDB": pdb}
    assert len(pods) == 3, [p.metadata.name for p in pods]
    for what, obj in owned.items():
        assert labels_of(obj).get(TEAM) == "risk", what
        assert "team" not in labels_of(obj), what
        assert labels_of(obj)["app.kubernetes.io/managed-by"] == "kubedask", what

    # A live edit: the Service is patched; running pods keep their labels, new ones get the new value.
    kubectl("label", "cm", "labelled", "-n", namespace, f"{TEAM}=fraud", "--overwrite")
    wait_for("the Service to carry the edited label", lambda: labels_of(service_of(cluster, "labelled")).get(TEAM)
             == "fraud")
    cluster.patch_data("labelled", {"workers": "3"})
    new = set(cluster.wait_workers("labelled", 3)) - old_workers
    assert len(new) == 1
    for pod in cluster.pods("labelled", "worker"):
        assert labels_of(pod)[TEAM] == ("fraud" if pod.metadata.name in new else "risk"), pod.metadata.name

    # Removed from the request: removed from the Service.
    kubectl("label", "cm", "labelled", "-n", namespace, f"{TEAM}-")
    wait_for("the label to leave the Service", lambda: TEAM not in labels_of(service_of(cluster, "labelled")))
    assert labels_of(service_of(cluster, "labelled"))["dask.org/cluster-name"] == "labelled"


def test_keys_dropped_from_the_service_template_leave_the_service_and_foreign_keys_stay(
        controller: ControllerProcess, cluster: Cluster, namespace: str, kubectl: Callable[..., str]) -> None:
    template = {"metadata": {"annotations": {"lb.example.com/internal": "true", "keep.example.com/x": "1"},
                             "labels": {"team": "a", "tier": "batch"}}}
    cluster.create_request("svcmeta", workers=0, scheduler_service_template=template)
    found = wait_for("the Service with the template", lambda: (s := service_of(cluster, "svcmeta")) is not None
                     and (s.metadata.annotations or {}).get("lb.example.com/internal") == "true" and s)
    assert labels_of(found)["team"] == "a"
    # What a cloud controller does after creation: its own annotation and label on the Service.
    cluster.core.patch_namespaced_service("svcmeta-scheduler", namespace, {"metadata": {
        "annotations": {"cloud.example.com/lb-id": "lb-123"}, "labels": {"cloud.example.com/zone": "z1"}}})

    template = {"metadata": {"annotations": {"keep.example.com/x": "2"}, "labels": {"tier": "batch"}}}
    kubectl("patch", "cm", "svcmeta", "-n", namespace, "-p",
            json.dumps({"data": {"scheduler-service-template": dump(template)}}))

    def dropped() -> Any:
        service = service_of(cluster, "svcmeta")
        annotations = service.metadata.annotations or {}
        gone = "lb.example.com/internal" not in annotations and "team" not in labels_of(service)
        return service if gone and annotations.get("keep.example.com/x") == "2" else None

    service = wait_for("the dropped keys to leave the Service", dropped)
    annotations = service.metadata.annotations
    assert annotations["cloud.example.com/lb-id"] == "lb-123"
    assert labels_of(service)["cloud.example.com/zone"] == "z1" and labels_of(service)["tier"] == "batch"
    assert json.loads(annotations[APPLIED]) == {"annotations": ["keep.example.com/x"], "labels": ["tier"]}
    assert labels_of(service)["dask.org/component"] == "scheduler"
    assert service.spec.selector["dask.org/cluster-name"] == "svcmeta"

