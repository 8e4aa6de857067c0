"""The local cluster's real node: Dask pods actually run, reach each other and the host reaches them.

Every pod uses the offline Dask image under its classic name (`ghcr.io/dask/dask:latest`) with
`imagePullPolicy: IfNotPresent`: nothing can be pulled on this machine.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

pytestmark = pytest.mark.realnode

IMAGE = "ghcr.io/dask/dask:latest"
Kubectl = Callable[..., str]


def pod(
    name: str,
    args: list[str],
    *,
    labels: dict[str, str] | None = None,
    node: str | None = None,
    env: dict[str, str] | None = None,
    memory: str | None = None,
    restart: str = "Never",
    ready_port: int | None = None,
) -> dict[str, object]:
    container: dict[str, object] = {
        "name": "main",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
    }
    if ready_port:
        container["readinessProbe"] = {"tcpSocket": {"port": ready_port}, "periodSeconds": 1}
    if memory:
        container["resources"] = {"limits": {"memory": memory}, "requests": {"memory": memory}}
    spec: dict[str, object] = {
        "containers": [container],
        "restartPolicy": restart,
        "terminationGracePeriodSeconds": 1,
    }
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
    }


def service(name: str, selector: dict[str, str], port: int, target: int) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"port": port, "targetPort": target, "protocol": "TCP"}],
        },
    }


def apply(kubectl: Kubectl, ns: str, *objects: dict[str, object]) -> None:
    kubectl(
        "apply", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    )


def wait_pod(
    kubectl: Kubectl, ns: str, name: str, done: Callable[[dict[str, object]], bool], timeout: float = 120
) -> dict[str, object]:
    """Poll the pod until `done(pod)`; fail with its status and events otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        obj = json.loads(kubectl("get", "pod", "-n", ns, name, "-o", "json"))
        if done(obj):
            return obj  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            events = kubectl(
                "get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}", check=False
            )
            pytest.fail(
                f"pod {ns}/{name} not as expected within {timeout:.0f}s: "
                f"{json.dumps(obj.get('status'), indent=1)}\nevents:\n{events}"
            )
        time.sleep(0.25)


def running(obj: dict[str, object]) -> bool:
    return obj["status"].get("phase") == "Running"  # type: ignore[union-attr]


