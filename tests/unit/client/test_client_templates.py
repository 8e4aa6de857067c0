"""Loading worker templates from a V1Pod, a dict or a YAML path, like the classic KubeCluster."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubedask import make_pod_spec
from kubedask.spec import MAX_TEMPLATE_BYTES
from kubedask.templates import TemplateError, load_pod_template, normalize_pod

SEED_YAML = """\
kind: Pod
metadata:
  labels:
    foo: bar
spec:
  restartPolicy: Never
  containers:
  - image: ghcr.io/dask/dask:latest
    imagePullPolicy: IfNotPresent
    args: [dask-worker, --nthreads, '2', --no-dashboard, --memory-limit, 6GB, --death-timeout, '60']
    name: dask-worker
    env:
      - name: EXTRA_PIP_PACKAGES
        value: $PKGS
    resources:
      limits:
        cpu: "2"
        memory: 6G
"""


def test_yaml_path_is_loaded_with_environment_expansion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PKGS", "fastparquet")
    path = tmp_path / "worker-spec.yml"
    path.write_text(SEED_YAML)
    pod = load_pod_template(str(path))
    assert pod is not None
    assert pod["metadata"]["labels"] == {"foo": "bar"}
    container = pod["spec"]["containers"][0]
    assert container["args"][0] == "dask-worker"
    assert container["env"] == [{"name": "EXTRA_PIP_PACKAGES", "value": "fastparquet"}]


def test_v1pod_becomes_a_camelcase_manifest() -> None:
    pod = load_pod_template(make_pod_spec(image="img", memory_limit="1G"))
    assert pod is not None
    assert pod["kind"] == "Pod"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"


def test_bare_pod_spec_and_unnamed_containers() -> None:
    pod = normalize_pod({"containers": [{"image": "a"}, {"image": "b"}]})
    assert [c["name"] for c in pod["spec"]["containers"]] == ["dask-0", "dask-1"]


def test_name_and_namespace_of_a_template_are_dropped() -> None:
    pod = normalize_pod(
        {
            "metadata": {"name": "x", "namespace": "other", "labels": {"a": "b"}},
            "spec": {"containers": [{"image": "a"}]},
        }
    )
    assert pod["metadata"] == {"labels": {"a": "b"}}


def test_no_template_means_none() -> None:
    assert load_pod_template(None) is None
    assert load_pod_template({}) is None


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ({"kind": "Deployment", "spec": {"containers": [{"image": "a"}]}}, "only 'Pod'"),
        ({"spec": {}}, "at least one entry"),
        ({"spec": {"containers": [{"name": "c"}]}}, r"containers\[0\] has no 'image'"),
        ({"containers": [{"image": "a", "args": [{"x": 1}]}]}, "args must be a list of strings"),
        ({"apiVersion": "v2", "spec": {"containers": [{"image": "a"}]}}, "pods are 'v1'"),
        (42, "must be a kubernetes.client.V1Pod, a dict or a path"),
    ],
)
def test_malformed_templates_are_refused(template: object, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        load_pod_template(template)  # type: ignore[arg-type]


def test_missing_invalid_and_huge_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="cannot read"):
        load_pod_template(str(tmp_path / "missing.yml"))
    bad = tmp_path / "bad.yml"
    bad.write_text("spec: [unclosed")
    with pytest.raises(TemplateError, match="not valid YAML"):
        load_pod_template(str(bad))
    huge = tmp_path / "huge.yml"
    huge.write_text("x" * (MAX_TEMPLATE_BYTES + 10))
    with pytest.raises(TemplateError, match="larger than"):
        load_pod_template(str(huge))
