"""Request labels under ``user.kubedask.io/`` reach every object of the cluster; no other request label does,
and the controller's own labels always win."""

from __future__ import annotations

from typing import Any

import pytest
from controller_fakes import configmap, request_data
from kubedask.spec import ClusterRequest, parse_request
from kubedask_controller import builders, job, labelling, service_builders
from kubedask_controller.observe import relevant
from kubedask_controller.reconcile import Observed, PatchService, PodInfo, plan

NS = "team-a"
OWNER = labelling.owner_reference("analysis", "uid-1")
TEAM = {"user.kubedask.io/team": "risk", "user.kubedask.io/cost-centre": "cc-42"}


def labelled(configmap_labels: dict[str, Any], **data: Any) -> ClusterRequest:
    return labelling.labelled(parse_request("analysis", request_data(**data)), configmap_labels)


def owned_objects(request: ClusterRequest) -> dict[str, dict[str, Any]]:
    return {
        "scheduler": builders.build_scheduler_pod(request, NS, OWNER),
        "worker": builders.build_worker_pod(request, NS, "analysis-worker-abcde", OWNER),
        **({"named group worker": builders.build_worker_pod(request, NS, "analysis-worker-gpu-abcde", OWNER, "gpu")}
           if request.worker_groups else {}),
        "service": service_builders.build_service(request, NS, OWNER),
        "pdb": service_builders.build_pdb(request, NS, OWNER),
        **({"job": job.build_job_pod(request, NS, OWNER)} if request.job_template else {}),
    }


def test_prefixed_request_labels_reach_every_owned_object() -> None:
    request = labelled({**TEAM, "kubedask.io/request": "cluster"},
                       job_template={"containers": [{"name": "j", "image": "img"}]},
                       worker_groups={"gpu": (1, {"containers": [{"name": "w", "image": "img"}]})})
    objects = owned_objects(request)
    assert set(objects) == {"scheduler", "worker", "named group worker", "service", "pdb", "job"}
    for kind, obj in objects.items():
        assert obj["metadata"]["labels"].items() >= TEAM.items(), kind
        assert "kubedask.io/request" not in obj["metadata"]["labels"], kind


@pytest.mark.parametrize("label", [
    "team",                                   # plain: could match a NetworkPolicy or another Service's selector
    "azure.workload.identity/use",            # an admission webhook would inject a cloud token
    "app.kubernetes.io/instance",             # Argo CD's tracking label: it would claim and prune the pods
    "kubedask.io/request", "kubedask.io/phase",  # the controller's own request labels
    "sub.user.kubedask.io/x", "user.kubedask.io.evil.com/x",  # look-alike prefixes
])
def test_no_other_request_label_is_propagated(label: str) -> None:
    request = labelled({label: "true"})
    assert labelling.request_labels(request) == {}
    for kind, obj in owned_objects(request).items():
        assert obj["metadata"]["labels"].get(label) != "true", kind


def test_the_controllers_labels_and_selectors_win_over_the_templates_and_the_requests() -> None:
    template = {"kind": "Pod", "metadata": {"labels": {"user.kubedask.io/team": "from-template",
                                                       "dask.org/cluster-name": "other"}},
                "spec": {"containers": [{"name": "w", "image": "img"}]}}
    request = labelled(TEAM, worker_template=template)
    pod = builders.build_worker_pod(request, NS, "analysis-worker-abcde", OWNER)
    assert pod["metadata"]["labels"]["user.kubedask.io/team"] == "risk"  # the request's, over the template's
    assert pod["metadata"]["labels"].items() >= labelling.labels("analysis", "worker").items()
    service = service_builders.build_service(request, NS, OWNER)
    assert service["spec"]["selector"] == labelling.selector("analysis", "scheduler")


@pytest.mark.parametrize("value", ["a" * 64, "has space", "-leading", 7, None])
def test_labels_that_are_not_valid_label_values_are_not_copied(value: Any) -> None:
    assert labelling.propagated_labels({"user.kubedask.io/x": value, **TEAM}) == TEAM


def test_a_name_too_long_or_not_a_label_name_is_not_copied() -> None:
    assert labelling.propagated_labels({"user.kubedask.io/" + "n" * 64: "v", "user.kubedask.io/a/b": "v",
                                        "user.kubedask.io/": "v", "user.kubedask.io/" + "n" * 63: "v"}) == {
        "user.kubedask.io/" + "n" * 63: "v"}


def test_at_most_32_labels_are_copied_so_a_request_cannot_inflate_every_pod() -> None:
    many = {f"user.kubedask.io/l{i:03}": "v" for i in range(1000)}
    kept = labelling.propagated_labels(many)
    assert list(kept) == [f"user.kubedask.io/l{i:03}" for i in range(labelling.MAX_PROPAGATED_LABELS)]
    pod = builders.build_worker_pod(labelled(many), NS, "analysis-worker-abcde", OWNER)
    assert sum(k.startswith("user.kubedask.io/l") for k in pod["metadata"]["labels"]) == 32


def test_a_request_without_prefixed_labels_is_the_request_itself() -> None:
    request = parse_request("analysis", request_data())
    assert labelling.labelled(request, {"kubedask.io/request": "cluster"}) is request
    with_team = labelling.labelled(request, TEAM)
    assert labelling.request_labels(with_team) == TEAM and with_team.worker_template == request.worker_template
    # Labels removed from the request: back to a plain request, which carries none.
    assert labelling.request_labels(labelling.labelled(with_team, {})) == {}


def test_an_edit_of_the_request_labels_wakes_the_driver_but_its_phase_label_does_not() -> None:
    body = configmap(request_data())
    before = relevant(body)
    body["metadata"]["labels"]["kubedask.io/phase"] = "Running"  # the controller's own status write
    assert relevant(body) == before
    body["metadata"]["labels"]["user.kubedask.io/team"] = "risk"
    assert relevant(body) != before


def test_a_live_label_edit_patches_the_service_adding_and_removing_only_its_own_keys() -> None:
    old = labelled(TEAM)
    service = service_builders.build_service(old, NS, OWNER)
    service["metadata"]["labels"]["cloud.example/zone"] = "z1"
    new = labelled({"user.kubedask.io/team": "fraud"})
    observed = Observed(scheduler=PodInfo("analysis-scheduler", phase="Running", ready=True), service=True, pdb=True)
    (action,) = [a for a in plan(new, observed, 3, "ClusterIP", service).actions if isinstance(a, PatchService)]
    assert action.patch["metadata"]["labels"] == {"user.kubedask.io/team": "fraud",
                                                  "user.kubedask.io/cost-centre": None}
    assert service_builders.service_patch(old, service) is None