def ready(obj: dict[str, object]) -> bool:
    conditions = obj["status"].get("conditions", [])  # type: ignore[union-attr]
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@contextmanager
def port_forward(kubeconfig: str, kubectl_binary: str, ns: str, target: str, port: int) -> Iterator[int]:
    """`kubectl port-forward` to a free local port; yields that port."""
    proc = subprocess.Popen(
        [kubectl_binary, "--kubeconfig", kubeconfig, "port-forward", "-n", ns, target, f":{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert match, f"kubectl port-forward did not start: {line}{proc.stdout.read() if proc.poll() else ''}"
        yield int(match.group(1))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_dask_pod_runs_with_logs_exec_and_port_forward(
    kubectl: Kubectl, kubeconfig: str, kubectl_binary: str, namespace: str, real_node: str
) -> None:
    created = time.monotonic()
    apply(
        kubectl,
        namespace,
        pod(
            "web",
            ["sh", "-c", "echo hello-from-the-real-node; exec python3 -m http.server 8080"],
            node=real_node,
        ),
    )
    obj = wait_pod(kubectl, namespace, "web", running, timeout=120)
    print(f"pod create -> Running on {real_node}: {time.monotonic() - created:.1f}s")
    assert obj["spec"]["nodeName"] == real_node  # type: ignore[index]
    # The real node takes ordinary pods: no taints (the simulated nodes keep theirs).
    assert kubectl("get", "node", real_node, "-o", "jsonpath={.spec.taints}") == ""
    assert obj["status"]["podIP"].startswith("10.244.")  # type: ignore[index]

    deadline = time.monotonic() + 30
    while (
        "hello-from-the-real-node" not in kubectl("logs", "-n", namespace, "web")
        and time.monotonic() < deadline
    ):
        time.sleep(0.5)
    assert "hello-from-the-real-node" in kubectl("logs", "-n", namespace, "web")

    out = kubectl(
        "exec",
        "-n",
        namespace,
        "web",
        "--",
        "python3",
        "-c",
        "import dask, distributed; print(dask.__version__, distributed.__version__)",
    )
    import dask
    import distributed

    assert out.split() == [dask.__version__, distributed.__version__]
    assert kubectl(
        "exec",
        "-n",
        namespace,
        "web",
        "--",
        "sh",
        "-c",
        "for c in dask-scheduler dask-worker; do command -v $c; done",
    ).split() == ["/usr/local/bin/dask-scheduler", "/usr/local/bin/dask-worker"]

    with port_forward(kubeconfig, kubectl_binary, namespace, "pod/web", 8080) as local:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=5) as response:
                    assert response.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


CLIENT_CHECK = """
import socket, sys, urllib.request
ns = sys.argv[1]
for name in ("kubernetes.default.svc.cluster.local", f"web.{ns}.svc.cluster.local", "web"):
    print(name, socket.gethostbyname(name))
print("body", urllib.request.urlopen("http://web/marker.txt", timeout=10).read().decode().strip())
# The API server through the kubernetes Service, as an in-cluster client (the controller) reaches it.
import json, ssl
sa = "/var/run/secrets/kubernetes.io/serviceaccount/"
ctx = ssl.create_default_context(cafile=sa + "ca.crt")
req = urllib.request.Request("https://kubernetes.default.svc/version",
                             headers={"Authorization": "Bearer " + open(sa + "token").read()})
print("api", json.load(urllib.request.urlopen(req, context=ctx, timeout=10))["gitVersion"])
"""


def test_cluster_dns_and_cluster_ip_service(kubectl: Kubectl, namespace: str, real_node: str) -> None:
    apply(
        kubectl,
        namespace,
        pod(
            "web",
            [
                "sh",
                "-c",
                "cd /tmp && echo served-through-the-service > marker.txt && exec python3 -m http.server 8080",
            ],
            labels={"app": "web"},
            node=real_node,
        ),
        pod("client", ["sleep", "3600"], node=real_node),
        service("web", {"app": "web"}, 80, 8080),
    )
    for name in ("web", "client"):
        wait_pod(kubectl, namespace, name, running)
    service_ip = kubectl("get", "service", "-n", namespace, "web", "-o", "jsonpath={.spec.clusterIP}")
    kubernetes_ip = kubectl(
        "get", "service", "-n", "default", "kubernetes", "-o", "jsonpath={.spec.clusterIP}"
    )

    deadline = time.monotonic() + 60  # kube-proxy and CoreDNS follow the new Service within seconds
    while True:
        out = kubectl(
            "exec", "-n", namespace, "client", "--", "python3", "-c", CLIENT_CHECK, namespace, check=False
        )
        if "body served-through-the-service" in out or time.monotonic() > deadline:
            break
        time.sleep(1)
    resolved = dict(line.split(" ", 1) for line in out.strip().splitlines() if line.count(" ") == 1)
    assert resolved.get("kubernetes.default.svc.cluster.local") == kubernetes_ip, out
    assert resolved.get(f"web.{namespace}.svc.cluster.local") == service_ip, out
    assert resolved.get("web") == service_ip, out  # the pod's search domains work too
    assert resolved.get("body") == "served-through-the-service", out
    assert resolved.get("api", "").startswith("v1.35."), out


def test_dask_cluster_computes_through_port_forward(
    kubectl: Kubectl, kubeconfig: str, kubectl_binary: str, namespace: str, real_node: str
) -> None:
    from dask import array as da
    from distributed import Client

    address = f"tcp://scheduler.{namespace}.svc.cluster.local:8786"
    workers = [
        pod(
            f"worker-{i}",
            ["dask-worker", "$(DASK_SCHEDULER_ADDRESS)", "--nthreads", "1", "--name", f"worker-{i}"],
            env={"DASK_SCHEDULER_ADDRESS": address},
            node=real_node,
            memory="1Gi",
        )
        for i in range(2)
    ]
    apply(
        kubectl,
        namespace,
        pod(
            "scheduler",
            ["dask-scheduler"],
            labels={"dask": "scheduler"},
            node=real_node,
            env={"DASK_SCHEDULER_ADDRESS": address},
            memory="1Gi",
            ready_port=8786,
        ),
        service("scheduler", {"dask": "scheduler"}, 8786, 8786),
        *workers,
    )
    wait_pod(kubectl, namespace, "scheduler", ready)  # listening, so the port-forward can connect
    for name in ("worker-0", "worker-1"):
        wait_pod(kubectl, namespace, name, running)

    with (
        port_forward(kubeconfig, kubectl_binary, namespace, "pod/scheduler", 8786) as local,
        Client(f"tcp://127.0.0.1:{local}", timeout=30) as client,
    ):
        try:
            client.wait_for_workers(2, timeout=120)
        except TimeoutError:
            logs = {
                w: kubectl("logs", "-n", namespace, w, "--tail", "20", check=False)
                for w in ("worker-0", "worker-1")
            }
            pytest.fail(f"the workers did not join the scheduler: {logs}")
        started = time.monotonic()
        result = da.ones((1000, 1000, 1000)).mean().compute()
        print(f"da.ones((1000,)*3).mean() on 2 pods: {time.monotonic() - started:.1f}s")
        assert result == 1.0
        assert sorted(w["name"] for w in client.scheduler_info()["workers"].values()) == [
            "worker-0",
            "worker-1",
        ]


def test_memory_limit_is_enforced_with_oomkilled(kubectl: Kubectl, namespace: str, real_node: str) -> None:
    apply(
        kubectl,
        namespace,
        pod(
            "hog",
            ["python3", "-c", "x = bytearray(512 * 1024 * 1024); print(len(x))"],
            node=real_node,
            memory="64Mi",
        ),
    )

    def terminated(obj: dict[str, object]) -> bool:
        statuses = obj["status"].get("containerStatuses") or []  # type: ignore[union-attr]
        # The phase follows the container status a moment later; wait for both.
        return bool(statuses) and "terminated" in statuses[0]["state"] and obj["status"]["phase"] == "Failed"

    obj = wait_pod(kubectl, namespace, "hog", terminated, timeout=120)
    state = obj["status"]["containerStatuses"][0]["state"]["terminated"]  # type: ignore[index]
    assert state["reason"] == "OOMKilled", state
    assert state["exitCode"] == 137, state
    assert obj["status"]["phase"] == "Failed"  # type: ignore[index]
