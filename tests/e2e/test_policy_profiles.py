"""The seed's pods under the ``restricted`` profile, on the real node: the controller fills in the secure
values the templates leave out (non-root user, seccomp RuntimeDefault, no privilege escalation, all
capabilities dropped), and the classic quickstart and worker-spec.yml still compute, unchanged (the admin
allows worker-spec.yml's label key ``foo``, which the default ``allowedPodLabels`` leaves out under every
profile).

The default (baseline) profile is what tests/e2e/test_client_kubecluster.py runs under.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.config
import kubernetes
import pytest
from dask.distributed import Client
from kubedask import KubeCluster, spec

from tests.integration.controller_harness import REPO, ControllerProcess, running_controller


@pytest.fixture
def restricted_controller(namespace: str, kubeconfig: str, tmp_path: Path) -> Iterator[ControllerProcess]:
    """The controller for this test's namespace, with an admin policy choosing the restricted profile."""
    # worker-spec.yml labels its workers foo: bar; only user.kubedask.io/ labels pass unless the admin says so.
    policy = {"profile": "restricted", "allowedPodLabels": ["user.kubedask.io/*", "foo"]}
    yield from running_controller(kubeconfig, [namespace], tmp_path, policy=policy)


BOUNDED_WAITS = {
    "kubernetes.scheduler-service-wait-timeout": 180,
    "kubernetes.controller-timeout": 60,
    "distributed.comm.timeouts.connect": "60s",
}


def assert_restricted(pod: Any) -> None:
    """What the restricted profile filled into a pod whose template said nothing about it."""
    context = pod.spec.security_context
    assert context.run_as_non_root is True and context.run_as_user == 1000, context
    assert context.seccomp_profile.type == "RuntimeDefault"
    for container in pod.spec.containers:
        assert container.security_context.allow_privilege_escalation is False
        assert container.security_context.capabilities.drop == ["ALL"]


@pytest.mark.realnode
def test_worker_spec_yml_computes_under_restricted(
        restricted_controller: object, real_node: str, namespace: str, tmp_path: Path, api: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("worker-spec.yml").write_text((REPO / "examples" / "worker-spec.yml").read_text())
    with (dask.config.set({"kubernetes.namespace": namespace, **BOUNDED_WAITS}),
          KubeCluster("worker-spec.yml", n_workers=1) as cluster):
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=180)
            assert client.submit(lambda x: x + 1, 1).result() == 2
            assert set(client.run(os.getuid).values()) == {1000}
        assert cluster.pods()[0].metadata.labels["foo"] == "bar"
        pods = kubernetes.client.CoreV1Api(api).list_namespaced_pod(
            namespace, label_selector=f"{spec.CLUSTER_NAME_LABEL}={cluster.name}").items
        assert {p.metadata.labels[spec.COMPONENT_LABEL] for p in pods} == {"scheduler", "worker"}
        for pod in pods:
            assert_restricted(pod)


@pytest.mark.realnode
def test_classic_quickstart_computes_under_restricted(
        restricted_controller: object, real_node: str, namespace: str, kubeconfig: str) -> None:
    """examples/quickstart.py as a user runs it, in its own interpreter."""
    env = {**os.environ, "KUBECONFIG": kubeconfig, "PYTHONPATH": f"{REPO}/client",
           "DASK_KUBERNETES__NAMESPACE": namespace,
           "DASK_KUBERNETES__SCHEDULER_SERVICE_WAIT_TIMEOUT": "180",
           "DASK_KUBERNETES__CONTROLLER_TIMEOUT": "60",
           "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "60s"}
    result = subprocess.run([sys.executable, str(REPO / "examples" / "quickstart.py")], env=env,
                            capture_output=True, text=True, timeout=540)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1.0" in result.stdout.splitlines(), result.stdout  # print(array.mean().compute())
