"""Every tool is asked for the same worker pod, on simulated nodes only."""

from __future__ import annotations

from kubedask.spec import REQUEST_LABEL, parse_request

from benchmarks import manifests


def _on_simulated_nodes(spec: dict[str, object]) -> bool:
    return manifests.KWOK_TOLERATION in spec["tolerations"] and spec["nodeSelector"] == {"type": "kwok"}  # type: ignore[operator]


def test_kubedask_request_is_a_valid_labelled_request_for_simulated_nodes() -> None:
    cm = manifests.kubedask_request("n10", "bench", 10)
    assert cm["metadata"]["labels"][REQUEST_LABEL] == "cluster"
    request = parse_request("n10", cm["data"])
    assert request.workers == 10
    assert _on_simulated_nodes(request.worker_template.spec)


def test_operator_cluster_runs_the_same_worker_container_without_restart_policy() -> None:
    cluster = manifests.operator_cluster("n10", "bench", 10)
    worker = cluster["spec"]["worker"]
    assert worker["replicas"] == 10
    assert _on_simulated_nodes(worker["spec"])
    # Deployments (which the operator creates) reject restartPolicy: Never.
    assert "restartPolicy" not in worker["spec"]
    assert worker["spec"]["containers"][0]["image"] == manifests.IMAGE
    assert worker["spec"]["containers"][0]["args"] == manifests.worker_pod_spec()["containers"][0]["args"]
    scheduler = cluster["spec"]["scheduler"]
    assert scheduler["spec"]["containers"][0]["args"] == ["dask-scheduler"]
    assert {p["name"] for p in scheduler["service"]["ports"]} == {"tcp-comm", "http-dashboard"}


def test_scale_patches_change_only_the_worker_count() -> None:
    assert manifests.kubedask_scale_patch(100) == {"data": {"workers": "100"}}
    assert manifests.operator_scale_patch(100) == {"spec": {"worker": {"replicas": 100}}}


def test_raw_pods_are_counted_by_the_same_selector_as_the_tools_workers() -> None:
    pod = manifests.raw_pod("n10", "bench", 7)
    labels = pod["metadata"]["labels"]
    selector = dict(part.split("=") for part in manifests.worker_selector("n10").split(","))
    assert selector.items() <= labels.items()
    assert pod["metadata"]["name"] == "n10-worker-00007"
    assert _on_simulated_nodes(pod["spec"])


def test_unrelated_objects_match_no_controller_selector() -> None:
    pod = manifests.unrelated_pod("busy", 3, "kwok-node-1")
    cm = manifests.unrelated_configmap("busy", 3)
    for labels in (pod["metadata"]["labels"], cm["metadata"]["labels"]):
        assert REQUEST_LABEL not in labels
        assert "app.kubernetes.io/managed-by" not in labels
        assert manifests.COMPONENT_LABEL not in labels
    # Bound to a node directly: the scheduler does no work for the noise.
    assert pod["spec"]["nodeName"] == "kwok-node-1"
    assert "nodeSelector" not in pod["spec"]
