"""The objects a request turns into: names, labels, owners, env, tolerations, affinity, args."""

from __future__ import annotations

import random
from typing import Any

from controller_fakes import request_data
from kubedask.spec import parse_request
from kubedask_controller import builders, labelling, service_builders

OWNER = labelling.owner_reference("analysis", "uid-1")
NS = "team-a"
ADDRESS = "tcp://analysis-scheduler.team-a.svc.cluster.local:8786"


def env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_worker_pod_name_is_also_the_dask_worker_name() -> None:
    request = parse_request("analysis", request_data())
    name = builders.new_worker_name("analysis", random.Random(1))
    pod = builders.build_worker_pod(request, NS, name, OWNER)
    assert name.startswith("analysis-worker-") and len(name) == len("analysis-worker-") + 5
    assert pod["metadata"]["name"] == name
    args = pod["spec"]["containers"][0]["args"]
    assert args[args.index("--name") + 1] == name
    assert args[args.index("--death-timeout") + 1] == "60"
    assert args[:5] == ["dask-worker", "--nthreads", "1", "--memory-limit", "1G"]


def test_template_death_timeout_and_name_are_kept() -> None:
    template = {"containers": [{"name": "w", "image": "img",
                                "args": ["dask", "worker", "--death-timeout=5", "--name", "mine"]}]}
    request = parse_request("analysis", request_data(worker_template=template))
    pod = builders.build_worker_pod(request, NS, "analysis-worker-abcde", OWNER)
    assert pod["spec"]["containers"][0]["args"] == ["dask", "worker", "--death-timeout=5", "--name", "mine"]


def test_a_bare_image_runs_dask_worker_with_its_name() -> None:
    template = {"containers": [{"name": "w", "image": "ghcr.io/dask/dask:latest"}]}
    request = parse_request("analysis", request_data(worker_template=template))
    pod = builders.build_worker_pod(request, NS, "analysis-worker-abcde", OWNER)
    assert pod["spec"]["containers"][0]["args"] == [
        "dask", "worker", "--no-dashboard", "--name", "analysis-worker-abcde", "--death-timeout", "60"]


def test_what_the_builders_add_passes_the_restricted_profile() -> None:
    from kubedask_controller.policy import Policy, admit, deputy, pss
    from kubedask_controller.policy.document import Rules

    rules = Rules(profile="restricted")
    policy = Policy(profile="restricted")
    request = admit(parse_request("analysis", request_data()), policy, NS)
    for pod in (builders.build_worker_pod(request, NS, "analysis-worker-abcde", OWNER),
                builders.build_scheduler_pod(request, NS, OWNER)):
        spec = pod["spec"]
        assert [*pss.check(spec, pod["metadata"]["annotations"], rules), *deputy.check(spec, rules)] == []
        assert spec["securityContext"]["runAsNonRoot"] is True


def test_custom_commands_are_not_given_dask_flags() -> None:
    template = {"containers": [{"name": "w", "image": "img", "command": ["sh", "-c", "run.sh"]}]}
    request = parse_request("analysis", request_data(worker_template=template))
    pod = builders.build_worker_pod(request, NS, "analysis-worker-abcde", OWNER)
    assert "args" not in pod["spec"]["containers"][0]


def test_every_container_gets_the_scheduler_address() -> None:
    template = {"initContainers": [{"name": "init", "image": "busybox"}],
                "containers": [{"name": "w", "image": "img", "env": [{"name": "DASK_SCHEDULER_ADDRESS",
                                                                      "value": "stale"}]},
                               {"name": "sidecar", "image": "img2"}]}
    request = parse_request("analysis", request_data(worker_template=template))
    spec = builders.build_worker_pod(request, NS, "analysis-worker-abcde", OWNER)["spec"]
    for container in spec["initContainers"] + spec["containers"]:
        assert env(container)["DASK_SCHEDULER_ADDRESS"] == ADDRESS
        assert [e["name"] for e in container["env"]].count("DASK_SCHEDULER_ADDRESS") == 1


