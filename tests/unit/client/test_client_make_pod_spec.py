"""make_pod_spec keeps the classic semantics (args, resources, deep merge) and runs on local images."""

from __future__ import annotations

from typing import Any

import pytest
from kubedask import make_pod_spec
from kubernetes import client


def spec_of(pod: client.V1Pod) -> Any:
    """The pod spec, which the generated model types as optional."""
    assert pod.spec is not None
    return pod.spec


def meta_of(pod: client.V1Pod) -> Any:
    assert pod.metadata is not None
    return pod.metadata


def test_quickstart_spec_has_classic_worker_args_and_resources() -> None:
    pod = make_pod_spec(
        image="ghcr.io/dask/dask:latest", memory_limit="4G", memory_request="4G", cpu_limit=1, cpu_request=1
    )
    assert isinstance(pod, client.V1Pod)
    container: Any = spec_of(pod).containers[0]
    assert container.args == [
        "dask",
        "worker",
        "$(DASK_SCHEDULER_ADDRESS)",
        "--nthreads",
        "1",
        "--death-timeout",
        "60",
        "--no-dashboard",
        "--memory-limit",
        "4G",
    ]
    assert container.resources.limits == {"cpu": "1", "memory": "4G"}
    assert container.resources.requests == {"cpu": "1", "memory": "4G"}
    assert spec_of(pod).restart_policy == "Never"


def test_image_is_used_when_present_locally() -> None:
    pod = make_pod_spec(image="ghcr.io/dask/dask:latest")
    assert spec_of(pod).containers[0].image_pull_policy == "IfNotPresent"


def test_threads_resources_gpu_env_labels_and_annotations() -> None:
    pod = make_pod_spec(
        image="img",
        threads_per_worker=4,
        resources="GPU=1",
        gpu_limit=1,
        env={"EXTRA": 1},
        labels={"team": "ml"},
        annotations={"note": "x"},
    )
    container: Any = spec_of(pod).containers[0]
    assert container.args[container.args.index("--nthreads") + 1] == "4"
    assert container.args[-2:] == ["--resources", "GPU=1"]
    assert container.resources.limits == {"nvidia.com/gpu": "1"}
    assert [(e.name, e.value) for e in container.env] == [("EXTRA", "1")]
    assert meta_of(pod).labels == {"team": "ml"}
    assert meta_of(pod).annotations == {"note": "x"}


def test_extra_configs_deep_merge_like_the_classic() -> None:
    pod = make_pod_spec(
        image="img",
        env={"A": "1"},
        extra_container_config={
            "env": [{"name": "B", "value": "2"}],
            "resources": {"limits": {"ephemeral-storage": "1Gi"}},
            "workingDir": "/work",
        },
        extra_pod_config={
            "tolerations": [{"key": "gpu", "operator": "Exists"}],
            "nodeSelector": {"disk": "ssd"},
            "restartPolicy": "OnFailure",
        },
        memory_limit="1G",
    )
    container: Any = spec_of(pod).containers[0]
    assert [e.name for e in container.env] == ["A", "B"]  # lists are appended
    assert container.resources.limits == {"memory": "1G", "ephemeral-storage": "1Gi"}  # dicts merge
    assert container.working_dir == "/work"
    assert spec_of(pod).tolerations[0].key == "gpu"
    assert spec_of(pod).node_selector == {"disk": "ssd"}
    assert spec_of(pod).restart_policy == "OnFailure"  # scalars replace


def test_unknown_extra_field_is_refused_with_the_allowed_names() -> None:
    with pytest.raises(ValueError, match="not a field of V1Container"):
        make_pod_spec(image="img", extra_container_config={"imagePullPolicyy": "Always"})
