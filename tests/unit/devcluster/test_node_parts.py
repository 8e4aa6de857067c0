"""The real node's generated configuration and image archives, checked without starting anything."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from devcluster import cni, dns, images, node
from devcluster.cluster import CLUSTER_DNS_IP, NODE_IP, Cluster, Ports


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    monkeypatch.setenv("KUBEDASK_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("KUBEDASK_CACHE", str(tmp_path / "cache"))
    return Cluster(name="unit", ports=Ports.pick(), real_node=True, simulated_nodes=0)


def test_dask_image_pins_the_running_environment() -> None:
    import dask
    import distributed
    import numpy

    pins = images.pinned_closure(images.DASK_ROOTS)
    assert f"dask=={dask.__version__}" in pins
    assert f"distributed=={distributed.__version__}" in pins
    assert f"numpy=={numpy.__version__}" in pins  # from the [array] extra
    assert not any(p.lower().startswith(("kubernetes==", "kopf==", "pytest==")) for p in pins)


def test_classic_cli_wrappers_guard_against_spawn_reimport() -> None:
    for name, text in images.CLASSIC_SCRIPTS.items():
        assert text.startswith("#!/usr/bin/python3")
        assert 'if __name__ == "__main__":' in text, name  # the nanny's spawn re-imports the script


def test_docker_archive_layout(tmp_path: Path) -> None:
    layer = tmp_path / "layer.tar"
    (tmp_path / "hello").write_text("hi")
    with tarfile.open(layer, "w") as tar:
        tar.add(tmp_path / "hello", arcname="hello")
    out = tmp_path / "image.tar"
    images.write_docker_archive(out, [layer], ["a.example/x:1", "b.example/y:latest"], {"Cmd": ["sh"]})
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = json.load(tar.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
        assert manifest[0]["RepoTags"] == ["a.example/x:1", "b.example/y:latest"]
        assert len(config["rootfs"]["diff_ids"]) == 1
        assert manifest[0]["Layers"][0] in tar.getnames()
    assert config["config"] == {"Cmd": ["sh"]}


def test_containerd_config_has_the_workarounds_this_machine_needs(cluster: Cluster) -> None:
    text = node.containerd_config(node.NodeDirs(cluster))
    assert "restrict_oom_score_adj = true" in text
    assert 'bin_dir = "/usr/lib/cni"' in text
    assert f'sandbox_image = "{images.PAUSE_TAG}"' in text
    assert str(cluster.dir) in text  # socket and state under the instance's state directory


def test_kubelet_config(cluster: Cluster) -> None:
    config = node.kubelet_config(cluster, node.NodeDirs(cluster), 12345)
    assert config["cgroupDriver"] == "cgroupfs"
    assert config["failCgroupV1"] is False
    assert config["clusterDNS"] == [CLUSTER_DNS_IP]
    assert config["address"] == NODE_IP
    assert config["authorization"] == {"mode": "Webhook"}
    assert config["imageGCHighThresholdPercent"] == 100


def test_pod_network_stays_on_the_bridge(tmp_path: Path) -> None:
    path = cni.write_conflist(tmp_path / "net.d", tmp_path / "ipam")
    bridge = json.loads(path.read_text())["plugins"][0]
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.0.0/24"}]]
    assert bridge["ipam"]["dataDir"] == str(tmp_path / "ipam")


def test_dns_serves_only_the_cluster_from_the_node_address(tmp_path: Path) -> None:
    corefile = dns.corefile(tmp_path / "kubeconfig", 1, 2)
    assert f"bind {NODE_IP}" in corefile
    assert "forward" not in corefile
    service, slice_ = dns.service_manifests()
    assert service["spec"]["clusterIP"] == CLUSTER_DNS_IP  # type: ignore[index]
    assert slice_["endpoints"] == [{"addresses": [NODE_IP], "conditions": {"ready": True}}]
