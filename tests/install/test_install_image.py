"""The controller image: built offline from the repository's Dockerfile, and shaped for a locked-down
pod (numeric non-root user, entrypoint, OCI labels, nothing writable needed)."""

from __future__ import annotations

import json
import tarfile
from typing import Any

import pytest
from installkit import REPO, package_version


@pytest.fixture(scope="module")
def image_config() -> dict[str, Any]:
    """The built image's config (from the cached docker-archive; built offline on first use)."""
    from devcluster import controller_image

    image = controller_image.build()
    with tarfile.open(image.tar) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert sorted(manifest[0]["RepoTags"]) == sorted(image.tags)
        return dict(json.load(tar.extractfile(manifest[0]["Config"]))["config"])  # type: ignore[arg-type]


def test_image_runs_the_controller_as_a_numeric_non_root_user(image_config: dict[str, Any]) -> None:
    # Numeric, so the kubelet can enforce runAsNonRoot without reading /etc/passwd.
    assert image_config["User"] == "10001:10001"
    assert image_config["Entrypoint"] == ["python", "-m", "kubedask_controller"]
    env = dict(e.split("=", 1) for e in image_config["Env"])
    assert env["HOME"] == "/tmp" and env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_image_carries_oci_labels_of_this_version(image_config: dict[str, Any]) -> None:
    labels = image_config["Labels"]
    assert labels["org.opencontainers.image.version"] == package_version()
    assert labels["org.opencontainers.image.title"] == "kubedask-controller"
    assert labels["org.opencontainers.image.licenses"] == "BSD-3-Clause"


def test_image_tags_are_the_published_name_and_a_unique_local_one() -> None:
    from devcluster import controller_image, images

    published, local = controller_image.tags(controller_image.source_key(images.controller_base_image().tag))
    assert published == f"ghcr.io/kubedask/kubedask-controller:{package_version()}"
    assert local.startswith(f"kubedask.local/controller:{package_version()}-")


def test_build_context_is_only_the_package_sources() -> None:
    ignore = (REPO / ".dockerignore").read_text().split("\n")
    assert "*" in ignore  # allow-list: nothing new slips into the image by accident
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "client", "controller"}
