"""What scale() and adapt() write, and how attaching reads an existing request (in memory, no cluster)."""

from __future__ import annotations

import json

import pytest
from fake_kube import MemoryApi
from kubedask import spec
from kubedask.errors import ClusterNotFoundError
from kubedask.request_io import RequestIO, adapt_settings, build_manifest, scale_target

WORKER = {"spec": {"containers": [{"name": "w", "image": "img"}]}}


def test_scale_is_capped_by_count_max_and_refuses_negative_counts() -> None:
    assert scale_target(10, cap=None) == 10
    assert scale_target(10, cap=4) == 4
    with pytest.raises(ValueError, match="cannot scale to -1 workers"):
        scale_target(-1, cap=None)


def test_adapt_maximum_defaults_to_and_is_capped_by_count_max() -> None:
    assert adapt_settings(None, None, None, None, cap=None) == {"minimum": 0, "maximum": spec.MAX_WORKERS}
    assert adapt_settings(1, float("inf"), None, None, cap=8) == {"minimum": 1, "maximum": 8}
    assert adapt_settings(1, 50, "2s", "1 minute", cap=20) == {
        "minimum": 1, "maximum": 20, "interval": 2.0, "cooldown": 60.0}
    with pytest.raises(ValueError, match="minimum 5 is larger than maximum 2"):
        adapt_settings(5, 2, None, None, cap=None)


async def test_scaling_turns_adaptivity_off_and_adapting_turns_it_on() -> None:
    api = MemoryApi()
    api.configmaps["c1"] = build_manifest("c1", api.namespace, worker=WORKER)
    request = RequestIO(api, "c1")
    await request.set_adapt({"minimum": 1, "maximum": 5})
    assert json.loads(api.configmaps["c1"]["data"][spec.KEY_ADAPT]) == {"minimum": 1, "maximum": 5}
    await request.set_workers(3)
    assert api.configmaps["c1"]["data"][spec.KEY_WORKERS] == "3"
    assert spec.KEY_ADAPT not in api.configmaps["c1"]["data"]


async def test_bad_adapt_bounds_are_refused_before_anything_is_written() -> None:
    api = MemoryApi()
    api.configmaps["c1"] = build_manifest("c1", api.namespace, worker=WORKER)
    with pytest.raises(spec.RequestError, match="field 'interval' has value 0; it must be more than 0"):
        await RequestIO(api, "c1").set_adapt({"minimum": 0, "maximum": 5, "interval": 0})
    assert api.patches == []


async def test_attaching_learns_deploy_mode_and_heartbeat_timeout_from_the_request() -> None:
    api = MemoryApi()
    api.configmaps["c1"] = build_manifest("c1", api.namespace, worker=WORKER, deploy_mode="local",
                                          scheduler_address="tcp://10.0.0.5:8786", heartbeat_timeout=120)
    adopted = await RequestIO(api, "c1").adopt()
    assert (adopted.deploy_mode, adopted.heartbeat_timeout) == ("local", 120)


async def test_attaching_refuses_a_configmap_that_is_not_a_request() -> None:
    api = MemoryApi()
    api.configmaps["c1"] = {"metadata": {"name": "c1", "labels": {spec.REQUEST_LABEL: "something-else"}}}
    with pytest.raises(ClusterNotFoundError, match="no kubedask cluster named 'c1' in namespace 'team-a'"):
        await RequestIO(api, "c1").adopt()
    with pytest.raises(ClusterNotFoundError):
        await RequestIO(api, "missing").adopt()
