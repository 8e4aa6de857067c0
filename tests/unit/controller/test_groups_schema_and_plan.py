"""Worker groups: the ``workers.GROUP`` / ``worker-template.GROUP`` keys, the group-aware plan, the pods and
status per group, and the policy checking every group's template."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from controller_fakes import request_data
from kubedask.spec import (
    WORKER_GROUP_LABEL,
    ClusterStatus,
    RequestError,
    build_request_data,
    parse_request,
)
from kubedask_controller import builders, status
from kubedask_controller.expectations import Expectations
from kubedask_controller.policy import Policy, PolicyViolation, admit, worker_claim
from kubedask_controller.reconcile import (
    CreateWorkers,
    Observed,
    PodInfo,
    RetireWorkers,
    plan,
)

GPU_TEMPLATE: dict[str, Any] = {"containers": [{"name": "dask-worker", "image": "ghcr.io/dask/dask:latest",
                                                "args": ["dask", "worker", "--resources", "GPU=1"]}],
                                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]}
SCHEDULER = PodInfo("analysis-scheduler", phase="Running", ready=True, ip="10.0.0.1")


def grouped(**groups: int) -> dict[str, str]:
    return request_data(workers=2, worker_groups={g: (n, GPU_TEMPLATE) for g, n in groups.items()})


def running(name: str, group: str = "default", created: str = "2026-01-01T00:00:00Z") -> PodInfo:
    return PodInfo(name, phase="Running", ready=True, created=created, group=group)


def observed(*workers: PodInfo) -> Observed:
    return Observed(scheduler=SCHEDULER, service=True, pdb=True, workers=workers)


# --- schema ------------------------------------------------------------------------------------------


def test_suffixed_keys_add_named_groups_and_the_plain_keys_stay_the_default_group() -> None:
    request = parse_request("analysis", grouped(gpu=1, highmem=3))
    assert request.workers == 2
    assert [(g.name, g.workers) for g in request.worker_groups] == [("gpu", 1), ("highmem", 3)]
    assert request.group_template("gpu").spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert request.group_template("default") == request.worker_template


def test_a_group_template_without_a_count_has_no_workers_yet() -> None:
    data = request_data()
    data["worker-template.gpu"] = "containers: [{name: w, image: dask}]"
    assert parse_request("analysis", data).worker_groups[0].workers == 0


@pytest.mark.parametrize(("key", "value", "words"), [
    ("workers.gpu", "1", "'worker-template.gpu' is missing"),
    ("worker-template.GPU", "containers: [{name: w, image: d}]", "lower-case letters"),
    ("worker-template.default", "containers: [{name: w, image: d}]", "use those"),
    ("worker-template.gpu-", "containers: [{name: w, image: d}]", "ending with a letter or digit"),
    ("worker-template." + "g" * 21, "containers: [{name: w, image: d}]", "at most 20 fit here"),
    ("workers.gpu.big", "1", "lower-case letters"),
    ("worker-templates.gpu", "x", "unknown key"),
])
def test_bad_group_keys_are_refused_with_what_is_wrong(key: str, value: str, words: str) -> None:
    with pytest.raises(RequestError) as err:
        parse_request("analysis", {**request_data(), key: value})
    assert words in str(err.value)
    assert err.value.key == key


def test_a_long_cluster_name_leaves_less_room_for_group_names() -> None:
    name = "a" * 40  # 40 + "-worker-" + GROUP + "-xxxxx" <= 63: at most 9 characters
    data = {**request_data(), "worker-template.gpu-nodes1": "containers: [{name: w, image: d}]"}
    with pytest.raises(RequestError, match="at most 9 fit here"):
        parse_request(name, data)
    data = {**request_data(), "worker-template.gpu-nodes": "containers: [{name: w, image: d}]"}
    assert len(builders.new_worker_name(name, group=parse_request(name, data).worker_groups[0].name)) == 63


def test_a_bad_group_count_names_its_key() -> None:
    with pytest.raises(RequestError) as err:
        parse_request("analysis", {**grouped(gpu=1), "workers.gpu": "two"})
    assert err.value.key == "workers.gpu"


def test_build_request_data_writes_flat_group_keys() -> None:
    data = build_request_data(worker_template=GPU_TEMPLATE, workers=1, worker_groups={"gpu": (2, GPU_TEMPLATE)})
    assert data["workers.gpu"] == "2"
    assert "nvidia.com/gpu" in data["worker-template.gpu"]


# --- pods, plan, status --------------------------------------------------------------------------------


def test_group_pods_are_named_and_labelled_with_their_group_and_built_from_its_template() -> None:
    request = parse_request("analysis", grouped(gpu=1))
    name = builders.new_worker_name("analysis", group="gpu")
    assert name.startswith("analysis-worker-gpu-") and len(name) == len("analysis-worker-gpu-") + 5
    pod = builders.build_worker_pod(request, "ns", name, builders.owner_reference("analysis", "u"), "gpu")
    assert pod["metadata"]["labels"][WORKER_GROUP_LABEL] == "gpu"
    assert "--resources" in pod["spec"]["containers"][0]["args"]
    default = builders.build_worker_pod(request, "ns", "analysis-worker-abcde", builders.owner_reference("a", "u"))
    assert default["metadata"]["labels"][WORKER_GROUP_LABEL] == "default"
    assert PodInfo.from_manifest(pod).group == "gpu"


def test_a_new_request_creates_every_groups_workers() -> None:
    result = plan(parse_request("analysis", grouped(gpu=1)), observed(), 2)
    creates = [a for a in result.actions if isinstance(a, CreateWorkers)]
    assert creates == [CreateWorkers(2, "default"), CreateWorkers(1, "gpu")]
    assert result.desired_workers == 3


def test_each_group_is_scaled_on_its_own() -> None:
    request = parse_request("analysis", grouped(gpu=3))
    now = observed(running("d1"), running("d2"), running("g1", "gpu"))
    assert [a for a in plan(request, now, 2).actions] == [CreateWorkers(2, "gpu")]


def test_a_group_that_exited_is_repaired_within_its_group() -> None:
    request = parse_request("analysis", grouped(gpu=1))
    now = observed(running("d1"), running("d2"), dataclasses.replace(running("g1", "gpu"), phase="Failed"))
    assert CreateWorkers(1, "gpu") in plan(request, now, 2).actions


def test_a_removed_groups_workers_are_retired_by_name_while_other_groups_run() -> None:
    request = parse_request("analysis", request_data(workers=2))
    now = observed(running("d1"), running("d2"), running("g1", "gpu", "2026-01-01T00:00:01Z"), running("g2", "gpu"))
    (action,) = plan(request, now, 2).actions
    # The scheduler would pick among every group's workers: the controller names the group's (newest first).
    assert action == RetireWorkers(2, ("g1", "g2"), "gpu", scheduler_chooses=False)


def test_a_group_alone_is_retired_through_the_scheduler() -> None:
    request = parse_request("analysis", grouped(gpu=0))
    now = observed(running("g1", "gpu"))
    result = plan(request, dataclasses.replace(now), 0)
    assert result.actions == (RetireWorkers(1, ("g1",), "gpu", scheduler_chooses=True),)


def test_expected_creates_count_in_their_group() -> None:
    class Clock:
        def monotonic(self) -> float:
            return 0.0

    expectations = Expectations(Clock(), 30)  # type: ignore[arg-type]
    expectations.created(["analysis-worker-gpu-bcdfg"], "gpu")
    assert expectations.overlay({})["analysis-worker-gpu-bcdfg"].group == "gpu"


def test_status_counts_per_group_and_in_total() -> None:
    request = parse_request("analysis", grouped(gpu=1))
    now = observed(running("d1"), running("d2"), PodInfo("g1", phase="Pending", group="gpu"))
    shown = status.cluster_status(request, "ns", now, 2)
    assert shown.workers.requested == 3 and shown.workers.running == 2
    assert shown.worker_groups["gpu"].requested == 1 and shown.worker_groups["gpu"].running == 0
    assert shown.worker_groups["default"].running == 2
    again = ClusterStatus.model_validate_json(shown.to_json())
    assert again.worker_groups == shown.worker_groups


def test_a_cluster_without_groups_writes_the_status_it_always_wrote() -> None:
    request = parse_request("analysis", request_data(workers=1))
    shown = status.cluster_status(request, "ns", observed(running("d1")), 1)
    assert "workerGroups" not in shown.to_json()


# --- policy ------------------------------------------------------------------------------------------


def test_every_groups_template_goes_through_the_policy() -> None:
    data = grouped(gpu=1)
    data["worker-template.gpu"] = "containers: [{name: w, image: d, securityContext: {privileged: true}}]"
    with pytest.raises(PolicyViolation) as err:
        admit(parse_request("analysis", data), Policy(), "team-a")
    assert "worker-template.gpu" in str(err.value)
    assert err.value.key == "worker-template.gpu"


def test_the_restricted_profile_fills_every_groups_template() -> None:
    policy = Policy(profile="restricted")
    admitted = admit(parse_request("analysis", grouped(gpu=1)), policy, "team-a")
    assert admitted.group_template("gpu").spec["securityContext"]["runAsNonRoot"] is True
    assert admitted.worker_groups[0].workers == 1


def test_group_workers_count_toward_the_claim_and_the_caps() -> None:
    request = parse_request("analysis", grouped(gpu=3))
    assert worker_claim(request) == 5
    with pytest.raises(PolicyViolation, match="at most 4 workers"):
        admit(request, Policy(max_workers=4), "team-a")
