"""Fixtures for the install tests: Helm, and the controller image in the real node."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest


@pytest.fixture(scope="session")
def helm() -> str:
    """The Helm binary, built from the Go module proxy on first use (cached by devcluster.build)."""
    from devcluster import build

    return str(build.binary("helm"))


@pytest.fixture(scope="session")
def controller_image(devcluster_instance: object | None, real_node: str) -> str:
    """The controller image, built offline from the Dockerfile (cached) and imported into the real
    node's containerd. Returns its unique tag.

    ``KUBEDASK_CONTROLLER_IMAGE=REF`` uses an image the nodes can already get instead (one pushed to
    a registry, for ``--existing-cluster``; or one imported by hand)."""
    given = os.environ.get("KUBEDASK_CONTROLLER_IMAGE")
    if given:
        return given
    if devcluster_instance is None:
        pytest.skip("set KUBEDASK_CONTROLLER_IMAGE: only the local devcluster's node can be loaded directly")
    from devcluster import controller_image as image

    return image.ensure_in_node(devcluster_instance).tag


@pytest.fixture(scope="session")
def helm_cmd(helm: str, kubeconfig: str) -> Callable[..., str]:
    """Run helm against the test cluster: ``helm_cmd("install", ...)`` returns stdout, raises on failure."""
    from installkit import helm_run

    def run(*args: str, check: bool = True, timeout: float = 600) -> str:
        proc = helm_run(helm, "--kubeconfig", kubeconfig, *args, check=check, timeout=timeout)
        return proc.stdout if check else proc.stdout + proc.stderr

    return run
