"""A KubeCluster computing through the port-forward while its API server goes away: the computation
finishes or fails fast with an error that names the cause, it never hangs, and the client computes again
within seconds through the same forward.

Dask pods must really run, so these tests use the DEFAULT instance (the only one with the real node):
- the client's own connection to the API server drops (a relay in front of it resets every connection
  and refuses new ones for a while): the client's view of a restart, invisible to everyone else;
- kube-apiserver itself restarts: every client of the instance is disturbed for a few seconds, so it is
  one short restart (SIGKILL, no graceful drain).
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dask.config
import kubernetes
import pytest
from chaoskit import TcpOutage, kubeconfig_via
from controller_harness import ControllerProcess
from dask.distributed import Client
from distributed.client import FutureCancelledError
from kubedask import KubeCluster, KubeConfig, make_pod_spec

from devcluster import controlplane

pytestmark = pytest.mark.realnode

TASKS, TASK_SECONDS = 40, 0.5
#: A computation that neither finished nor failed by then is hung: the failure these tests exist for.
HANG_SECONDS = 120


def slow_squares() -> Callable[[int], int]:
    """The task. A closure, because the scheduler and workers cannot import this test module: Dask sends
    what plain pickle cannot reference by value (cloudpickle)."""
    seconds = TASK_SECONDS

    def slow_square(i: int) -> int:
        time.sleep(seconds)
        return i * i

    return slow_square


@pytest.fixture
def controller(kubeconfig: str, namespace: str, tmp_path: Path) -> Iterator[ControllerProcess]:
    process = ControllerProcess(kubeconfig, [namespace], tmp_path).start()
    try:
        yield process
    finally:
        process.stop()


def compute_through(fault: Callable[[], float], namespace: str, auth: KubeConfig | None = None) -> None:
    """Compute through the port-forward while ``fault`` (returning the seconds of outage) runs."""
    pod = make_pod_spec(image="ghcr.io/dask/dask:latest", memory_limit="1G", memory_request="256M",
                        cpu_limit=1, cpu_request="100m", threads_per_worker=2)
    with dask.config.set({"kubernetes.namespace": namespace, "kubernetes.scheduler-service-wait-timeout": 180,
                          "kubernetes.controller-timeout": 60, "kubernetes.client-heartbeat-timeout": 300}), \
            KubeCluster(pod, n_workers=1, auth=auth) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:"), (
            f"expected the port-forward route, got {cluster.scheduler_address}")
        with Client(cluster) as client:  # type: ignore[no-untyped-call]
            client.wait_for_workers(1, timeout=180)
            expected = sum(i * i for i in range(TASKS))
            slow_square = slow_squares()
            total = client.submit(sum, client.map(slow_square, range(TASKS)))
            downtime: list[float] = []
            outage = threading.Thread(target=lambda: downtime.append(fault()))
            time.sleep(2 * TASK_SECONDS)  # the computation is under way when the fault comes
            started = time.monotonic()
            outage.start()
            outcome: str
            try:
                result = total.result(timeout=HANG_SECONDS)
            except TimeoutError:
                pytest.fail(f"the computation hung: neither finished nor failed within {HANG_SECONDS} s")
            except Exception as error:  # failing is allowed: fast, and saying why
                elapsed = time.monotonic() - started
                outcome = f"failed after {elapsed:.1f}s with {type(error).__name__}: {error}"
                assert elapsed < 60, outcome
                assert "connection" in str(error).lower() or "lost" in str(error).lower(), outcome
            else:
                assert result == expected
                outcome = f"finished after {time.monotonic() - started:.1f}s with the right result"
            outage.join(120)
            assert downtime, "the outage did not end"
            back = time.monotonic()
            # And the client works again through the same forward, within seconds.
            tries = computes_again(client, slow_square, within=60.0)
            print(f"API server away {downtime[0]:.1f}s; the computation {outcome}; a new one computed "
                  f"{time.monotonic() - back:.1f}s after it was back ({tries} tries)")


def computes_again(client: Client, task: Callable[[int], int], within: float) -> int:
    """Submit ``task(7)`` until it computes, within ``within`` seconds; the tries it took (at most two).

    A second try is Dask's doing, not the forward's: when the scheduler hears that the client's old
    connection ended only after the client registered again under the same id, it closes the new connection
    too (``Scheduler.add_client``), and the client reconnects once more, cancelling what it had submitted.
    The forward makes that unlikely (it reconnects once the API server is ready, see portforward.py); a
    cancellation for any other reason, a second one, or no result in time fails."""
    deadline = time.monotonic() + within
    for tries in (1, 2):
        try:
            assert client.submit(task, 7, pure=False).result(timeout=max(1.0, deadline - time.monotonic())) == 49
            return tries
        except FutureCancelledError as error:
            if tries == 2 or "scheduler-connection-lost" not in str(error):
                raise
    raise AssertionError("unreachable")


def test_computation_through_the_port_forward_survives_its_api_server_connection_dropping(
        controller: ControllerProcess, kubeconfig: str, namespace: str, real_node: str, tmp_path: Path) -> None:
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=kubeconfig,  # type: ignore[no-untyped-call]
                                       client_configuration=configuration)
    server = urllib.parse.urlsplit(configuration.host)
    relay = TcpOutage(str(server.hostname), int(server.port or 443)).start()
    try:
        auth = KubeConfig(config_file=kubeconfig_via(kubeconfig, relay.port, tmp_path / "relayed.kubeconfig"))

        def drop() -> float:
            relay.outage(8.0)
            return 8.0

        compute_through(drop, namespace, auth)
    finally:
        relay.stop()


def test_computation_through_the_port_forward_survives_an_apiserver_restart(
        controller: ControllerProcess, devcluster_instance: Any, namespace: str, real_node: str) -> None:
    if devcluster_instance is None:
        pytest.skip("restarts the local devcluster's API server; not done to an --existing-cluster")
    compute_through(lambda: controlplane.restart(devcluster_instance, "kube-apiserver", hard=True), namespace)
