"""The policy document and the request-level rules: loading, per-namespace overrides, caps per cluster
and per namespace, adapt's interval floor, Service types, and the seed's pods under every profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubedask.spec import build_request_data, parse_request
from kubedask_controller.policy import NamespaceUsage, Policy, PolicyViolation, admit, load_policy, worker_claim
from policy_requests import NAMESPACE, assert_refused, loosened, pod, request

REPO = Path(__file__).resolve().parents[3]


def test_worker_claim_is_the_larger_of_workers_and_adapt_maximum() -> None:
    assert worker_claim(request(pod(), workers=3)) == 3
    assert worker_claim(request(pod(), workers=2, adapt={"minimum": 1, "maximum": 9})) == 9


@pytest.mark.parametrize(("req", "usage", "where", "value", "key", "loosening"), [
    (request(pod(), workers=11), NamespaceUsage(), "workers", "11", "maxWorkers", {"maxWorkers": 11}),
    (request(pod(), workers=1, adapt={"minimum": 0, "maximum": 50}), NamespaceUsage(), "adapt", "50",
     "maxWorkers", {"maxWorkers": 50}),
    (request(pod(), workers=1), NamespaceUsage(clusters=50), "metadata.name", "51", "maxClustersPerNamespace",
     {"maxClustersPerNamespace": 51}),
    (request(pod(), workers=5), NamespaceUsage(clusters=1, workers=1996), "workers", "5", "maxWorkersPerNamespace",
     {"maxWorkersPerNamespace": 2001}),
    (request(pod(), workers=1, adapt={"minimum": 0, "maximum": 2, "interval": 0.5}), NamespaceUsage(), "adapt",
     "0.5", "minAdaptInterval", {"minAdaptInterval": 0.5}),
    (request(pod(), scheduler_service_type="LoadBalancer"), NamespaceUsage(), "scheduler-service-type",
     '"LoadBalancer"', "allowedServiceTypes", {"allowedServiceTypes": ["ClusterIP", "LoadBalancer"]}),
], ids=["maxWorkers", "adapt-maximum", "clusters-per-namespace", "workers-per-namespace", "adapt-interval",
        "service-type"])
def test_request_level_rule_is_refused_until_loosened(req: Any, usage: NamespaceUsage, where: str, value: str,
                                                       key: str, loosening: dict[str, Any]) -> None:
    limit = Policy(maxWorkers=10) if key == "maxWorkers" else Policy()
    with pytest.raises(PolicyViolation) as err:
        admit(req, limit, NAMESPACE, usage)
    message = str(err.value)
    assert f"policy violation in {where}: " in message and f" is {value}: " in message, message
    assert f"policy key {key} " in message and f"namespaces.{NAMESPACE}.{key}" in message, message
    for loose in loosened(limit, **loosening):
        admit(req, loose, NAMESPACE, usage)


def test_namespace_usage_counts_only_what_others_hold() -> None:
    policy = Policy(maxWorkersPerNamespace=10, maxClustersPerNamespace=2)
    admit(request(pod(), workers=10), policy, NAMESPACE)  # alone, exactly at the cap
    admit(request(pod(), workers=4), policy, NAMESPACE, NamespaceUsage(clusters=1, workers=6))
    admit(request(pod(), workers=5), policy, NAMESPACE)  # fine alone...
    with pytest.raises(PolicyViolation, match="other clusters hold 6 workers"):
        admit(request(pod(), workers=5), policy, NAMESPACE, NamespaceUsage(clusters=1, workers=6))


def test_a_local_mode_request_needs_no_service_type() -> None:
    req = parse_request("analysis", build_request_data(
        worker_template={"spec": pod()}, deploy_mode="local", scheduler_address="tcp://10.0.0.5:8786"))
    admit(req, Policy(allowedServiceTypes=()), NAMESPACE)


# --- the seed's pods --------------------------------------------------------------------------------


def _worker_spec_yml() -> dict[str, Any]:
    template: dict[str, Any] = yaml.safe_load((REPO / "examples" / "worker-spec.yml").read_text())
    return template


def _make_pod_spec() -> dict[str, Any]:
    import kubernetes
    from kubedask import make_pod_spec
    made = make_pod_spec(image="ghcr.io/dask/dask:latest", memory_limit="1G", memory_request="1G",
                         cpu_limit=1, cpu_request=1, env={"EXTRA_PIP_PACKAGES": "s3fs"})
    result: dict[str, Any] = kubernetes.client.ApiClient().sanitize_for_serialization(made)  # type: ignore[no-untyped-call]
    return result


@pytest.mark.parametrize("template", [_worker_spec_yml, _make_pod_spec], ids=["worker-spec.yml", "make_pod_spec"])
@pytest.mark.parametrize("profile", ["baseline", "restricted", "privileged"])
def test_the_seeds_pods_run_under_every_profile(template: Any, profile: str) -> None:
    req = parse_request("analysis", build_request_data(worker_template=template(), workers=2))
    # worker-spec.yml labels its pods foo: bar, a key the default allowedPodLabels leaves out: the admin allows it.
    policy = Policy(profile=profile, allowedPodLabels=("user.kubedask.io/*", "foo"))  # type: ignore[arg-type]
    admitted = admit(req, policy, NAMESPACE)
    if profile == "restricted":
        assert admitted.worker_template.spec["securityContext"]["runAsNonRoot"] is True


# --- the document -----------------------------------------------------------------------------------


def test_defaults_are_those_of_the_documented_format() -> None:
    assert Policy().model_dump(by_alias=True) == {
        "profile": "baseline", "podSecurityExemptions": (), "allowedCapabilities": (), "allowedSysctls": (),
        "allowedServiceAccounts": ("default",), "allowedSecrets": (), "allowServiceAccountTokenProjection": False,
        "allowServiceAccountToken": False,
        "allowedVolumeTypes": ("emptyDir", "configMap", "downwardAPI"), "allowNodeName": False,
        "allowedTolerations": ("k8s.dask.org/dedicated", "k8s.dask.org_dedicated", "nvidia.com/gpu"),
        "allowedPriorityClasses": (), "allowedRuntimeClasses": (), "allowResourceClaims": False,
        "allowedServiceTypes": ("ClusterIP",), "maxWorkers": 1000, "maxClustersPerNamespace": 50,
        "maxWorkersPerNamespace": 2000, "minAdaptInterval": 2.0,
        "allowedPodAnnotations": ("prometheus.io/*", "kubectl.kubernetes.io/default-container",
                                  "cluster-autoscaler.kubernetes.io/safe-to-evict", "user.kubedask.io/*"),
        "allowedPodLabels": ("user.kubedask.io/*",), "allowedServiceAnnotations": ("user.kubedask.io/*",),
        "allowedServiceLabels": ("user.kubedask.io/*",),
        "namespaces": {},
    }


def test_admins_set_the_policy_with_a_file_and_env(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("profile: restricted\nallowedServiceAccounts: [default, dask]\nmaxWorkers: 5\n"
                    "namespaces:\n  team-a: {allowedSecrets: [s3-creds], maxWorkers: 50}\n")
    policy = load_policy(path, environ={"KUBEDASK_POLICY_ALLOWED_CAPABILITIES": "NET_ADMIN, SYS_PTRACE",
                                        "KUBEDASK_POLICY_MAX_WORKERS": "7"})
    assert policy.profile == "restricted" and policy.max_workers == 7
    assert policy.allowed_capabilities == ("NET_ADMIN", "SYS_PTRACE")
    team_a = policy.for_namespace("team-a")
    assert team_a.allowed_secrets == ("s3-creds",) and team_a.max_workers == 50
    assert team_a.profile == "restricted" and team_a.allowed_service_accounts == ("default", "dask")
    assert policy.for_namespace("team-b").allowed_secrets == ()


@pytest.mark.parametrize(("text", "expected"), [
    ("allowEverything: true\n", "unknown key 'allowEverything'"),
    ("allowedSecret: [a]\n", "did you mean 'allowedSecrets'?"),
    ("allowPrivileged: true\n", "podSecurityExemptions: [privileged]"),
    ("maxWorkers: lots\n", "key 'maxWorkers' has value 'lots'"),
    ("maxWorkers: -1\n", "key 'maxWorkers' has value -1"),
    ("allowedSecrets: s3-creds\n", "key 'allowedSecrets' has value 's3-creds'"),
    ("profile: strict\n", "key 'profile' has value 'strict'"),
    ("podSecurityExemptions: [hostpath]\n", "key 'podSecurityExemptions' has value 'hostpath'"),
    ("allowedServiceTypes: [ExternalName]\n", "key 'allowedServiceTypes'"),
    ("namespaces: {team-a: {allowedSecret: [a]}}\n", "unknown key 'namespaces.team-a.allowedSecret'"),
    ("namespaces: {team-a: {namespaces: {}}}\n", "unknown key 'namespaces.team-a.namespaces'"),
    ("namespaces: {Team_A: {maxWorkers: 1}}\n", "'Team_A' is not a namespace name"),
    ("- a\n- b\n", "must hold a mapping"),
    ("maxWorkers: [\n", "not valid YAML"),
])
def test_policy_file_errors_say_what_and_where(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        load_policy(path, environ={})
    assert str(err.value).startswith(f"invalid policy file {path}: ")
    assert expected in str(err.value)


def test_an_empty_file_is_the_default_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("")
    assert load_policy(path, environ={}) == Policy()
    assert load_policy(None, environ={}) == Policy()


def test_worker_rule_messages_carry_the_request_key() -> None:
    req = request(pod(hostNetwork=True))
    with pytest.raises(PolicyViolation) as err:
        admit(req, Policy(), NAMESPACE)
    assert err.value.key == "worker-template"
    assert_refused(req, "worker-template", "spec.hostNetwork", "true", "podSecurityExemptions")