def test_labels_owner_and_classic_scheduling_defaults() -> None:
    request = parse_request("analysis", request_data())
    pod = builders.build_worker_pod(request, NS, "analysis-worker-abcde", OWNER)
    labels = pod["metadata"]["labels"]
    assert labels["user.kubedask.io/project"] == "a"  # template labels are kept
    assert labels["app.kubernetes.io/name"] == "dask"
    assert labels["app.kubernetes.io/instance"] == "analysis"
    assert labels["app.kubernetes.io/component"] == "worker"
    assert labels["app.kubernetes.io/managed-by"] == "kubedask"
    assert labels["app"] == "dask"
    assert labels["dask.org/cluster-name"] == "analysis"
    assert labels["dask.org/component"] == "worker"
    assert pod["metadata"]["namespace"] == NS
    assert pod["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "analysis", "uid": "uid-1", "controller": True}]
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert {"key": "k8s.dask.org/dedicated", "operator": "Equal", "value": "worker",
            "effect": "NoSchedule"} in spec["tolerations"]
    assert {"key": "k8s.dask.org_dedicated", "operator": "Equal", "value": "worker",
            "effect": "NoSchedule"} in spec["tolerations"]
    preferred = spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred[0]["preference"]["matchExpressions"] == [
        {"key": "k8s.dask.org/node-purpose", "operator": "In", "values": ["worker"]}]
    assert spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"


def test_pods_get_no_service_account_token_unless_the_template_asks() -> None:
    request = parse_request("analysis", request_data())
    for pod in (builders.build_worker_pod(request, NS, "analysis-worker-abcde", OWNER),
                builders.build_scheduler_pod(request, NS, OWNER)):
        assert pod["spec"]["automountServiceAccountToken"] is False


def test_template_choices_win_over_defaults() -> None:
    template = {"restartPolicy": "OnFailure", "tolerations": [{"key": "x", "operator": "Exists"}],
                "automountServiceAccountToken": True,
                "containers": [{"name": "w", "image": "img", "imagePullPolicy": "Always"}]}
    request = parse_request("analysis", request_data(worker_template=template))
    spec = builders.build_worker_pod(request, NS, "analysis-worker-abcde", OWNER)["spec"]
    assert spec["restartPolicy"] == "OnFailure"
    assert spec["automountServiceAccountToken"] is True  # the policy decides whether it may (deputy)
    assert spec["tolerations"][0] == {"key": "x", "operator": "Exists"}
    assert spec["containers"][0]["imagePullPolicy"] == "Always"


def test_building_does_not_mutate_the_request() -> None:
    request = parse_request("analysis", request_data())
    before = request.worker_template.model_dump()
    builders.build_worker_pod(request, NS, "analysis-worker-abcde", OWNER)
    builders.build_scheduler_pod(request, NS, OWNER)
    assert request.worker_template.model_dump() == before


def test_scheduler_pod_is_derived_from_the_worker_template() -> None:
    request = parse_request("analysis", request_data())
    pod = builders.build_scheduler_pod(request, NS, OWNER)
    assert pod["metadata"]["name"] == "analysis-scheduler"
    assert pod["metadata"]["labels"]["dask.org/component"] == "scheduler"
    container = pod["spec"]["containers"][0]
    # ``dask scheduler``: only the local image still ships the dashed ``dask-scheduler`` script.
    assert container["args"][:2] == ["dask", "scheduler"]
    assert {p["containerPort"] for p in container["ports"]} == {8786, 8787}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": 8787}
    assert "distributed.http.scheduler.api" in env(container)["DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES"]
    assert {"key": "k8s.dask.org/dedicated", "operator": "Equal", "value": "scheduler",
            "effect": "NoSchedule"} in pod["spec"]["tolerations"]


def test_per_container_annotations_follow_the_derived_schedulers_container() -> None:
    template = {"metadata": {"annotations": {
        "container.apparmor.security.beta.kubernetes.io/dask-worker": "runtime/default", "team": "a/dask-worker"}},
        "spec": {"containers": [{"name": "dask-worker", "image": "img"}]}}
    request = parse_request("analysis", request_data(worker_template=template))
    pod = builders.build_scheduler_pod(request, NS, OWNER)
    assert pod["spec"]["containers"][0]["name"] == "dask-scheduler"
    assert pod["metadata"]["annotations"] == {
        "container.apparmor.security.beta.kubernetes.io/dask-scheduler": "runtime/default", "team": "a/dask-worker"}
    worker = builders.build_worker_pod(request, NS, "analysis-worker-abcde", OWNER)
    assert "container.apparmor.security.beta.kubernetes.io/dask-worker" in worker["metadata"]["annotations"]


def test_scheduler_template_is_used_when_given() -> None:
    scheduler = {"containers": [{"name": "s", "image": "img", "args": ["dask", "scheduler"]}]}
    request = parse_request("analysis", request_data(scheduler_template=scheduler))
    container = builders.build_scheduler_pod(request, NS, OWNER)["spec"]["containers"][0]
    assert container["args"] == ["dask", "scheduler"]


def test_service_and_pdb_select_the_scheduler() -> None:
    request = parse_request("analysis", request_data(scheduler_service_type="NodePort"))
    service = service_builders.build_service(request, NS, OWNER)
    pdb = service_builders.build_pdb(request, NS, OWNER)
    assert service["metadata"]["name"] == pdb["metadata"]["name"] == "analysis-scheduler"
    assert service["spec"]["type"] == "NodePort"
    assert {p["port"] for p in service["spec"]["ports"]} == {8786, 8787}
    assert service["spec"]["selector"]["dask.org/component"] == "scheduler"
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


def test_local_mode_workers_connect_to_the_given_address() -> None:
    request = parse_request("analysis", request_data(deploy_mode="local", scheduler_address="tcp://10.1.2.3:8786"))
    pod = builders.build_worker_pod(request, NS, "analysis-worker-abcde", OWNER)
    assert env(pod["spec"]["containers"][0])["DASK_SCHEDULER_ADDRESS"] == "tcp://10.1.2.3:8786"


def scheduler_container(**data: Any) -> dict[str, Any]:
    pod = builders.build_scheduler_pod(parse_request("analysis", request_data(**data)), NS, OWNER)
    container: dict[str, Any] = pod["spec"]["containers"][0]
    return container


def test_the_scheduler_is_probed_every_second_from_its_start_then_gently() -> None:
    container = scheduler_container()
    startup, readiness = container["startupProbe"], container["readinessProbe"]
    # No initial delay and a 1 s period: ready within a second of listening, whichever second that is.
    assert startup["httpGet"] == readiness["httpGet"] == {"path": "/health", "port": 8787}
    assert startup.get("initialDelaySeconds", 0) == 0 and startup["periodSeconds"] == 1
    # A slow start (an image installing packages first) is waited for, not killed, for half an hour.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 1800
    assert readiness["periodSeconds"] >= 5 and readiness.get("initialDelaySeconds", 0) == 0
    assert "livenessProbe" not in container


def test_a_scheduler_templates_own_probes_are_kept() -> None:
    own = {"tcpSocket": {"port": 8786}, "periodSeconds": 2}
    base = {"name": "s", "image": "img", "args": ["dask", "scheduler"]}
    container = scheduler_container(scheduler_template={"containers": [{**base, "readinessProbe": own}]})
    # Its readiness probe alone decides: no startup probe of ours holds it back.
    assert container["readinessProbe"] == own and "startupProbe" not in container

    container = scheduler_container(scheduler_template={"containers": [{**base, "startupProbe": own}]})
    assert container["startupProbe"] == own and container["readinessProbe"] == builders.SCHEDULER_READINESS_PROBE


def test_a_derived_scheduler_drops_the_workers_probes() -> None:
    probe = {"httpGet": {"path": "/health", "port": 8788}}
    worker = {"containers": [{"name": "dask-worker", "image": "img", "args": ["dask", "worker"],
                              "startupProbe": probe, "readinessProbe": probe, "livenessProbe": probe}]}
    container = scheduler_container(worker_template=worker)
    assert container["startupProbe"] == builders.SCHEDULER_STARTUP_PROBE
    assert container["readinessProbe"] == builders.SCHEDULER_READINESS_PROBE
    assert "livenessProbe" not in container
