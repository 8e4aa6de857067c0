"""``scheduler-service-template``'s labels and annotations: controllers outside the namespace act on them
(external-dns, cloud load balancers, MetalLB, meshes). Each refused one names the key, why and the policy
key; it is allowed once the admin allowlists it, globally or for one namespace."""

from __future__ import annotations

from typing import Any

import pytest
from kubedask.spec import ClusterRequest, build_request_data, parse_request
from kubedask_controller.policy import Policy, admit
from policy_requests import BASE_SPEC, NAMESPACE, loosened, refusal

PROFILES = ("baseline", "restricted", "privileged")
ANNOTATIONS = "allowedServiceAnnotations"
LABELS = "allowedServiceLabels"
WHERE = "scheduler-service-template"

# id -> (annotation key, value, an allowlist entry that allows it, words of the reason)
REFUSED: dict[str, tuple[str, str, str, str]] = {
    "external-dns": ("external-dns.alpha.kubernetes.io/hostname", "www.example.com",
                     "external-dns.alpha.kubernetes.io/hostname", "external-dns would publish the DNS name"),
    "aws-internal": ("service.beta.kubernetes.io/aws-load-balancer-internal", "false",
                     "service.beta.kubernetes.io/aws-load-balancer-internal", "load balancer controller"),
    "aws-scheme": ("service.beta.kubernetes.io/aws-load-balancer-scheme", "internet-facing",
                   "service.beta.kubernetes.io/aws-load-balancer-*", "internal or internet-facing"),
    "azure-internal": ("service.beta.kubernetes.io/azure-load-balancer-internal", "false", "*",
                       "load balancer controller"),
    "gke-type": ("networking.gke.io/load-balancer-type", "External", "networking.gke.io/*",
                 "load balancer controller"),
    "metallb-pool": ("metallb.universe.tf/address-pool", "public", "metallb.universe.tf/address-pool",
                     "address, pool or shared IP"),
    "metallb-sharing": ("metallb.universe.tf/allow-shared-ip", "ingress", "metallb.universe.tf/*",
                        "address, pool or shared IP"),
    "istio-export": ("networking.istio.io/exportTo", "*", "networking.istio.io/exportTo", "service mesh"),
    "prometheus": ("prometheus.io/scrape", "true", "prometheus.io/*", "not known to grant nothing"),
    "unknown": ("example.com/anything", "x", "example.com/*", "not known to grant nothing"),
    # The controller's own domain: a "*" does not cover it, the key named does.
    "controller-owned": ("kubedask.io/template-hash", "forged", "kubedask.io/template-hash", "its own objects"),
}
# id -> (label key, an allowlist entry that allows it; "*" never does)
SENSITIVE_LABELS: dict[str, tuple[str, str]] = {
    "linkerd-export": ("mirror.linkerd.io/exported", "mirror.linkerd.io/exported"),
    "istio-waypoint": ("istio.io/use-waypoint", "istio.io/use-waypoint"),
    "service-proxy": ("service.kubernetes.io/service-proxy-name", "service.kubernetes.io/service-proxy-name"),
    "managed-by": ("app.kubernetes.io/managed-by", "app.kubernetes.io/managed-by"),
    "dask-domain": ("dask.org/cluster-name", "dask.org/*"),
}


def request(annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None,
            **data: Any) -> ClusterRequest:
    template = {"metadata": {"annotations": annotations or {}, "labels": labels or {}}}
    return parse_request("analysis", build_request_data(worker_template={"spec": BASE_SPEC}, workers=1,
                                                        scheduler_service_template=template, **data))


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("case", REFUSED)
def test_a_service_annotation_is_refused_until_allowlisted(case: str, profile: str) -> None:
    key, value, entry, why = REFUSED[case]
    req = request({key: value})
    policy = Policy(profile=profile)  # type: ignore[arg-type]
    message = refusal(req, policy)
    assert message.startswith(f"policy violation in {WHERE}: metadata.annotations[{key!r}] is \"{value}\": "), message
    assert why in message, message
    assert f'add "{key}" to policy key {ANNOTATIONS} (in the policy ConfigMap, Helm value policy.{ANNOTATIONS}; ' \
           f"for namespace {NAMESPACE} only: namespaces.{NAMESPACE}.{ANNOTATIONS})" in message
    for loose in loosened(policy, **{ANNOTATIONS: [entry]}):
        admit(req, loose, NAMESPACE)
    assert f"policy key {ANNOTATIONS}" in refusal(req, loosened(policy, **{ANNOTATIONS: [entry]})[1],
                                                  namespace="team-b")


