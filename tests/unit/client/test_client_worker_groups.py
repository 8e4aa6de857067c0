"""Worker groups from Python: the keys add_worker_group writes, scale(n, worker_group=...), delete_worker_group,
worker groups given to KubeCluster(...), and how repr tells groups apart (in memory, no cluster)."""

from __future__ import annotations

import json
from collections.abc import Coroutine
from typing import Any

import pytest
from fake_kube import MemoryApi
from kubedask import spec
from kubedask.options import ClusterOptions
from kubedask.request_io import RequestIO, build_manifest
from kubedask.worker_groups import WorkerGroupsMixin, group_counts, group_data, group_of_worker

WORKER = {"spec": {"containers": [{"name": "w", "image": "img"}]}}
GPU = {"spec": {"containers": [{"name": "w", "image": "img", "args": ["dask", "worker", "--resources", "GPU=1"]}]}}


class _Session:
    def __init__(self, api: MemoryApi) -> None:
        self.io = RequestIO(api, "c1")
        self.options = ClusterOptions.resolve(name="c1", pod_template=WORKER, env={"A": "1"})

    def requests(self) -> RequestIO:
        return self.io


class Groups(WorkerGroupsMixin):
    """The mixin as KubeCluster uses it, with changes run by the test (KubeCluster's asynchronous mode)."""

    def __init__(self, api: MemoryApi) -> None:
        self._session = _Session(api)  # type: ignore[assignment]
        self.request_name = "c1"
        self.scheduler_info: dict[str, Any] = {"workers": {}}

    def _request_change(self, change: Coroutine[Any, Any, None]) -> Any:
        return change

    def sync(self, func: Any, *args: Any) -> Any:
        return func(*args)


def cluster() -> tuple[MemoryApi, Groups]:
    api = MemoryApi()
    api.configmaps["c1"] = build_manifest("c1", api.namespace, worker=WORKER, workers=2)
    return api, Groups(api)


def test_group_data_is_the_two_flat_keys_and_refuses_bad_names_and_counts() -> None:
    data = group_data("c1", "gpu", GPU, n_workers=1, env={"A": "1"})
    assert data["workers.gpu"] == "1"
    template = spec.parse_template(data["worker-template.gpu"])
    assert template.spec["containers"][0]["env"] == [{"name": "A", "value": "1"}]
    with pytest.raises(ValueError, match="lower-case letters"):
        group_data("c1", "GPU", GPU)
    with pytest.raises(ValueError, match="cannot give worker group 'gpu' -1 workers"):
        group_data("c1", "gpu", GPU, n_workers=-1)
    with pytest.raises(ValueError, match="needs a pod template"):
        group_data("c1", "gpu", {})


async def test_add_scale_and_delete_a_group_change_only_its_keys() -> None:
    api, groups = cluster()
    await groups.add_worker_group("gpu", GPU, n_workers=1)
    data = api.configmaps["c1"]["data"]
    assert (data["workers"], data["workers.gpu"]) == ("2", "1")
    assert spec.parse_request("c1", data).worker_groups[0].name == "gpu"
    assert await groups.worker_groups() == {"default": 2, "gpu": 1}

    await groups._scale_group("gpu", 4)
    assert api.configmaps["c1"]["data"]["workers.gpu"] == "4"
    assert api.configmaps["c1"]["data"]["workers"] == "2"
    with pytest.raises(ValueError, match="no worker group 'tpu'; its groups are 'default', 'gpu'"):
        await groups._scale_group("tpu", 1)

    await groups.delete_worker_group("gpu")
    assert not any(k.endswith(".gpu") for k in api.configmaps["c1"]["data"])
    with pytest.raises(ValueError, match="no worker group 'gpu'"):
        await groups.delete_worker_group("gpu")


def test_worker_groups_given_to_the_constructor_are_in_the_first_request() -> None:
    options = ClusterOptions.resolve(name="c1", pod_template=WORKER, worker_groups={"gpu": (GPU, 2), "big": WORKER})
    manifest = build_manifest("c1", "ns", worker=WORKER, worker_groups=options.worker_groups)
    assert group_counts(manifest["data"]) == {"default": 0, "big": 0, "gpu": 2}
    with pytest.raises(spec.RequestError, match="at most 2 fit here"):
        build_manifest("a" * 47, "ns", worker=WORKER, worker_groups={"gpu": (WORKER, 1)})


def test_repr_shows_groups_from_the_worker_names() -> None:
    assert group_of_worker("c1", "c1-worker-bcdfg") == "default"
    assert group_of_worker("c1", "c1-worker-gpu-big-bcdfg") == "gpu-big"
    assert group_of_worker("c1", "tcp://10.0.0.1:1234") == "default"
    _, groups = cluster()
    groups.scheduler_info["workers"] = {"a": {"name": "c1-worker-bcdfg"}, "b": {"name": "c1-worker-gpu-bcdfg"}}
    assert groups._running_groups() == {"default": 1, "gpu": 1}


async def test_adapt_of_a_group_writes_its_own_adapt_key_and_scale_or_delete_turn_it_off() -> None:
    api, groups = cluster()
    await groups.add_worker_group("gpu", GPU, n_workers=1)
    await groups.adapt_group("gpu", {"minimum": 0, "maximum": 4})
    data = api.configmaps["c1"]["data"]
    assert json.loads(data["adapt.gpu"]) == {"minimum": 0, "maximum": 4} and "adapt" not in data
    assert spec.parse_request("c1", data).worker_groups[0].adapt == spec.AdaptSpec(minimum=0, maximum=4)
    with pytest.raises(spec.RequestError, match=r"'adapt\.gpu': 'minimum' \(5\) is larger"):
        await groups.adapt_group("gpu", {"minimum": 5, "maximum": 4})
    with pytest.raises(ValueError, match="no worker group 'tpu'"):
        await groups.adapt_group("tpu", {"minimum": 0, "maximum": 4})
    assert "adapt.tpu" not in api.configmaps["c1"]["data"]

    await groups._scale_group("gpu", 2)  # a fixed count again: the group's adaptivity goes, not the default's
    await groups.adapt_group("default", {"minimum": 1, "maximum": 3})
    data = api.configmaps["c1"]["data"]
    assert "adapt.gpu" not in data and data["workers.gpu"] == "2" and json.loads(data["adapt"])["maximum"] == 3

    await groups.adapt_group("gpu", {"minimum": 0, "maximum": 4})
    await groups.delete_worker_group("gpu")
    assert not any(k.endswith(".gpu") for k in api.configmaps["c1"]["data"])
    assert "adapt" in api.configmaps["c1"]["data"]
