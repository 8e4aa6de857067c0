"""``--kubeconfig``, ``--context`` and ``-n`` are honoured like kubectl honours them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from kubedask.cli.context import KubeClusterApi
from kubedask.cli.main import connect, main, parse


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "a",
        "clusters": [{"name": "one", "cluster": {"server": "https://one.example:6443"}},
                     {"name": "two", "cluster": {"server": "https://two.example:6443"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "a", "context": {"cluster": "one", "user": "u", "namespace": "ns-a"}},
                     {"name": "b", "context": {"cluster": "two", "user": "u", "namespace": "ns-b"}},
                     {"name": "c", "context": {"cluster": "two", "user": "u"}}],
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def where(*argv: str) -> tuple[str, str]:
    kube, namespace = connect(parse(argv))
    assert isinstance(kube, KubeClusterApi) and kube.configuration is not None
    host = kube.configuration.host
    kube.close()
    return host, namespace


def test_context_chooses_the_server_and_the_default_namespace(kubeconfig: str) -> None:
    assert where("get", "--kubeconfig", kubeconfig) == ("https://one.example:6443", "ns-a")
    assert where("get", "--kubeconfig", kubeconfig, "--context", "b") == ("https://two.example:6443", "ns-b")
    assert where("--context", "c", "get", "--kubeconfig", kubeconfig) == ("https://two.example:6443", "default")
    assert where("get", "--kubeconfig", kubeconfig, "--context", "b", "-n", "other")[1] == "other"


def test_kubeconfig_env_is_used_without_the_flag(kubeconfig: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", kubeconfig)
    assert where("get", "--context", "b") == ("https://two.example:6443", "ns-b")


def test_missing_kubeconfig_or_context_is_one_line(kubeconfig: str, tmp_path: Path) -> None:
    for argv in (["get", "--kubeconfig", str(tmp_path / "missing")], ["get", "--kubeconfig", kubeconfig,
                                                                     "--context", "nope"]):
        out, err = io.StringIO(), io.StringIO()
        assert main(argv, out=out, err=err) == 1
        assert out.getvalue() == "" and err.getvalue().count("\n") == 1
        assert err.getvalue().startswith("error: cannot load the Kubernetes configuration ("), err.getvalue()
