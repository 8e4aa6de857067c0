"""Auth selection: the first method that applies wins; failures are explained."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubedask import ClusterAuth, InCluster, KubeAuth, KubeConfig
from kubedask.auth import select_methods
from kubedask.portforward import auth_headers
from kubernetes.config.config_exception import ConfigException

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: alice
  user: {token: secret-token}
contexts:
- name: dev
  context: {cluster: local, user: alice, namespace: team-a}
- name: other
  context: {cluster: local, user: alice}
current-context: dev
"""


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    return str(path)


def test_default_is_in_cluster_then_kubeconfig() -> None:
    methods = select_methods(None)
    assert [type(m) for m in methods] == [InCluster, KubeConfig]


def test_kubeconfig_is_used_outside_a_pod(kubeconfig: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", kubeconfig)
    loaded = ClusterAuth.load_first(None)
    assert isinstance(loaded.method, KubeConfig)
    assert loaded.configuration.host == "https://127.0.0.1:6443"
    assert auth_headers(loaded.configuration) == {"authorization": "Bearer secret-token"}
    assert loaded.namespace == "team-a"


def test_context_selects_its_namespace(kubeconfig: str) -> None:
    assert KubeConfig(kubeconfig, context="other").load().namespace is None


def test_explicit_settings(kubeconfig: str) -> None:
    loaded = ClusterAuth.load_first(
        KubeAuth("https://10.0.0.1:6443", namespace="ns", token="t", verify_ssl=False)
    )
    assert auth_headers(loaded.configuration) == {"authorization": "Bearer t"}
    assert (loaded.configuration.host, loaded.configuration.verify_ssl, loaded.namespace) == (
        "https://10.0.0.1:6443",
        False,
        "ns",
    )


def test_misspelt_setting_fails_early() -> None:
    with pytest.raises(ValueError, match="verfy_ssl"):
        KubeAuth("https://x", verfy_ssl=False)


def test_nothing_applies_explains_each_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigException, match=r"InCluster\(\).*KubeConfig"):
        ClusterAuth.load_first([InCluster(), KubeConfig(str(tmp_path / "none"))])


@pytest.mark.parametrize("bad", [[], "kubeconfig", [object()]])
def test_invalid_auth_arguments(bad: object) -> None:
    with pytest.raises((ConfigException, ValueError)):
        select_methods(bad)  # type: ignore[arg-type]
