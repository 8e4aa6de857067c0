"""The request schema: what parses, and what users are told when it doesn't."""

from __future__ import annotations

import pytest
from controller_fakes import WORKER_TEMPLATE, request_data
from kubedask import spec
from kubedask.spec import RequestError, build_request_data, parse_request, parse_template, safe_yaml


def test_minimal_request_parses_with_classic_defaults() -> None:
    request = parse_request("analysis", {"worker-template": "containers: [{name: w, image: img}]"})
    assert request.workers == 0
    assert request.scheduler_service_type == "ClusterIP"
    assert request.deploy_mode == "remote"
    assert request.adapt is None and request.idle_timeout is None
    assert request.client_heartbeat_timeout is None


def test_build_request_data_round_trips_typed_values() -> None:
    data = build_request_data(worker_template=WORKER_TEMPLATE, workers=4, scheduler_service_type="NodePort",
                              adapt={"minimum": 1, "maximum": 5}, idle_timeout=3600,
                              client_heartbeat_timeout="5m")
    assert all(isinstance(v, str) for v in data.values())
    request = parse_request("analysis", data)
    assert request.workers == 4
    assert request.scheduler_service_type == "NodePort"
    assert request.adapt is not None and (request.adapt.minimum, request.adapt.maximum) == (1, 5)
    assert request.idle_timeout == 3600
    assert request.client_heartbeat_timeout == 300
    assert request.worker_template.labels == {"user.kubedask.io/project": "a"}


def test_request_configmap_carries_the_request_label() -> None:
    cm = spec.build_request_configmap("analysis", "team-a", request_data())
    assert cm["metadata"]["labels"][spec.REQUEST_LABEL] == spec.REQUEST_LABEL_VALUE
    assert cm["metadata"]["namespace"] == "team-a"


def test_bare_pod_spec_and_pod_manifest_are_equivalent() -> None:
    bare = parse_template("containers: [{name: w, image: img}]")
    manifest = parse_template("kind: Pod\nspec: {containers: [{name: w, image: img}]}")
    assert bare.spec == manifest.spec


def test_fingerprint_changes_with_data_only() -> None:
    a = parse_request("a", request_data(workers=1))
    b = parse_request("b", request_data(workers=1))
    c = parse_request("a", request_data(workers=2))
    assert a.fingerprint == b.fingerprint != c.fingerprint


@pytest.mark.parametrize(("data", "expected"), [
    ({"workers": "-1"}, "'workers' has value '-1'; it must be between 0"),
    ({"workers": "three"}, "'workers' has value 'three', which is not a whole number"),
    ({"workers": "1.5"}, "not a whole number"),
    ({"worker-template": "containers: [\n"}, "'worker-template' is not valid YAML at line"),
    ({"worker-template": "kind: Pod\nspec: {restartPolicy: Never}"}, "has no containers"),
    ({"worker-template": "spec: {containers: []}"}, "has no containers"),
    ({"worker-template": "containers: [{name: w}]"}, "containers[0] has no 'image'"),
    ({"worker-template": "kind: Deployment\nspec: {}"}, "only 'Pod'"),
    ({"worker-template": "- a\n- b"}, "must be a YAML mapping"),
    ({"scheduler-service-type": "Ingress"}, "allowed values are ClusterIP, NodePort, LoadBalancer"),
    ({"deploy-mode": "hybrid"}, "allowed values are remote, local"),
    ({"deploy-mode": "local"}, "'scheduler-address' is missing"),
    ({"deploy-mode": "local", "scheduler-address": "10.0.0.1"}, "expected 'PROTOCOL://HOST:PORT'"),
    ({"scheduler-address": "tcp://a:1"}, "only used with 'deploy-mode': 'local'"),
    ({"idle-timeout": "soon"}, "'idle-timeout' has value 'soon', which is not a duration"),
    ({"idle-timeout": "0"}, "more than zero seconds"),
    ({"adapt": "{minimum: 5, maximum: 2}"}, "'minimum' (5) is larger than 'maximum' (2)"),
    ({"adapt": "{minimum: 1}"}, "needs a 'maximum'"),
    ({"adapt": "{maximum: 2, speed: 3}"}, "unknown field 'speed'"),
    ({"adapt": "[1, 2]"}, "expected a mapping"),
    ({"worker": "3"}, "unknown key 'worker' in the request data. Did you mean 'workers'?"),
])
def test_invalid_values_are_reported_with_key_value_and_fix(data: dict[str, str], expected: str) -> None:
    full = {"worker-template": "containers: [{name: w, image: img}]", **data}
    with pytest.raises(RequestError) as err:
        parse_request("analysis", full)
    assert expected in str(err.value)


