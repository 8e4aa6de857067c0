"""Batch jobs on the real node: the request's job pod runs against its cluster, which goes when the job ends.

examples/job.yaml computes ``da.ones((1000, 1000, 1000)).mean()`` and ends Succeeded with its printed value
readable through ``kubectl dask logs NAME --job``; a job that exits 3 ends Failed naming exit code 3; a job
whose image cannot start fails with the kubelet's reason instead of waiting forever; ``job-ttl`` deletes
the finished request; deleting the request while the job runs stops everything; ``kubedask.run_job``
returns the exit code and the log. Jobs that need no worker
ask for none: the machine's 2 cores are shared by every test session.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes
import pytest
import yaml
from kubedask.cli.main import main as kubectl_dask
from kubedask.spec import ClusterStatus

from tests.integration.controller_harness import REPO, Cluster, ControllerProcess, running_controller, wait_for

pytestmark = pytest.mark.realnode
EXAMPLE = yaml.safe_load((REPO / "examples" / "job.yaml").read_text())
WORKER_SPEC = EXAMPLE["data"]["worker-template"]
#: Long enough for a scheduler to start on the shared node, short of hiding a controller that never acts.
START = 420


@pytest.fixture(scope="module")
def namespace(module_namespace: str) -> str:
    """One namespace and one controller for the module (their start-up once, not per test): every test's
    request has a name of its own and each check looks only at that request's objects."""
    return module_namespace


@pytest.fixture(scope="module")
def controller(kubeconfig: str, namespace: str, tmp_path_factory: pytest.TempPathFactory, real_node: str
               ) -> Iterator[ControllerProcess]:
    yield from running_controller(kubeconfig, [namespace], tmp_path_factory.mktemp("controller"))


@pytest.fixture
def cluster(controller: ControllerProcess, api: Any, namespace: str) -> Cluster:
    return Cluster(api, namespace)


def job_template(*args: str, image: str = "ghcr.io/dask/dask:latest", pull: str = "IfNotPresent") -> str:
    return yaml.safe_dump({"kind": "Pod", "spec": {"containers": [{
        "name": "job", "image": image, "imagePullPolicy": pull, "args": list(args),
        "resources": {"requests": {"cpu": "50m", "memory": "128M"}, "limits": {"memory": "256M"}}}]}})


def submit(kubectl: Callable[..., str], namespace: str, name: str, data: dict[str, str]) -> None:
    manifest = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "labels": {"kubedask.io/request": "cluster"}}, "data": data}
    kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))


def finished(cluster: Cluster, name: str, phase: str, controller: ControllerProcess,
             timeout: float = START) -> ClusterStatus:
    try:
        status = cluster.wait_phase(name, phase, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\npods: {[(p.metadata.name, p.status.phase) for p in cluster.pods(name)]}\n"
                             f"controller log:\n{controller.log_tail()}") from None
    assert status.job is not None and status.job.finished, status
    return status


def cluster_gone(cluster: Cluster, name: str) -> None:
    """No scheduler or worker pod left (not even terminating), and neither the Service nor the PDB."""
    def gone() -> bool:
        pods = [p for p in cluster.pods(name, include_deleting=True)
                if p.metadata.labels.get("dask.org/component") in ("scheduler", "worker")]
        return not pods and missing(lambda: cluster.core.read_namespaced_service(f"{name}-scheduler",
                                                                                  cluster.namespace)) \
            and missing(lambda: cluster.policy.read_namespaced_pod_disruption_budget(f"{name}-scheduler",
                                                                                      cluster.namespace))
    wait_for(f"the cluster of {name} to be removed", gone, timeout=120)


