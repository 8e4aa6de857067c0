"""KubeCluster's whole life against a fake API server and a scripted controller (no Kubernetes needed).

The "remote" scheduler is a real in-process Dask scheduler whose address the fake controller reports
as the external address, so connecting, scaling, logs and closing all run for real.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dask.config
import pytest
from distributed import LocalCluster
from fake_kube import FakeKube
from kubedask import (
    ControllerNotRespondingError,
    KubeAuth,
    KubeCluster,
    KubeClusterError,
    RequestRejectedError,
    SchedulerStartError,
    make_pod_spec,
    spec,
)

NS = "team-a"

# The stand-in scheduler belongs to a LocalCluster, which already watches worker status; our cluster
# subscribing too makes distributed warn that it replaces that plugin. Harmless here.
pytestmark = pytest.mark.filterwarnings("ignore:Scheduler already contains a plugin:UserWarning")


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    fake = FakeKube()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def dask_scheduler() -> Iterator[str]:
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as local:  # type: ignore[no-untyped-call]
        yield str(local.scheduler_address)


def running_status(address: str, ready: int = 0, requested: int = 0) -> dict[str, Any]:
    return {
        "phase": "Running",
        "message": "ok",
        "conditions": [
            {"type": "RequestValid", "status": "True"},
            {"type": "SchedulerReady", "status": "True"},
        ],
        "schedulerAddress": "tcp://x-scheduler.team-a.svc.cluster.local:8786",
        "externalAddress": address,
        "workers": {"requested": requested, "created": ready, "running": ready, "ready": ready},
    }


def make(kube: FakeKube, **kwargs: Any) -> KubeCluster:
    kwargs.setdefault("name", "c1")
    kwargs.setdefault("quiet", True)
    return KubeCluster(make_pod_spec(image="img"), auth=KubeAuth(kube.host, namespace=NS), **kwargs)


def test_start_scale_adapt_and_close(kube: FakeKube, dask_scheduler: str) -> None:
    kube.on_create = lambda k, cm: k.set_status(NS, cm["metadata"]["name"], **running_status(dask_scheduler))
    cluster = make(kube, n_workers=1)
    try:
        assert cluster.scheduler_address == dask_scheduler
        data = kube.configmaps[(NS, "c1")]["data"]
        assert data[spec.KEY_WORKERS] == "1"

        cluster.adapt(minimum=1, maximum=5)
        assert kube.configmaps[(NS, "c1")]["data"][spec.KEY_ADAPT] == '{"maximum": 5, "minimum": 1}'
        cluster.scale(3)
        data = kube.configmaps[(NS, "c1")]["data"]
        assert data[spec.KEY_WORKERS] == "3"
        assert spec.KEY_ADAPT not in data  # manual scaling turns adaptivity off
        with dask.config.set({"kubernetes.count.max": 4}):
            cluster.scale(10)
        assert kube.configmaps[(NS, "c1")]["data"][spec.KEY_WORKERS] == "4"
        cluster.add_worker_group("gpu", make_pod_spec(image="img"), n_workers=1)
        cluster.adapt(minimum=0, maximum=2, worker_group="gpu")  # the group's own key, not the default's
        data = kube.configmaps[(NS, "c1")]["data"]
        assert data["adapt.gpu"] == '{"maximum": 2, "minimum": 0}' and spec.KEY_ADAPT not in data
    finally:
        cluster.close()
    assert (NS, "c1") not in kube.configmaps


def test_progress_is_visible_while_waiting(kube: FakeKube, dask_scheduler: str) -> None:
    kube.on_create = lambda k, cm: k.set_status(NS, "c1", phase="Pending", message="waiting for the scheduler pod")
    # The controller finishes as soon as the client looks again.
    kube.on_read = lambda k, key: k.set_status(*key, **running_status(dask_scheduler))
    with make(kube) as cluster:
        messages = [line for _, line in cluster._cluster_manager_logs]
    assert any("Pending: waiting for the scheduler pod" in m for m in messages)


def test_no_controller_is_an_explicit_error_and_leaves_nothing(kube: FakeKube) -> None:
    # How long the wait lasts is test_client_waiting's business (on fake time); here: what is left.
    with pytest.raises(
        ControllerNotRespondingError, match=f"No kubedask controller acted on request {NS}/c1"
    ):
        make(kube, controller_timeout=0.1)
    assert kube.configmaps == {}


def test_invalid_request_raises_the_controllers_message(kube: FakeKube) -> None:
    message = "containers[0] asks for hostNetwork, which the policy refuses"
    kube.on_create = lambda k, cm: k.set_status(
        NS,
        "c1",
        phase="Failed",
        message=message,
        conditions=[{"type": "RequestValid", "status": "False", "message": message}],
    )
    with pytest.raises(RequestRejectedError, match="hostNetwork, which the policy refuses"):
        make(kube)
    assert kube.configmaps == {}


def test_unpullable_scheduler_image_raises_with_events_and_log(kube: FakeKube) -> None:
    def controller(k: FakeKube, cm: dict[str, Any]) -> None:
        k.set_status(NS, "c1", phase="Pending", message="waiting for the scheduler pod to become ready")
        waiting = {"reason": "ErrImagePull", "message": 'failed to pull image "img": not found'}
        pod_status = {"phase": "Pending", "containerStatuses": [{"name": "c", "state": {"waiting": waiting}}]}
        k.add_pod(NS, "c1-scheduler", "c1", "scheduler", pod_status)
        k.events.append(
            {
                "type": "Warning",
                "reason": "Failed",
                "message": 'Failed to pull image "img"',
                "involvedObject": {"kind": "Pod", "name": "c1-scheduler"},
                "metadata": {"name": "e1"},
            }
        )

    kube.on_create = controller
    with pytest.raises(SchedulerStartError, match="ErrImagePull") as info:
        make(kube)
    assert 'Warning Failed: Failed to pull image "img"' in str(info.value)
    assert kube.configmaps == {}


def test_scheduler_start_timeout_is_bounded(kube: FakeKube) -> None:
    kube.on_create = lambda k, cm: k.set_status(NS, "c1", phase="Pending", message="still pending")
    with pytest.raises(SchedulerStartError, match=r"did not become ready within 0\.1s"):
        make(kube, scheduler_service_wait_timeout=0.1)
    assert kube.configmaps == {}


def test_logs_and_pods_come_from_the_api(kube: FakeKube, dask_scheduler: str) -> None:
    def controller(k: FakeKube, cm: dict[str, Any]) -> None:
        k.set_status(NS, "c1", **running_status(dask_scheduler))
        k.add_pod(NS, "c1-scheduler", "c1", "scheduler")
        k.add_pod(NS, "c1-worker-abcde", "c1", "worker")
        k.logs.update({"c1-scheduler": "Scheduler at: tcp://...", "c1-worker-abcde": "Start worker at ..."})

    kube.on_create = controller
    with make(kube) as cluster:
        assert [p.metadata.name for p in cluster.pods()] == ["c1-worker-abcde"]
        assert len(cluster.pods(component=None)) == 2
        logs = cluster.get_logs()
        assert logs["Scheduler"] == "Scheduler at: tcp://..."
        assert logs["c1-worker-abcde"] == "Start worker at ..."
        assert cluster.logs("c1-worker-abcde") == "Start worker at ..."


def test_heartbeat_and_its_timeout_are_written_at_creation(kube: FakeKube, dask_scheduler: str) -> None:
    # Renewal itself is test_client_waiting's (on fake time: renewals are at least 5 s apart).
    kube.on_create = lambda k, cm: k.set_status(NS, "c1", **running_status(dask_scheduler))
    with make(kube, client_heartbeat_timeout=6) as cluster:
        first = kube.configmaps[(NS, "c1")]["metadata"]["annotations"][spec.HEARTBEAT_ANNOTATION]
        assert spec.parse_heartbeat(first) is not None
        assert kube.configmaps[(NS, "c1")]["data"][spec.KEY_HEARTBEAT_TIMEOUT] == "6"
        assert cluster._session.heartbeat is not None and not cluster._session.heartbeat.done()


def test_from_name_attaches_without_deleting(kube: FakeKube, dask_scheduler: str) -> None:
    kube.on_create = lambda k, cm: k.set_status(NS, "c1", **running_status(dask_scheduler))
    with make(kube) as owner:
        attached = KubeCluster.from_name("c1", auth=KubeAuth(kube.host, namespace=NS), quiet=True)
        attached.scale(2)
        attached.close()
        assert kube.configmaps[(NS, "c1")]["data"][spec.KEY_WORKERS] == "2"
        assert owner.scheduler_address == dask_scheduler
    assert kube.configmaps == {}


def test_name_taken_is_an_explicit_error(kube: FakeKube, dask_scheduler: str) -> None:
    kube.on_create = lambda k, cm: k.set_status(NS, "c1", **running_status(dask_scheduler))
    with make(kube), pytest.raises(KubeClusterError, match="already exists"):
        make(kube)


def test_local_mode_runs_the_scheduler_here_and_tells_workers_where(kube: FakeKube) -> None:
    kube.on_create = lambda k, cm: k.set_status(NS, "c1", phase="Running", message="0 workers running")
    with make(kube, deploy_mode="local", dashboard_address=":0") as cluster:
        data = kube.configmaps[(NS, "c1")]["data"]
        assert data[spec.KEY_DEPLOY_MODE] == "local"
        assert data[spec.KEY_SCHEDULER_ADDRESS] == cluster.scheduler_address
        assert not cluster.scheduler_address.startswith("tcp://127.")
        assert cluster.scheduler_info["type"] == "Scheduler"
    assert kube.configmaps == {}


def test_dashboard_link_is_local_and_honours_the_dask_template(kube: FakeKube, dask_scheduler: str) -> None:
    kube.on_create = lambda k, cm: k.set_status(NS, "c1", **running_status(dask_scheduler))
    with make(kube) as cluster:
        assert cluster.dashboard_link.startswith("http://127.0.0.1:")
        port = cluster.dashboard_link.split(":")[2].split("/")[0]
        with dask.config.set({"distributed.dashboard.link": "https://hub/user/proxy/{port}/status"}):
            assert cluster.dashboard_link == f"https://hub/user/proxy/{port}/status"


def test_local_mode_interface_chooses_the_worker_address(kube: FakeKube) -> None:
    kube.on_create = lambda k, cm: k.set_status(NS, "c1", phase="Running", message="0 workers running")
    with make(kube, deploy_mode="local", interface="lo", dashboard_address=":0") as cluster:
        address = kube.configmaps[(NS, "c1")]["data"][spec.KEY_SCHEDULER_ADDRESS]
        assert address.startswith("tcp://127.0.0.1:")
        assert address == cluster.scheduler_address


async def test_async_usage_with_and_without_await(kube: FakeKube, dask_scheduler: str) -> None:
    kube.on_create = lambda k, cm: k.set_status(NS, "c1", **running_status(dask_scheduler))
    auth = KubeAuth(kube.host, namespace=NS)
    async with KubeCluster(
        make_pod_spec(image="img"), name="c1", auth=auth, asynchronous=True, quiet=True
    ) as cluster:
        await cluster.scale(3)
        assert kube.configmaps[(NS, "c1")]["data"][spec.KEY_WORKERS] == "3"
        pending = cluster.scale(4)  # classic async code called scale() without await
        await pending
        assert kube.configmaps[(NS, "c1")]["data"][spec.KEY_WORKERS] == "4"
        assert await cluster.pods() == []
    assert kube.configmaps == {}
