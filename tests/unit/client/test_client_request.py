"""The request ConfigMap a KubeCluster writes, built without a cluster.

A KubeCluster(asynchronous=True) made inside a running loop does nothing until awaited, so these tests
build one in an async test and never await it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.config
import pytest
from distributed.core import Status
from kubedask import KubeCluster, make_pod_spec, spec
from kubedask.local_mode import local_scheduler_ip


@pytest.fixture
def unstarted() -> Iterator[list[KubeCluster]]:
    """Clusters created with asynchronous=True and no running loop never start; close their books."""
    made: list[KubeCluster] = []
    yield made
    for cluster in made:
        cluster.status = Status.closed
        KubeCluster._instances.discard(cluster)


def offline(made: list[KubeCluster], *args: Any, **kwargs: Any) -> KubeCluster:
    kwargs["asynchronous"] = True
    cluster = KubeCluster(*args, **kwargs)
    made.append(cluster)
    return cluster


async def test_request_carries_workers_templates_env_and_timeouts(unstarted: list[KubeCluster]) -> None:
    pod = make_pod_spec(image="ghcr.io/dask/dask:latest", memory_limit="1G")
    cluster = offline(
        unstarted,
        pod,
        name="analysis",
        namespace="team-a",
        n_workers=2,
        env={"FOO": "bar"},
        idle_timeout="1 hour",
        client_heartbeat_timeout=60,
        scheduler_service_type="NodePort",
    )
    manifest = cluster.request_manifest()
    assert manifest["metadata"]["name"] == "analysis"
    assert manifest["metadata"]["namespace"] == "team-a"
    assert manifest["metadata"]["labels"] == {spec.REQUEST_LABEL: spec.REQUEST_LABEL_VALUE}
    assert spec.parse_heartbeat(manifest["metadata"]["annotations"][spec.HEARTBEAT_ANNOTATION]) is not None
    request = spec.parse_request("analysis", manifest["data"])
    assert request.workers == 2
    assert request.idle_timeout == 3600
    assert request.client_heartbeat_timeout == 60
    assert request.scheduler_service_type == "NodePort"
    assert request.deploy_mode == "remote"
    assert request.scheduler_template is None  # derived by the controller
    env = request.worker_template.spec["containers"][0]["env"]
    assert {"name": "FOO", "value": "bar"} in env


async def test_name_template_is_rendered(
    unstarted: list[KubeCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM", "ml")
    cluster = offline(unstarted, make_pod_spec(image="img"), name="dask-{TEAM}-{uuid}")
    assert cluster.name.startswith("dask-ml-")


async def test_worker_name_config_is_accepted(unstarted: list[KubeCluster]) -> None:
    with dask.config.set({"kubernetes.worker-name": "w-{user}-{uuid}"}):
        cluster = offline(unstarted, make_pod_spec(image="img"))
    assert cluster.name.startswith("w-")


async def test_worker_template_path_config_is_used_without_arguments(
    unstarted: list[KubeCluster], tmp_path: Path
) -> None:
    path = tmp_path / "worker-spec.yml"
    path.write_text(
        "kind: Pod\nspec:\n  containers:\n  - {name: dask-worker, image: ghcr.io/dask/dask:latest}\n"
    )
    with dask.config.set({"kubernetes.worker-template-path": str(path)}):
        cluster = offline(unstarted)
    assert cluster.pod_template is not None
    assert cluster.pod_template["spec"]["containers"][0]["image"] == "ghcr.io/dask/dask:latest"


def test_missing_template_is_an_error_that_says_how_to_give_one() -> None:
    with pytest.raises(ValueError, match=r"kubernetes\.worker-template-path"):
        KubeCluster(asynchronous=True)


async def test_required_affinity_is_added_to_the_worker_template(unstarted: list[KubeCluster]) -> None:
    cluster = offline(unstarted, make_pod_spec(image="img"), apply_default_affinity="required")
    worker = spec.parse_request("x", cluster.request_manifest()["data"]).worker_template
    terms = worker.spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["worker"]


async def test_local_mode_request_names_the_scheduler_address(unstarted: list[KubeCluster]) -> None:
    cluster = offline(unstarted, make_pod_spec(image="img"), deploy_mode="local")
    data = cluster.request_manifest(scheduler_address="tcp://10.0.0.5:40000")["data"]
    request = spec.parse_request("x", data)
    assert (request.deploy_mode, request.scheduler_address) == ("local", "tcp://10.0.0.5:40000")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"deploy_mode": "cloud"}, "deploy_mode"),
        ({"apply_default_affinity": "always"}, "apply_default_affinity"),
        ({"security": "yes"}, "Security"),
        ({"bogus": 1}, "unexpected keyword"),
    ],
)
def test_bad_arguments_fail_before_anything_is_requested(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, RuntimeError, TypeError), match=message):
        KubeCluster(make_pod_spec(image="img"), asynchronous=True, **kwargs)


def test_local_scheduler_address_prefers_explicit_host() -> None:
    assert local_scheduler_ip("10.1.2.3", None) == "10.1.2.3"
    assert local_scheduler_ip("0.0.0.0", "lo") == "127.0.0.1"


def test_local_scheduler_address_follows_the_route_to_the_api_server() -> None:
    # A target that is one of this machine's own addresses routes to itself.
    own = local_scheduler_ip(None, None)
    assert local_scheduler_ip(None, None, ["127.0.0.1", own]) == own
