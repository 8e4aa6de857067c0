"""``scheduler-service-template``: what a request may set on its scheduler Service, and the live patch."""

from __future__ import annotations

from typing import Any

import pytest
from controller_fakes import request_data
from kubedask.spec import RequestError, parse_request
from kubedask_controller import labelling, service_builders
from kubedask_controller.policy import Policy, PolicyViolation, admit
from kubedask_controller.reconcile import Observed, PatchService, PodInfo, plan

TEMPLATE = {"metadata": {"labels": {"team": "a"}, "annotations": {"lb.example/internal": "true"}},
            "spec": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.0/8"],
                     "externalTrafficPolicy": "Local", "ports": [{"port": 8786, "name": "tls-comm"}]}}
OWNER = labelling.owner_reference("analysis", "uid-1")
OBSERVED = Observed(scheduler=PodInfo("analysis-scheduler", phase="Running", ready=True), service=True, pdb=True)


def request(template: Any = TEMPLATE, **data: str) -> Any:
    return parse_request("analysis", {**request_data(workers=0, scheduler_service_template=template), **data})


def test_the_template_sets_labels_annotations_and_safe_fields_but_never_the_selector() -> None:
    service = service_builders.build_service(request(), "ns", OWNER)
    assert service["metadata"]["annotations"] == {
        "lb.example/internal": "true",
        service_builders.APPLIED_KEYS_ANNOTATION: '{"annotations":["lb.example/internal"],"labels":["team"]}'}
    assert service["metadata"]["labels"]["team"] == "a"
    assert service["metadata"]["labels"]["dask.org/cluster-name"] == "analysis"
    spec = service["spec"]
    assert (spec["type"], spec["loadBalancerSourceRanges"], spec["externalTrafficPolicy"]) == (
        "LoadBalancer", ["10.0.0.0/8"], "Local")
    assert [p["name"] for p in spec["ports"]] == ["tls-comm", "http-dashboard"]
    assert spec["selector"] == labelling.selector("analysis", "scheduler")


