"""The admin's journey with Helm, on the local cluster's real node: install, use, upgrade, uninstall.

The controller lives in its own namespace, which enforces the Pod Security "restricted" level, and
serves one other namespace where the Dask clusters run: the usual production shape, and the
strictest for the chart (the controller gets no rights where it lives except for its Lease). The
admin enforces "restricted" in the team's namespace too, and so gives it the policy profile
`restricted` (Helm values, per namespace): the controller fills in the secure defaults the classic
pod spec leaves out, and the API server's own admission judges the result.

The tests run in file order and share one release and one Dask cluster: each step is what an admin
does after the previous one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dask.array as da
import dask.config
import pytest
from dask.distributed import Client
from installkit import CHART, PATIENT_CLIENT_CONFIG, can_i, service_account, small_worker_spec
from kubedask import KubeCluster

pytestmark = pytest.mark.realnode

# Everything the chart creates carries this label (app.kubernetes.io/instance=<release>).
INSTANCE = "app.kubernetes.io/instance"
NAMESPACED_KINDS = (
    "deployments.apps",
    "replicasets.apps",
    "pods",
    "services",
    "configmaps",
    "serviceaccounts",
    "roles.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "leases.coordination.k8s.io",
    "poddisruptionbudgets.policy",
)
CLUSTER_KINDS = ("clusterroles.rbac.authorization.k8s.io", "clusterrolebindings.rbac.authorization.k8s.io")


@dataclass
class Release:
    name: str
    namespace: str  # where the controller runs (enforces "restricted")
    watched: str  # where Dask clusters run
    image: str

    @property
    def controller(self) -> str:
        return f"{self.name}-kubedask-controller"


def controller_pods(kubectl: Callable[..., str], release: Release) -> list[dict[str, Any]]:
    out = kubectl(
        "get",
        "pods",
        "-n",
        release.namespace,
        "-l",
        f"{INSTANCE}={release.name},app.kubernetes.io/component=controller",
        "-o",
        "json",
    )
    return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]


def leftovers(kubectl: Callable[..., str], release: Release) -> list[str]:
    """Every object of the release that still exists, as kind/name."""
    found = []
    for namespace in (release.namespace, release.watched):
        out = kubectl(
            "get",
            ",".join(NAMESPACED_KINDS),
            "-n",
            namespace,
            "-l",
            f"{INSTANCE}={release.name}",
            "-o",
            "name",
        )
        found += out.split()
    found += kubectl("get", ",".join(CLUSTER_KINDS), "-l", f"{INSTANCE}={release.name}", "-o", "name").split()
    # The Lease's labels are the chart's, but look it up by name too: the controller writes to it.
    found += kubectl(
        "get",
        "leases.coordination.k8s.io",
        "-n",
        release.namespace,
        release.controller,
        "--ignore-not-found",
        "-o",
        "name",
    ).split()
    return sorted(set(found))


@pytest.fixture(scope="module")
def release(
    helm_cmd: Callable[..., str], kubectl: Callable[..., str], controller_image: str
) -> Iterator[Release]:
    suffix = uuid.uuid4().hex[:5]
    rel = Release(
        name=f"kd-{suffix}",
        namespace=f"kd-system-{suffix}",
        watched=f"kd-team-{suffix}",
        image=controller_image,
    )
    kubectl("create", "namespace", rel.namespace)
    kubectl(
        "label",
        "namespace",
        rel.namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
        "pod-security.kubernetes.io/warn=restricted",
    )
    kubectl("create", "namespace", rel.watched)
    kubectl(
        "label",
        "namespace",
        rel.watched,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    repository, _, tag = rel.image.rpartition(":")
    helm_cmd(
        "install",
        rel.name,
        str(CHART),
        "--namespace",
        rel.namespace,
        "--set",
        f"image.repository={repository}",
        "--set-string",  # a tag that looks like a number must stay a string
        f"image.tag={tag}",
        "--set",
        f"watchNamespaces={{{rel.watched}}}",
        "--set-json",
        f'policy.namespaces={{"{rel.watched}": {{"profile": "restricted"}}}}',
        "--wait",
        "--timeout",
        "5m",
    )
    yield rel
    helm_cmd("uninstall", rel.name, "--namespace", rel.namespace, "--wait", check=False)
    for namespace in (rel.watched, rel.namespace):
        kubectl("delete", "namespace", namespace, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture(scope="module")
def dask_cluster(release: Release, real_node: str) -> Iterator[KubeCluster]:
    """A Dask cluster requested from the host, in the watched namespace, kept across the tests."""
    with dask.config.set(PATIENT_CLIENT_CONFIG):
        pod_spec = small_worker_spec()
        cluster = KubeCluster(pod_spec, namespace=release.watched, n_workers=1)
        try:
            yield cluster
        finally:
            cluster.close()


def dask_pod_uids(kubectl: Callable[..., str], release: Release, cluster: KubeCluster) -> dict[str, str]:
    out = kubectl(
        "get", "pods", "-n", release.watched, "-l", f"dask.org/cluster-name={cluster.name}", "-o", "json"
    )
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in json.loads(out)["items"]}


def test_install_runs_the_controller_under_its_service_account(
    release: Release, kubectl: Callable[..., str], notes: str
) -> None:
    pods = controller_pods(kubectl, release)
    assert len(pods) == 1
    pod = pods[0]
    assert pod["status"]["phase"] == "Running"
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"
    assert pod["spec"]["serviceAccountName"] == release.controller
    assert pod["spec"]["containers"][0]["image"] == release.image
    # The metrics Service found the pod.
    endpoints = json.loads(
        kubectl(
            "get",
            "endpointslices",
            "-n",
            release.namespace,
            "-l",
            f"kubernetes.io/service-name={release.controller}-metrics",
            "-o",
            "json",
        )
    )
    assert [
        a
        for s in endpoints["items"]
        for a in s.get("endpoints") or []
        if a.get("conditions", {}).get("ready")
    ], endpoints
    # The admin is told what to do next.
    assert f"kubectl -n {release.namespace} rollout status deployment/{release.controller}" in notes
    assert f"--clusterrole={release.name}-kubedask-user" in notes
    assert f"kubectl -n {release.watched} create rolebinding" in notes  # where it serves ...
    assert f"never in {release.namespace}" in notes  # ... and never where the policy lives


@pytest.fixture(scope="module")
def notes(helm_cmd: Callable[..., str], release: Release) -> str:
    return helm_cmd("get", "notes", release.name, "--namespace", release.namespace)


def test_controller_runs_as_non_root_with_a_read_only_root_filesystem(
    release: Release, kubectl: Callable[..., str]
) -> None:
    pod = controller_pods(kubectl, release)[0]["metadata"]["name"]
    probe = (
        "import os, pathlib\n"
        "print(os.getuid(), os.getgid())\n"
        "for path in ('/probe', '/opt/kubedask/probe', '/etc/kubedask/probe'):\n"
        "    try:\n"
        "        pathlib.Path(path).write_text('x')\n"
        "        print('wrote', path)\n"
        "    except OSError as exc:\n"
        "        print('refused', path, exc.errno)\n"
        "pathlib.Path('/tmp/probe').write_text('x'); print('wrote /tmp/probe')\n"
    )
    out = kubectl("exec", "-n", release.namespace, pod, "-c", "controller", "--", "python", "-c", probe)
    lines = out.splitlines()
    assert lines[0] == "10001 10001"
    assert all(line.startswith("refused") for line in lines[1:4]), out  # EROFS: read-only
    assert lines[4] == "wrote /tmp/probe"  # the emptyDir is the one writable place
    # It got there through a namespace that enforces "restricted": admission already judged it.
    labels = json.loads(kubectl("get", "namespace", release.namespace, "-o", "json"))["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_controller_service_account_has_no_rights_beyond_the_chart(
    release: Release, kubectl: Callable[..., str]
) -> None:
    sa = service_account(release.namespace, release.controller)
    assert can_i(kubectl, sa, "create", "pods", release.watched)
    assert not can_i(kubectl, sa, "get", "secrets", release.watched)
    assert not can_i(kubectl, sa, "create", "pods", release.namespace)  # its own namespace: only the Lease
    assert not can_i(kubectl, sa, "list", "configmaps", "default")


def test_kubecluster_from_the_host_computes_in_the_watched_namespace(dask_cluster: KubeCluster) -> None:
    with Client(dask_cluster) as client:  # type: ignore[no-untyped-call]
        client.wait_for_workers(1, timeout=180)
        assert da.ones((200, 200, 200), chunks=(100, 100, 100)).mean().compute() == 1.0


def test_dask_pods_got_the_restricted_profiles_secure_defaults(
    release: Release, dask_cluster: KubeCluster, kubectl: Callable[..., str]
) -> None:
    """make_pod_spec says nothing about security; the policy's per-namespace profile filled it in, and
    the namespace's "restricted" admission let the pods in (they computed above)."""
    out = kubectl(
        "get", "pods", "-n", release.watched, "-l", f"dask.org/cluster-name={dask_cluster.name}", "-o", "json"
    )
    pods = json.loads(out)["items"]
    assert {p["metadata"]["labels"]["dask.org/component"] for p in pods} == {"scheduler", "worker"}
    for pod in pods:
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["spec"]["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_upgrade_rolls_the_controller_without_losing_running_dask_clusters(
    release: Release, dask_cluster: KubeCluster, helm_cmd: Callable[..., str], kubectl: Callable[..., str]
) -> None:
    old_controller = controller_pods(kubectl, release)[0]["metadata"]["name"]
    dask_pods = dask_pod_uids(kubectl, release, dask_cluster)
    assert len(dask_pods) == 2  # scheduler + 1 worker

    helm_cmd(
        "upgrade",
        release.name,
        str(CHART),
        "--namespace",
        release.namespace,
        "--reuse-values",
        "--set",
        "logLevel=debug",
        "--set",
        "policy.maxWorkers=10",
        "--wait",
        "--timeout",
        "5m",
    )
    kubectl(
        "rollout", "status", "-n", release.namespace, f"deployment/{release.controller}", "--timeout=180s"
    )

    pods = controller_pods(kubectl, release)
    assert [p["metadata"]["name"] for p in pods] != [old_controller]
    assert len(pods) == 1 and "--log-level=DEBUG" in pods[0]["spec"]["containers"][0]["args"]
    # The Dask cluster was not touched: same pods, same UIDs, and it still computes.
    assert dask_pod_uids(kubectl, release, dask_cluster) == dask_pods
    with Client(dask_cluster) as client:  # type: ignore[no-untyped-call]
        assert client.submit(sum, [1, 2, 3]).result() == 6
        # The new controller took over (the Lease passed to it) and acts on the same request.
        dask_cluster.scale(2)
        client.wait_for_workers(2, timeout=180)
    assert len(dask_pod_uids(kubectl, release, dask_cluster)) == 3


def test_uninstall_leaves_no_controller_objects_behind(
    release: Release, dask_cluster: KubeCluster, helm_cmd: Callable[..., str], kubectl: Callable[..., str]
) -> None:
    dask_cluster.close()  # while the controller is still there to see the request go
    assert leftovers(kubectl, release) != []
    helm_cmd("uninstall", release.name, "--namespace", release.namespace, "--wait", "--timeout", "3m")
    # Helm waits for the objects it deleted; their pods go through graceful termination after that.
    kubectl(
        "wait",
        "--for=delete",
        "pods",
        "-n",
        release.namespace,
        "-l",
        f"{INSTANCE}={release.name}",
        "--timeout=120s",
    )
    assert leftovers(kubectl, release) == []
    assert helm_cmd("list", "--namespace", release.namespace, "--short").strip() == ""
    remaining = kubectl(
        "get", "pods,services,configmaps,leases.coordination.k8s.io", "-n", release.namespace, "-o", "name"
    ).split()
    # Only what Kubernetes itself puts in every namespace may remain.
    assert [r for r in remaining if r != "configmap/kube-root-ca.crt"] == []
