"""The scheduler Service's annotations on the real API server: a request whose ``scheduler-service-template``
asks external-dns for a DNS name is refused (phase Failed, the message naming the key, why and the policy key,
a Warning Event, no Service and no pod) while one with a ``user.kubedask.io/`` annotation runs; once the admin
allowlists the annotation for the namespace, the restarted controller creates the Service carrying it, and a
live edit adding another refused annotation fails the request again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller_harness import SIMULATED_NODES_POLICY, Cluster, dump, running_controller, wait_for

DNS = "external-dns.alpha.kubernetes.io/hostname"
FIELD = f"scheduler-service-template: metadata.annotations[{DNS!r}]"
KEY = "allowedServiceAnnotations"


def service_of(cluster: Cluster, name: str) -> Any:
    found = cluster.core.list_namespaced_service(cluster.namespace, field_selector=f"metadata.name={name}-scheduler")
    return found.items[0] if found.items else None


def test_an_external_dns_annotation_is_refused_until_the_admin_allowlists_it_for_the_namespace(
        kubeconfig: str, namespace: str, api: Any, tmp_path: Path) -> None:
    cluster = Cluster(api, namespace)
    cluster.create_request("dns", workers=1, scheduler_service_template={
        "metadata": {"annotations": {DNS: "dask.example.com", "user.kubedask.io/owner": "ana"}}})
    cluster.create_request("owned", workers=0, scheduler_service_template={
        "metadata": {"annotations": {"user.kubedask.io/owner": "ana"}}})

    before = tmp_path / "before"
    before.mkdir()
    for _ in running_controller(kubeconfig, [namespace], before, policy=SIMULATED_NODES_POLICY):
        status = cluster.wait_phase("dns", "Failed", timeout=120)
        assert status.message.startswith(f'policy violation in {FIELD} is "dask.example.com": external-dns would '
                                         f"publish the DNS name"), status.message
        assert f'add "{DNS}" to policy key {KEY}' in status.message
        assert f"namespaces.{namespace}.{KEY}" in status.message
        events = wait_for("a Warning event on dns", lambda: [
            e for e in cluster.events("dns") if e.type == "Warning" and KEY in (e.message or "")])
        assert DNS in events[0].message
        # The users' own domain passes by default: that request gets its Service.
        owned = wait_for("the Service of the request without a refused key", lambda: service_of(cluster, "owned"))
        assert owned.metadata.annotations["user.kubedask.io/owner"] == "ana"
        assert service_of(cluster, "dns") is None
        assert cluster.pods("dns", include_deleting=True) == [], "dns got pods although refused"

    after = tmp_path / "after"
    after.mkdir()
    policy = {**SIMULATED_NODES_POLICY, "namespaces": {namespace: {KEY: ["user.kubedask.io/*", DNS]}}}
    for _ in running_controller(kubeconfig, [namespace], after, policy=policy):
        service = wait_for("the allowed Service", lambda: service_of(cluster, "dns"), timeout=120)
        assert service.metadata.annotations[DNS] == "dask.example.com"
        assert service.metadata.annotations["user.kubedask.io/owner"] == "ana"
        cluster.wait_workers("dns", 1, timeout=120)
        wait_for("dns to leave phase Failed", lambda: (s := cluster.status("dns")) is not None and s.phase != "Failed")

        # A live edit is checked too: an annotation the namespace was not given fails the request, and never
        # reaches the Service.
        pool = "metallb.universe.tf/address-pool"
        cluster.patch_data("dns", {"scheduler-service-template": dump(
            {"metadata": {"annotations": {DNS: "dask.example.com", pool: "public"}}})})
        status = cluster.wait_phase("dns", "Failed")
        assert status.message.startswith(f"policy violation in scheduler-service-template: metadata.annotations"
                                         f"[{pool!r}]"), status.message
        assert pool not in (service_of(cluster, "dns").metadata.annotations or {})
