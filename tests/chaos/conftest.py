"""The chaos suite: faults of the control plane and of the controller, survived round after round.

These tests restart kube-apiserver and etcd, so they run on a devcluster instance of their OWN (control
plane and KWOK only, started in seconds, stopped at the end): the shared default instance that other
test sessions use is never disturbed. Only the client test (test_chaos_client_portforward.py) needs the
real node and therefore the default instance.

Options:
    --chaos-rounds N   rounds per fault (default 1, what CI runs; the issue's acceptance is 5). Known to
                       pytest when it is given tests/chaos (or a file in it); from the repository root
                       use the environment variable instead.

Environment:
    KUBEDASK_CHAOS_ROUNDS    rounds per fault, when --chaos-rounds is not given
    KUBEDASK_CHAOS_CLUSTER   the instance's name (default kubedask-chaos)
    KUBEDASK_CHAOS_KEEP=1    leave the instance running afterwards (faster reruns while developing)
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
# The controller harness of the integration tests (ControllerProcess, Cluster helpers) is reused as is.
sys.path.insert(0, str(HERE.parent / "integration"))

#: Simulated nodes for the chaos instance: 200 workers fit on one, two spread the scheduler's work.
CHAOS_NODES = 2


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--chaos-rounds", type=int, default=None,
                     help="rounds per chaos fault (default: $KUBEDASK_CHAOS_ROUNDS, else 1; acceptance runs 5)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: restarts control-plane components or the controller (tests/chaos)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.chaos)
            item.add_marker(pytest.mark.cluster)  # `-m "not cluster"` (unit runs) must never start one


@pytest.fixture(scope="session")
def chaos_rounds(request: pytest.FixtureRequest) -> int:
    option = request.config.getoption("--chaos-rounds", default=None)
    rounds = int(option if option is not None else os.environ.get("KUBEDASK_CHAOS_ROUNDS", "1"))
    if rounds < 1:
        raise pytest.UsageError("--chaos-rounds must be at least 1")
    return rounds


@pytest.fixture(scope="session")
def chaos_instance() -> Iterator[Any]:
    """A devcluster instance of the chaos suite's own (devcluster.cluster.Cluster)."""
    from devcluster import lifecycle

    name = os.environ.get("KUBEDASK_CHAOS_CLUSTER", "kubedask-chaos")
    if name == os.environ.get("KUBEDASK_CLUSTER", lifecycle.DEFAULT_NAME):
        raise pytest.UsageError(f"the chaos suite restarts {name!r}'s API server: give it an instance of its own")
    instance = lifecycle.up(name, nodes=CHAOS_NODES, real_node=False)
    try:
        yield instance
    finally:
        if os.environ.get("KUBEDASK_CHAOS_KEEP") != "1":
            lifecycle.down(name)


@pytest.fixture(scope="session")
def chaos_kubeconfig(chaos_instance: Any) -> str:
    return str(chaos_instance.kubeconfig)


@pytest.fixture(scope="session")
def chaos_api(chaos_kubeconfig: str) -> Iterator[Any]:
    """An admin ApiClient of the chaos instance."""
    from kubernetes import config

    client = config.new_client_from_config(config_file=chaos_kubeconfig)  # type: ignore[no-untyped-call]
    yield client
    client.close()


@pytest.fixture
def chaos_namespace(request: pytest.FixtureRequest, chaos_api: Any) -> Iterator[str]:
    """A fresh namespace of the chaos instance, named after the test."""
    from kubernetes.client import CoreV1Api, V1Namespace, V1ObjectMeta

    core = CoreV1Api(chaos_api)
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:5]}"
    core.create_namespace(V1Namespace(metadata=V1ObjectMeta(name=name)))
    yield name
    try:
        core.delete_namespace(name)
    except Exception as error:  # a failed test may have left the API server down; the instance goes anyway
        print(f"could not delete namespace {name}: {error}")
