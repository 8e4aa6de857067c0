"""The runner's own Kubernetes calls (the admin identity): namespaces, parallel creates, pod counts.

Responses are read as raw JSON (``_preload_content=False``): counting 1000 pods once a second must not
cost more client CPU than the thing being measured.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from .processes import wait_until

Manifest = dict[str, Any]
USER_AGENT = "kubedask-benchmark/1"
DASK_GROUP = "kubernetes.dask.org"
#: A LIST answered with each object's metadata alone (PartialObjectMetadataList).
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


@dataclasses.dataclass(frozen=True)
class PodCounts:
    live: int  # not being deleted
    running: int  # live and phase Running
    deleting: int

    def converged(self, target: int) -> bool:
        """Exactly ``target`` live pods, all Running (terminating ones may still be on their way out)."""
        return self.live == target and self.running == target


def count_pods(items: Iterable[Mapping[str, Any]]) -> PodCounts:
    live = running = deleting = 0
    for pod in items:
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            deleting += 1
            continue
        live += 1
        if (pod.get("status") or {}).get("phase") == "Running":
            running += 1
    return PodCounts(live=live, running=running, deleting=deleting)


class Kube:
    def __init__(self, kubeconfig: str, threads: int = 32) -> None:
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration)
        configuration.connection_pool_maxsize = threads
        self.api_client = kubernetes.client.ApiClient(configuration)
        self.api_client.user_agent = USER_AGENT
        # Typed as Any: every call passes plain dicts and reads raw JSON, which the stubs don't model.
        self.core: Any = kubernetes.client.CoreV1Api(self.api_client)
        self.custom: Any = kubernetes.client.CustomObjectsApi(self.api_client)
        self.rbac: Any = kubernetes.client.RbacAuthorizationV1Api(self.api_client)
        self.apps: Any = kubernetes.client.AppsV1Api(self.api_client)
        self.threads = threads

    def close(self) -> None:
        self.api_client.close()  # type: ignore[no-untyped-call]

    # --- namespaces ---
    def create_namespace(self, name: str) -> None:
        try:
            self.core.create_namespace({"metadata": {"name": name, "labels": {"kubedask.io/benchmark": "1"}}})
        except ApiException as exc:
            if exc.status != 409:
                raise

    def namespace_exists(self, name: str) -> bool:
        try:
            self.core.read_namespace(name, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def delete_namespace(self, name: str, timeout: float | None = None) -> None:
        """Delete; with ``timeout``, wait until it is gone so the next measurement starts on a quiet API."""
        try:
            self.core.delete_namespace(name, _preload_content=False)
        except ApiException as exc:
            if exc.status != 404:
                raise
        if timeout:
            wait_until(f"namespace {name} to be deleted", lambda: not self.namespace_exists(name),
                       timeout, 2.0)

    # --- objects ---
    def create(self, manifest: Manifest) -> None:
        namespace = manifest["metadata"]["namespace"]
        kind = manifest["kind"]
        if kind == "Pod":
            self.core.create_namespaced_pod(namespace, manifest, _preload_content=False)
        elif kind == "ConfigMap":
            self.core.create_namespaced_config_map(namespace, manifest, _preload_content=False)
        elif kind == "DaskCluster":
            group, version = manifest["apiVersion"].split("/")
            self.custom.create_namespaced_custom_object(group, version, namespace, "daskclusters", manifest,
                                                        _preload_content=False)
        else:
            raise ValueError(f"the runner does not create {kind}")

    def create_many(self, manifests: Sequence[Manifest]) -> list[BaseException]:
        """Create in parallel (the raw baseline's whole method); return the failures."""
        with concurrent.futures.ThreadPoolExecutor(self.threads) as pool:
            futures = [pool.submit(self.create, m) for m in manifests]
            return [e for f in futures if (e := f.exception()) is not None]

    def delete_pods(self, namespace: str, names: Sequence[str]) -> list[BaseException]:
        with concurrent.futures.ThreadPoolExecutor(self.threads) as pool:
            futures = [pool.submit(self.core.delete_namespaced_pod, n, namespace, _preload_content=False)
                       for n in names]
            return [e for f in futures if (e := f.exception()) is not None]

    def strip_dask_finalizers(self, namespace: str) -> int:
        """Let a namespace go whose operator objects still carry Kopf's finalizer (operator gone)."""
        stripped = 0
        for plural in ("daskclusters", "daskworkergroups", "daskjobs", "daskautoscalers"):
            try:
                items = self.custom.list_namespaced_custom_object(DASK_GROUP, "v1", namespace, plural)
            except ApiException:
                continue  # CRD not installed
            for item in items.get("items") or []:
                if item["metadata"].get("finalizers"):
                    self.custom.patch_namespaced_custom_object(
                        DASK_GROUP, "v1", namespace, plural, item["metadata"]["name"],
                        {"metadata": {"finalizers": None}})
                    stripped += 1
        return stripped

    def patch_configmap(self, namespace: str, name: str, patch: Manifest) -> None:
        self.core.patch_namespaced_config_map(name, namespace, patch, _preload_content=False)

    def patch_daskcluster(self, namespace: str, name: str, patch: Manifest) -> None:
        self.custom.patch_namespaced_custom_object("kubernetes.dask.org", "v1", namespace, "daskclusters",
                                                   name, patch, _preload_content=False)

    def list_pods(self, namespace: str, selector: str = "") -> list[Manifest]:
        response = self.core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False)
        return list(json.loads(response.data).get("items") or [])

    def pod_counts(self, namespace: str, selector: str) -> PodCounts:
        return count_pods(self.list_pods(namespace, selector))

    def pod_counts_light(self, namespace: str, selector: str) -> PodCounts:
        """:meth:`pod_counts` from two metadata-only LISTs (all pods; those the server finds Running): at
        10,000 pods a full LIST per poll would cost the API server and this process more than it measures."""
        def names(field_selector: str) -> dict[str, bool]:
            response = self.core.list_namespaced_pod(
                namespace, label_selector=selector, field_selector=field_selector, _preload_content=False,
                _headers={"Accept": METADATA_ONLY})
            return {i["metadata"]["name"]: bool(i["metadata"].get("deletionTimestamp"))
                    for i in json.loads(response.data).get("items") or []}

        every, running = names(""), names("status.phase=Running")
        deleting = sum(every.values())
        return PodCounts(live=len(every) - deleting, deleting=deleting,
                         running=sum(1 for name, gone in running.items() if not gone))

    def count_owned_workloads(self, namespace: str, selector: str) -> int:
        """Deployments plus ReplicaSets matching ``selector`` (the operator's per-worker objects)."""
        total = 0
        for call in (self.apps.list_namespaced_deployment, self.apps.list_namespaced_replica_set):
            response = call(namespace, label_selector=selector, _preload_content=False)
            total += len(json.loads(response.data).get("items") or [])
        return total

    def node_names(self, selector: str = "type=kwok") -> list[str]:
        response = self.core.list_node(label_selector=selector, _preload_content=False)
        return [n["metadata"]["name"] for n in json.loads(response.data).get("items") or []]

    def ready_real_nodes(self) -> list[str]:
        """Nodes a kubelet runs (no KWOK annotation) that are Ready."""
        response = self.core.list_node(_preload_content=False)
        names = []
        for node in json.loads(response.data).get("items") or []:
            annotations = node["metadata"].get("annotations") or {}
            conditions = (node.get("status") or {}).get("conditions") or []
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
            if "kwok.x-k8s.io/node" not in annotations and ready:
                names.append(node["metadata"]["name"])
        return names

    def bind_cluster_admin(self, namespace: str, service_account: str) -> None:
        """Benchmarks compare controllers, not RBAC: each runs as its own ServiceAccount (so the audit
        log tells them apart) with cluster-admin (so no missing permission skews a figure)."""
        body = {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": f"bench-{namespace}-{service_account}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
        }
        try:
            self.rbac.create_cluster_role_binding(body, _preload_content=False)
        except ApiException as exc:
            if exc.status != 409:
                raise
