"""Fixtures the controller tests share: ``controller``, a controller for the test's namespace run with
``controller_policy`` (for a ``realnode`` test, only once the real node is known to be Ready), and
``cluster``, the request helper for that namespace.

A module whose admin grants more overrides ``controller_policy`` alone::

    @pytest.fixture
    def controller_policy() -> dict[str, Any]:
        return {**SIMULATED_NODES_POLICY, "allowedServiceTypes": ["ClusterIP", "LoadBalancer"]}
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from controller_harness import SIMULATED_NODES_POLICY, Cluster, ControllerProcess, running_controller


@pytest.fixture
def controller_policy() -> dict[str, Any] | None:
    """The policy ``controller`` runs with (None: the controller's defaults)."""
    return SIMULATED_NODES_POLICY


@pytest.fixture
def controller(request: pytest.FixtureRequest, kubeconfig: str, namespace: str, tmp_path: Path,
               controller_policy: dict[str, Any] | None) -> Iterator[ControllerProcess]:
    if request.node.get_closest_marker("realnode"):
        request.getfixturevalue("real_node")  # no Ready real node: fail saying so, not on a timeout later
    yield from running_controller(kubeconfig, [namespace], tmp_path, policy=controller_policy)


@pytest.fixture
def cluster(api: Any, namespace: str) -> Cluster:
    return Cluster(api, namespace)
