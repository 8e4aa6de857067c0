"""The shared schema as the client and users see it: kubedask's own messages, one name rule, derived names."""

from __future__ import annotations

import pytest
from kubedask import spec
from kubedask.spec import RequestError, parse_request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

TEMPLATE = "containers: [{name: w, image: img}]"


@pytest.mark.parametrize(("adapt", "expected"), [
    ('{"maximum": 5, "interval": 0}', "key 'adapt': field 'interval' has value 0; it must be more than 0."),
    ('{"maximum": 5, "interval": 7200}', "field 'interval' has value 7200; it must be at most 3600."),
    ('{"maximum": 5, "cooldown": -1}', "field 'cooldown' has value -1; it must be at least 0."),
])
def test_adapt_bounds_are_explained_in_kubedasks_words(adapt: str, expected: str) -> None:
    with pytest.raises(RequestError) as err:
        parse_request("analysis", {"worker-template": TEMPLATE, "adapt": adapt})
    message = str(err.value)
    assert expected in message
    assert err.value.key == "adapt"
    for pydantic_text in ("pydantic", "errors.pydantic.dev", "validation error for", "AdaptSpec", "[type="):
        assert pydantic_text not in message


class _Example(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=1)
    mode: str
    speed: float = 1.0


@pytest.mark.parametrize(("values", "expected"), [
    ({"count": 0, "mode": "a"}, "field 'count' has value 0; it must be at least 1"),
    ({"count": "many", "mode": "a"}, "field 'count' has value 'many'; it must be a whole number"),
    ({"count": 1}, "field 'mode' is required"),
    ({"count": 1, "mode": "a", "colour": "red"}, "field 'colour' is not a known field; remove it"),
    ({"count": 1, "mode": "a", "speed": "fast"}, "field 'speed' has value 'fast'; it must be a number"),
])
def test_every_validation_error_is_translated(values: dict[str, object], expected: str) -> None:
    with pytest.raises(ValidationError) as exc:
        _Example.model_validate(values)
    error = spec.from_validation_error(exc.value, "example")
    assert isinstance(error, RequestError) and error.key == "example"
    assert str(error).startswith("key 'example': ")
    assert expected in str(error)
    assert "pydantic" not in str(error)


def test_several_problems_are_all_named() -> None:
    with pytest.raises(ValidationError) as exc:
        _Example.model_validate({"count": 0})
    described = spec.describe_validation_error(exc.value)
    assert "'count'" in described and "'mode' is required" in described


def test_derived_names_come_from_one_place() -> None:
    assert spec.scheduler_name("analysis") == "analysis-scheduler"
    assert spec.worker_name("analysis", "x7k2p") == "analysis-worker-x7k2p"
    assert spec.worker_name("analysis", "") == "analysis-worker-"
    assert spec.REQUEST_SELECTOR == f"{spec.REQUEST_LABEL}={spec.REQUEST_LABEL_VALUE}" == "kubedask.io/request=cluster"


def test_the_longest_allowed_name_still_fits_every_derived_name() -> None:
    longest = "a" * spec.MAX_NAME_LENGTH
    spec.validate_name(longest)
    # Services are DNS-1035 labels and pod names double as hostnames: both at most 63 characters.
    assert len(spec.scheduler_name(longest)) <= 63
    assert len(spec.worker_name(longest, "x" * 5)) <= 63
    assert not spec.is_valid_name(longest + "a")


@pytest.mark.parametrize("name", ["Analysis", "1cluster", "bad-", "a_b", ""])
def test_one_name_rule_refuses_unusable_names(name: str) -> None:
    assert spec.name_problem(name) is not None
    with pytest.raises(RequestError, match="not usable as a Dask cluster name"):
        spec.validate_name(name)


def test_template_problems_are_phrased_without_a_key() -> None:
    assert spec.template_problem({"containers": [{"name": "w", "image": "i"}]}) is None
    assert spec.template_problem({"kind": "Pod", "spec": {"containers": []}}) == (
        "the pod spec has no containers: it needs 'containers' with at least one entry, "
        "e.g. [{name: dask-worker, image: ghcr.io/dask/dask:latest}]")
    assert spec.template_problem({"containers": [{"name": "w"}]}) == "containers[0] has no 'image'"


def test_templates_sharing_values_are_written_without_yaml_aliases() -> None:
    env = [{"name": "A", "value": "1"}]
    template = {"containers": [{"name": "a", "image": "i", "env": env}, {"name": "b", "image": "i", "env": env}]}
    text = spec.dump_template(template)
    parsed = spec.parse_template(text)  # the controller refuses anchors and aliases
    assert parsed.spec["containers"][1]["env"] == env