def test_missing_worker_template_is_named() -> None:
    with pytest.raises(RequestError, match="'worker-template' is missing"):
        parse_request("analysis", {"workers": "1"})


@pytest.mark.parametrize(("name", "expected"), [
    ("a" * 48, "48 characters long; at most 47"),
    ("Analysis", "lower-case letters"),
    ("1cluster", "starting with a letter"),
    ("bad-", "ending with a letter or digit"),
])
def test_unusable_names_are_refused(name: str, expected: str) -> None:
    with pytest.raises(RequestError) as err:
        parse_request(name, request_data())
    assert err.value.key == "metadata.name"
    assert expected in str(err.value)


def test_yaml_alias_bomb_is_refused_without_expanding() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9)) + "containers: [{name: w, image: img, args: [*j]}]\n"
    with pytest.raises(RequestError, match="anchor or alias"):
        parse_template(bomb)


def test_one_mebibyte_template_is_refused_before_parsing() -> None:
    big = "containers: [{name: w, image: img}]\n# " + "x" * (1024 * 1024)
    with pytest.raises(RequestError, match="bytes; at most 131072 bytes are allowed"):
        parse_template(big)


def test_deeply_nested_yaml_is_refused() -> None:
    with pytest.raises(RequestError, match="nested more than"):
        parse_template("containers: " + "[" * 200 + "]" * 200)


def test_python_object_tags_are_not_evaluated() -> None:
    with pytest.raises(RequestError, match="not valid YAML"):
        parse_template("containers: !!python/object/apply:os.system ['true']")


@pytest.mark.parametrize("template, refusal", [
    ("a: &a [x]\nb: *a\ncontainers: [{name: w, image: img}]\n", "anchor or alias"),
    ("containers: " + "[" * 41 + "]" * 41, "nested more than"),
    ("containers: !!python/object/apply:os.system ['true']", "not valid YAML"),
])
def test_the_pure_python_loader_refuses_what_the_libyaml_one_does(
        template: str, refusal: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where PyYAML was built without libyaml, the pure-Python loader does the same checks."""
    assert safe_yaml._LIBYAML is not None  # the tests above ran on libyaml
    monkeypatch.setattr(safe_yaml, "_LIBYAML", None)
    with pytest.raises(RequestError, match=refusal):
        parse_template(template)
    assert parse_template("containers: [{name: w, image: img}]").spec["containers"][0]["image"] == "img"


def test_durations_accept_units() -> None:
    assert spec.parse_duration("90", "k") == 90
    assert spec.parse_duration("2m", "k") == 120
    assert spec.parse_duration("1.5h", "k") == 5400


def test_heartbeat_round_trip() -> None:
    value = spec.format_heartbeat()
    parsed = spec.parse_heartbeat(value)
    assert parsed is not None and parsed.tzinfo is not None
    assert spec.parse_heartbeat("garbage") is None
    assert spec.parse_heartbeat(None) is None


def test_status_json_uses_kubernetes_style_keys_and_parses_back() -> None:
    status = spec.ClusterStatus(phase="Running", scheduler_address="tcp://x:8786", observed_spec="abc")
    raw = status.to_json()
    assert '"schedulerAddress":"tcp://x:8786"' in raw and '"observedSpec":"abc"' in raw
    back = spec.parse_status({spec.STATUS_ANNOTATION: raw})
    assert back == status
    assert spec.parse_status({spec.STATUS_ANNOTATION: "{not json"}) is None