@pytest.mark.parametrize(("template", "words"), [
    ({"spec": {"selector": {"app": "x"}}}, "spec.selector cannot be set"),
    ({"spec": {"clusterIP": "None"}}, "spec.clusterIP cannot be set"),
    # The controller's: workers must reach the scheduler as soon as it listens.
    ({"spec": {"publishNotReadyAddresses": False}}, "spec.publishNotReadyAddresses cannot be set"),
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


def test_the_policy_checks_the_templates_service_type_annotations_and_labels() -> None:
    with pytest.raises(PolicyViolation, match="LoadBalancer"):
        admit(request(), Policy(allowedServiceAnnotations=["lb.example/internal"]), "team-a")
    with pytest.raises(PolicyViolation, match="allowedServiceAnnotations"):
        admit(request(), Policy(allowed_service_types=["ClusterIP", "LoadBalancer"]), "team-a")
    # The template's label ``team`` too: Service labels are allowlisted (allowedServiceLabels) like pod labels.
    with pytest.raises(PolicyViolation, match="allowedServiceLabels"):
        admit(request(), Policy(allowed_service_types=["ClusterIP", "LoadBalancer"],
                                allowedServiceAnnotations=["lb.example/internal"]), "team-a")
    admit(request(), Policy(allowed_service_types=["ClusterIP", "LoadBalancer"],
                            allowedServiceAnnotations=["lb.example/internal"], allowedServiceLabels=["team"]),
          "team-a")


def test_a_service_as_built_needs_no_patch_and_an_edit_is_patched_live() -> None:
    built = service_builders.build_service(request(), "ns", OWNER)
    assert service_builders.service_patch(request(), built) is None
    assert not [a for a in plan(request(), OBSERVED, 0, "LoadBalancer", built).actions if isinstance(a, PatchService)]

    plain = service_builders.build_service(parse_request("analysis", request_data(workers=0)), "ns", OWNER)
    plain["spec"]["ports"][0]["nodePort"] = 30001
    patch = service_builders.service_patch(request(), plain)
    assert patch is not None
    assert patch["metadata"] == {"labels": {"team": "a"}, "annotations": {
        "lb.example/internal": "true",
        service_builders.APPLIED_KEYS_ANNOTATION: '{"annotations":["lb.example/internal"],"labels":["team"]}'}}
    assert patch["spec"]["type"] == "LoadBalancer" and patch["spec"]["loadBalancerSourceRanges"] == ["10.0.0.0/8"]
    assert patch["spec"]["ports"][0] == {**plain["spec"]["ports"][0], "name": "tls-comm"}
    assert "selector" not in patch["spec"]
    (action,) = [a for a in plan(request(), OBSERVED, 0, "ClusterIP", plain).actions if isinstance(a, PatchService)]
    assert action.patch == patch


def test_the_service_publishes_the_scheduler_before_it_is_ready_and_an_older_service_is_patched() -> None:
    built = service_builders.build_service(parse_request("analysis", request_data(workers=0)), "ns", OWNER)
    assert built["spec"]["publishNotReadyAddresses"] is True
    # A Service an older controller made: the API server omits the field when false.
    older = {**built, "spec": {k: v for k, v in built["spec"].items() if k != "publishNotReadyAddresses"}}
    plain = parse_request("analysis", request_data(workers=0))
    assert service_builders.service_patch(plain, older) == {"spec": {"publishNotReadyAddresses": True}}
    assert service_builders.service_patch(plain, built) is None


def test_removing_source_ranges_from_the_template_removes_them_from_the_service() -> None:
    built = service_builders.build_service(request(), "ns", OWNER)
    less = request({"metadata": TEMPLATE["metadata"],
                    "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                             "ports": [{"port": 8786, "name": "tls-comm"}]}})
    assert service_builders.service_patch(less, built) == {"spec": {"loadBalancerSourceRanges": None}}


def test_keys_removed_from_the_template_are_removed_and_foreign_keys_stay() -> None:
    built = service_builders.build_service(request(), "ns", OWNER)
    # A cloud controller annotated the Service and labelled it after the controller created it.
    built["metadata"]["annotations"]["cloud.example/lb-id"] = "lb-123"
    built["metadata"]["labels"]["cloud.example/zone"] = "z1"
    less = request({"metadata": {"annotations": {"other.example/x": "1"}}, "spec": TEMPLATE["spec"]})
    patch = service_builders.service_patch(less, built)
    assert patch is not None
    assert patch["metadata"] == {
        "labels": {"team": None},
        "annotations": {"other.example/x": "1", "lb.example/internal": None,
                        service_builders.APPLIED_KEYS_ANNOTATION: '{"annotations":["other.example/x"],"labels":[]}'}}
    # Applied (as a merge patch would be), the Service needs nothing more and keeps the foreign keys.
    for part in ("labels", "annotations"):
        for key, value in patch["metadata"][part].items():
            if value is None:
                built["metadata"][part].pop(key)
            else:
                built["metadata"][part][key] = value
    assert service_builders.service_patch(less, built) is None
    assert built["metadata"]["annotations"]["cloud.example/lb-id"] == "lb-123"
    assert built["metadata"]["labels"]["cloud.example/zone"] == "z1"
    assert built["metadata"]["labels"]["dask.org/cluster-name"] == "analysis"


def test_a_service_without_a_record_loses_nothing_and_gets_the_record() -> None:
    # Made by an older controller: nothing says which keys were the template's, so none is removed.
    old = service_builders.build_service(request(), "ns", OWNER)
    del old["metadata"]["annotations"][service_builders.APPLIED_KEYS_ANNOTATION]
    patch = service_builders.service_patch(request({"spec": TEMPLATE["spec"]}), old)
    assert patch == {"metadata": {"annotations": {
        service_builders.APPLIED_KEYS_ANNOTATION: '{"annotations":[],"labels":[]}'}}}


@pytest.mark.parametrize("record", ["not json", '["team"]', '{"labels": "team"}',
                                    '{"labels": ["app.kubernetes.io/managed-by", "dask.org/cluster-name"]}'])
def test_a_tampered_record_never_removes_the_controllers_labels(record: str) -> None:
    service = service_builders.build_service(request(), "ns", OWNER)
    service["metadata"]["annotations"][service_builders.APPLIED_KEYS_ANNOTATION] = record
    patch = service_builders.service_patch(request(), service) or {}
    assert all(value is not None for value in patch.get("metadata", {}).get("labels", {}).values())


def test_the_template_cannot_overwrite_the_record() -> None:
    template = {"metadata": {"annotations": {service_builders.APPLIED_KEYS_ANNOTATION: '{"labels":["x"]}'}}}
    service = service_builders.build_service(request(template), "ns", OWNER)
    assert service_builders.recorded_keys(service) == {"annotations": set(), "labels": set()}