def test_the_external_dns_refusal_says_where_why_and_how_to_allow_it() -> None:
    assert refusal(request({"external-dns.alpha.kubernetes.io/hostname": "login.example.com"})) == (
        "policy violation in scheduler-service-template: metadata.annotations"
        "['external-dns.alpha.kubernetes.io/hostname'] is \"login.example.com\": external-dns would publish the "
        "DNS name it gives (in any zone external-dns manages) pointing at the scheduler. Remove it, or ask an "
        "admin to add \"external-dns.alpha.kubernetes.io/hostname\" to policy key allowedServiceAnnotations (in the "
        "policy ConfigMap, Helm value policy.allowedServiceAnnotations; for namespace team-a only: "
        "namespaces.team-a.allowedServiceAnnotations)")


def test_only_the_users_domain_passes_by_default_and_pod_allowlists_do_not_count() -> None:
    admit(request({"user.kubedask.io/owner": "ana"}), Policy(), NAMESPACE)
    # A pod annotation allowlist says nothing about the Service: the Service's readers are other controllers.
    pod_star = Policy(allowedPodAnnotations=("*",))
    assert f"policy key {ANNOTATIONS}" in refusal(request({"prometheus.io/scrape": "true"}), pod_star)
    assert f"policy key {LABELS}" in refusal(request(labels={"istio.io/use-waypoint": "w"}),
                                             Policy(allowedPodLabels=("*", "istio.io/use-waypoint")))


def test_a_star_allows_any_annotation_but_the_controllers_own() -> None:
    req = request({"kubedask.io/applied-keys": "{}", "dask.org/x": "y",
                   "external-dns.alpha.kubernetes.io/hostname": "a.example.com"})
    message = refusal(req, Policy(allowedServiceAnnotations=("*",)))
    assert "metadata.annotations['kubedask.io/applied-keys']" in message and "a '*' entry does not cover" in message
    assert "metadata.annotations['dask.org/x']" in message and "external-dns" not in message
    admit(req, Policy(allowedServiceAnnotations=("*", "kubedask.io/*", "dask.org/x")), NAMESPACE)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("case", SENSITIVE_LABELS)
def test_a_sensitive_service_label_is_refused_even_under_a_star_until_named(case: str, profile: str) -> None:
    key, entry = SENSITIVE_LABELS[case]
    req = request(labels={key: "true"})
    for policy in (Policy(profile=profile), Policy(profile=profile, allowedServiceLabels=("*",))):  # type: ignore[arg-type]
        message = refusal(req, policy)
        assert message.startswith(f"policy violation in {WHERE}: metadata.labels[{key!r}] is \"true\""), message
        assert "a '*' entry does not cover this key" in message and f"policy key {LABELS}" in message
    for loose in loosened(Policy(profile=profile), **{LABELS: ["*", entry]}):  # type: ignore[arg-type]
        admit(req, loose, NAMESPACE)
    refusal(req, loosened(Policy(profile=profile), **{LABELS: [entry]})[1], namespace="team-b")  # type: ignore[arg-type]


@pytest.mark.parametrize("profile", PROFILES)
def test_service_labels_are_closed_by_default_and_pod_labels_do_not_decide(profile: str) -> None:
    admit(request(labels={"user.kubedask.io/x": "1"}), Policy(profile=profile), NAMESPACE)  # type: ignore[arg-type]
    req = request(labels={"team": "a", "user.kubedask.io/x": "1"})
    pod_star = Policy(profile=profile, allowedPodLabels=("*",))  # type: ignore[arg-type]
    assert refusal(req, pod_star).startswith(
        "policy violation in scheduler-service-template: metadata.labels['team'] is \"a\": labels select the "
        "Service into monitors, route advertisements and mesh exports, and this key is not allowed. Rename it "
        "\"user.kubedask.io/team\" (or remove it), or ask an admin to add \"team\" to policy key allowedServiceLabels")
    for loose in loosened(pod_star, **{LABELS: ["team", "user.kubedask.io/*"]}):
        admit(req, loose, NAMESPACE)
    admit(req, Policy(profile=profile, allowedServiceLabels=("*",)), NAMESPACE)  # type: ignore[arg-type]


def test_service_and_pod_refusals_are_listed_together() -> None:
    template = {"metadata": {"annotations": {"vault.hashicorp.com/role": "db"}}, "spec": BASE_SPEC}
    req = parse_request("analysis", build_request_data(
        worker_template=template, workers=1, scheduler_service_template={"metadata": {
            "annotations": {"metallb.universe.tf/address-pool": "public"}, "labels": {"dask.org/x": "y"}}}))
    message = refusal(req)
    for where in ("scheduler-service-template: metadata.annotations['metallb.universe.tf/address-pool']",
                  "scheduler-service-template: metadata.labels['dask.org/x']",
                  "worker-template: metadata.annotations['vault.hashicorp.com/role']"):
        assert where in message, message


