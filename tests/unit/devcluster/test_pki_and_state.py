"""The local cluster's certificates and state file, without starting anything."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devcluster import build, pki
from devcluster.cluster import Cluster, Ports


def test_serving_certificate_carries_every_name_pods_and_the_host_use(tmp_path: Path) -> None:
    pki.ensure_ca(tmp_path)
    crt, _ = pki.issue(tmp_path, "apiserver", "kube-apiserver", sans=["127.0.0.1", "kubernetes.default"], server=True)
    args = ["openssl", "x509", "-in", str(crt), "-noout", "-text"]
    text = subprocess.run(args, capture_output=True, text=True).stdout
    assert "IP Address:127.0.0.1" in text
    assert "DNS:kubernetes.default" in text
    assert "TLS Web Server Authentication" in text
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca.crt"), str(crt)], capture_output=True)
    assert verify.returncode == 0


def test_admin_certificate_is_in_system_masters(tmp_path: Path) -> None:
    pki.ensure_ca(tmp_path)
    crt, _ = pki.issue(tmp_path, "admin", "kubedask-admin", organization="system:masters")
    subject = subprocess.run(["openssl", "x509", "-in", str(crt), "-noout", "-subject"], capture_output=True, text=True)
    assert "O = system:masters" in subject.stdout


def test_state_round_trips_and_kubeconfig_names_the_namespace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEDASK_STATE", str(tmp_path))
    cluster = Cluster(name="x", ports=Ports.pick(), real_node=False, simulated_nodes=2)
    cluster.save()
    assert Cluster.load("x") == cluster
    assert Cluster.load("absent") is None
    path = cluster.write_kubeconfig(tmp_path / "k", "alice", {"token": "t"}, namespace="team-a")
    assert '"namespace": "team-a"' in path.read_text()
    assert cluster.apiserver_url == f"https://127.0.0.1:{cluster.ports.apiserver}"


def test_every_binary_comes_from_exactly_one_pinned_component() -> None:
    names = [b for c in build.COMPONENTS.values() for b in c.binaries]
    assert len(names) == len(set(names))
    assert all(c.version.startswith("v") for c in build.COMPONENTS.values())
    with pytest.raises(KeyError, match="no component provides"):
        build.binary("docker")
