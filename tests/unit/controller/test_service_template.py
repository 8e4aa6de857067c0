"""``scheduler-service-template``: what a request may set on its scheduler Service, and the live patch."""

from __future__ import annotations

from typing import Any

import pytest
from controller_fakes import request_data
from kubedask.spec import RequestError, parse_request
from kubedask_controller import builders
from kubedask_controller.policy import Policy, PolicyViolation, admit
from kubedask_controller.reconcile import Observed, PatchService, PodInfo, plan

TEMPLATE = {"metadata": {"labels": {"team": "a"}, "annotations": {"lb.example/internal": "true"}},
            "spec": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.0/8"],
                     "externalTrafficPolicy": "Local", "ports": [{"port": 8786, "name": "tls-comm"}]}}
OWNER = builders.owner_reference("analysis", "uid-1")
OBSERVED = Observed(scheduler=PodInfo("analysis-scheduler", phase="Running", ready=True), service=True, pdb=True)


def request(template: Any = TEMPLATE, **data: str) -> Any:
    return parse_request("analysis", {**request_data(workers=0, scheduler_service_template=template), **data})


def test_the_template_sets_labels_annotations_and_safe_fields_but_never_the_selector() -> None:
    service = builders.build_service(request(), "ns", OWNER)
    assert service["metadata"]["annotations"] == {"lb.example/internal": "true"}
    assert service["metadata"]["labels"]["team"] == "a"
    assert service["metadata"]["labels"]["dask.org/cluster-name"] == "analysis"
    spec = service["spec"]
    assert (spec["type"], spec["loadBalancerSourceRanges"], spec["externalTrafficPolicy"]) == (
        "LoadBalancer", ["10.0.0.0/8"], "Local")
    assert [p["name"] for p in spec["ports"]] == ["tls-comm", "http-dashboard"]
    assert spec["selector"] == builders.selector("analysis", "scheduler")


@pytest.mark.parametrize(("template", "words"), [
    ({"spec": {"selector": {"app": "x"}}}, "spec.selector cannot be set"),
    ({"spec": {"clusterIP": "None"}}, "spec.clusterIP cannot be set"),
    ({"spec": {"type": "ExternalName"}}, "spec.type is 'ExternalName'"),
    ({"spec": {"ports": [{"port": 9999, "name": "x"}]}}, "port 9999 is not one of"),
    ({"spec": {"ports": [{"port": 8786, "name": "x", "nodePort": 30000}]}}, "only a port's name"),
    ({"metadata": {"name": "other"}}, "metadata may hold only"),
    ({"metadata": {"labels": {"a": 1}}}, "mapping of strings to strings"),
])
def test_unsafe_or_wrong_fields_are_refused_with_a_message(template: Any, words: str) -> None:
    with pytest.raises(RequestError) as err:
        request(template)
    assert words in str(err.value) and err.value.key == "scheduler-service-template"


def test_a_type_in_the_template_must_agree_with_scheduler_service_type() -> None:
    assert request({"spec": {"type": "NodePort"}}).scheduler_service_type == "NodePort"
    with pytest.raises(RequestError, match="keep one of them"):
        request({"spec": {"type": "NodePort"}}, **{"scheduler-service-type": "ClusterIP"})


def test_the_policy_checks_the_templates_service_type() -> None:
    with pytest.raises(PolicyViolation, match="LoadBalancer"):
        admit(request(), Policy(), "team-a")
    admit(request(), Policy(allowed_service_types=["ClusterIP", "LoadBalancer"]), "team-a")


def test_a_service_as_built_needs_no_patch_and_an_edit_is_patched_live() -> None:
    built = builders.build_service(request(), "ns", OWNER)
    assert builders.service_patch(request(), built) is None
    assert not [a for a in plan(request(), OBSERVED, 0, "LoadBalancer", built).actions if isinstance(a, PatchService)]

    plain = builders.build_service(parse_request("analysis", request_data(workers=0)), "ns", OWNER)
    plain["spec"]["ports"][0]["nodePort"] = 30001
    patch = builders.service_patch(request(), plain)
    assert patch is not None
    assert patch["metadata"] == {"labels": {"team": "a"}, "annotations": {"lb.example/internal": "true"}}
    assert patch["spec"]["type"] == "LoadBalancer" and patch["spec"]["loadBalancerSourceRanges"] == ["10.0.0.0/8"]
    assert patch["spec"]["ports"][0] == {**plain["spec"]["ports"][0], "name": "tls-comm"}
    assert "selector" not in patch["spec"]
    (action,) = [a for a in plan(request(), OBSERVED, 0, "ClusterIP", plain).actions if isinstance(a, PatchService)]
    assert action.patch == patch


def test_removing_source_ranges_from_the_template_removes_them_from_the_service() -> None:
    built = builders.build_service(request(), "ns", OWNER)
    less = request({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                             "ports": [{"port": 8786, "name": "tls-comm"}]}})
    assert builders.service_patch(less, built) == {"spec": {"loadBalancerSourceRanges": None}}