def missing(read: Callable[[], Any]) -> bool:
    try:
        read()
    except kubernetes.client.exceptions.ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def plugin(kubeconfig: str, *args: str) -> tuple[int, str, str]:
    """``kubectl dask ARGS`` through the plugin's Python entry point."""
    out, err = io.StringIO(), io.StringIO()
    code = kubectl_dask([*args, "--kubeconfig", kubeconfig], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_the_mean_of_ones_job_succeeds_its_cluster_goes_and_its_output_stays_readable(
        cluster: Cluster, controller: ControllerProcess, kubectl: Callable[..., str], kubeconfig: str,
        namespace: str) -> None:
    data = {k: v for k, v in EXAMPLE["data"].items() if k != "job-ttl"}
    submit(kubectl, namespace, "ones", data)
    status = finished(cluster, "ones", "Succeeded", controller, timeout=START + 300)
    assert status.job is not None and (status.job.exit_code, status.job.reason) == (0, "Completed")
    assert "succeeded (exit code 0)" in status.message and "1.0" in status.message  # the log tail
    cluster_gone(cluster, "ones")
    job_pod = cluster.pods("ones", "job")
    assert [p.metadata.name for p in job_pod] == ["ones-job"] and job_pod[0].status.phase == "Succeeded"
    code, out, err = plugin(kubeconfig, "logs", "ones", "--job", "-n", namespace)
    assert code == 0, err
    assert out.strip().splitlines()[-1] == "1.0"
    assert "JobSucceeded" in {e.reason for e in cluster.events("ones")}
    assert cluster.phase_label("ones") == "Succeeded"


def test_a_job_that_exits_3_fails_naming_exit_code_3(
        cluster: Cluster, controller: ControllerProcess, kubectl: Callable[..., str], namespace: str) -> None:
    submit(kubectl, namespace, "exits", {"workers": "0", "worker-template": WORKER_SPEC, "job-template": job_template(
        "python3", "-c", "import sys; print('giving up', flush=True); sys.exit(3)")})
    status = finished(cluster, "exits", "Failed", controller)
    assert status.job is not None and status.job.exit_code == 3
    assert "exit code 3" in status.message and "giving up" in status.message
    cluster_gone(cluster, "exits")
    assert any(e.reason == "JobFailed" and "exit code 3" in e.message for e in cluster.events("exits"))


def test_a_job_whose_image_cannot_start_fails_with_the_kubelets_reason(
        cluster: Cluster, controller: ControllerProcess, kubectl: Callable[..., str], namespace: str) -> None:
    submit(kubectl, namespace, "noimage", {"workers": "0", "worker-template": WORKER_SPEC, "job-template": job_template(
        "python3", "-c", "print(1)", image="kubedask.local/absent:never-built", pull="Never")})
    status = finished(cluster, "noimage", "Failed", controller)
    assert status.job is not None and status.job.reason == "ErrImageNeverPull", status
    assert "cannot start" in status.message and "kubedask.local/absent:never-built" in status.message
    cluster_gone(cluster, "noimage")


def test_job_ttl_deletes_the_finished_request(
        cluster: Cluster, controller: ControllerProcess, kubectl: Callable[..., str], namespace: str) -> None:
    ttl = 6
    submit(kubectl, namespace, "brief", {"workers": "0", "worker-template": WORKER_SPEC, "job-ttl": str(ttl),
                                         "job-template": job_template("python3", "-c", "print('done')")})
    finished(cluster, "brief", "Succeeded", controller)
    ended = time.monotonic()
    wait_for("job-ttl to delete the request", lambda: cluster.configmap("brief") is None, timeout=90)
    kept = time.monotonic() - ended
    # Counted from when the controller saw the end, a moment before this test saw the status say so.
    assert kept >= ttl - 3, f"the finished request was deleted {kept:.1f} s after it ended; job-ttl is {ttl} s"
    # The garbage collector takes the job pod with it.
    wait_for("the job pod to go with its request", lambda: not cluster.pods("brief", include_deleting=True),
             timeout=120)


def test_deleting_the_request_while_the_job_runs_stops_everything(
        cluster: Cluster, controller: ControllerProcess, kubectl: Callable[..., str], namespace: str) -> None:
    # Stops at SIGTERM (PID 1 ignores it otherwise), so the pods go without waiting out their grace period.
    sleeper = job_template("python3", "-c", "import os, signal, time; "
                           "signal.signal(signal.SIGTERM, lambda *_: os._exit(0)); time.sleep(3600)")
    submit(kubectl, namespace, "forever", {"workers": "0", "worker-template": WORKER_SPEC, "job-template": sleeper})
    wait_for("the job pod to run", lambda: [p for p in cluster.pods("forever", "job") if p.status.phase == "Running"],
             timeout=START)
    status = cluster.status("forever")
    assert status is not None and status.job is not None and not status.job.finished
    kubectl("delete", "configmap", "forever", "-n", namespace)
    wait_for("every pod of the request to go", lambda: not cluster.pods("forever", include_deleting=True),
             timeout=180)
    assert missing(lambda: cluster.core.read_namespaced_service("forever-scheduler", namespace))


def test_run_job_from_python_returns_the_exit_code_and_the_log(
        cluster: Cluster, controller: ControllerProcess, kubeconfig: str, namespace: str) -> None:
    from kubedask import KubeConfig, run_job

    job = yaml.safe_load(job_template("python3", "-c", "print('hello from the job')"))
    result = run_job(job, yaml.safe_load(WORKER_SPEC), n_workers=0, name="from-python", namespace=namespace,
                     auth=KubeConfig(config_file=kubeconfig), timeout=START, job_ttl=3600, quiet=True)
    assert (result.phase, result.exit_code, result.reason) == ("Succeeded", 0, "Completed"), result
    assert result.log is not None and "hello from the job" in result.log
    assert result.namespace == namespace and result.name == "from-python"
    cluster_gone(cluster, "from-python")
