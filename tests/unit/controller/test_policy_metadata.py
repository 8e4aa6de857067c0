"""A template's annotations and labels: what webhooks, agents, Services and NetworkPolicies act on. Each
refused one is refused under every profile and in every template, named in the message with the policy key,
and allowed once the admin allowlists it, globally or for one namespace. Labels are closed by default under
every profile: only the users' own ``user.kubedask.io/`` domain passes until an admin allows more."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubedask.spec import build_request_data, parse_request
from kubedask_controller import builders, job, labelling
from kubedask_controller.policy import Policy, admit, load_policy
from policy_requests import ALL_TEMPLATE_KEYS, NAMESPACE, assert_refused, loosened, pod, refusal, request

PROFILES = ("baseline", "restricted", "privileged")
ANNOTATIONS = "allowedPodAnnotations"
LABELS = "allowedPodLabels"
REPO = Path(__file__).resolve().parents[3]

# id -> (annotation key, value, an allowlist entry that allows it)
REFUSED_ANNOTATIONS: dict[str, tuple[str, str, str]] = {
    "vault-inject": ("vault.hashicorp.com/agent-inject", "true", "vault.hashicorp.com/agent-inject"),
    "vault-role": ("vault.hashicorp.com/role", "db-admin", "vault.hashicorp.com/*"),
    "kube2iam-role": ("iam.amazonaws.com/role", "arn:aws:iam::1:role/admin", "iam.amazonaws.com/role"),
    "istio-no-sidecar": ("sidecar.istio.io/inject", "false", "sidecar.istio.io/inject"),
    "istio-excluded-ranges": ("traffic.sidecar.istio.io/excludeOutboundIPRanges", "0.0.0.0/0", "*"),
    "linkerd-no-proxy": ("linkerd.io/inject", "disabled", "linkerd.io/*"),
    "unknown": ("example.com/anything", "x", "example.com/anything"),
    # The controller's own domain: a "*" does not cover it, the key named does.
    "controller-owned": ("kubedask.io/template-hash", "forged", "kubedask.io/template-hash"),
}
# id -> (label key, an allowlist entry that allows it; "*" never does)
SENSITIVE_LABELS: dict[str, tuple[str, str]] = {
    "azure-workload-identity": ("azure.workload.identity/use", "azure.workload.identity/use"),
    "aad-pod-identity": ("aadpodidbinding", "aadpodidbinding"),
    "istio-inject": ("sidecar.istio.io/inject", "sidecar.istio.io/inject"),
    "istio-revision": ("istio.io/rev", "istio.io/rev"),
    "istio-injection": ("istio-injection", "istio-injection"),
    "istio-ambient": ("istio.io/dataplane-mode", "istio.io/dataplane-mode"),
    "managed-by": ("app.kubernetes.io/managed-by", "app.kubernetes.io/managed-by"),
    "dask-group": ("dask.org/workergroup-name", "dask.org/workergroup-name"),
    "kubedask-domain": ("kubedask.io/request", "kubedask.io/*"),
}


def annotation_path(key: str) -> str:
    return f"metadata.annotations[{key!r}]"


def label_path(key: str) -> str:
    return f"metadata.labels[{key!r}]"


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("where", ALL_TEMPLATE_KEYS)
@pytest.mark.parametrize("case", REFUSED_ANNOTATIONS)
def test_an_annotation_that_may_grant_is_refused_until_allowlisted(case: str, where: str, profile: str) -> None:
    key, value, entry = REFUSED_ANNOTATIONS[case]
    req = request(pod(), where, annotations={key: value})
    policy = Policy(profile=profile)  # type: ignore[arg-type]
    assert_refused(req, where, annotation_path(key), f'"{value}"', ANNOTATIONS, policy)
    assert f'add "{key}" to policy key {ANNOTATIONS}' in refusal(req, policy)
    for loose in loosened(policy, **{ANNOTATIONS: [entry]}):
        admit(req, loose, NAMESPACE)
    refusal(req, loosened(policy, **{ANNOTATIONS: [entry]})[1], namespace="team-b")


def test_the_vault_refusal_says_where_why_and_how_to_allow_it() -> None:
    req = request(pod(), "worker-template", annotations={"vault.hashicorp.com/role": "db-admin"})
    assert refusal(req) == (
        "policy violation in worker-template: metadata.annotations['vault.hashicorp.com/role'] is \"db-admin\": "
        "the Vault agent injector would put Vault secrets into the pod. Remove it, or ask an admin to add "
        "\"vault.hashicorp.com/role\" to policy key allowedPodAnnotations (in the policy ConfigMap, Helm value "
        "policy.allowedPodAnnotations; for namespace team-a only: namespaces.team-a.allowedPodAnnotations)")


def test_a_star_does_not_cover_the_controllers_own_annotations() -> None:
    req = request(pod(), annotations={"kubedask.io/spec": "{}", "dask.org/x": "y", "example.com/a": "b"})
    message = refusal(req, Policy(allowedPodAnnotations=("*",)))
    assert "metadata.annotations['kubedask.io/spec']" in message and "a '*' entry does not cover" in message
    assert "metadata.annotations['dask.org/x']" in message and "example.com/a" not in message


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("where", ALL_TEMPLATE_KEYS)
def test_annotations_known_to_grant_nothing_pass_by_default(where: str, profile: str) -> None:
    harmless = {"prometheus.io/scrape": "true", "prometheus.io/port": "8787", "prometheus.io/path": "/metrics",
                "kubectl.kubernetes.io/default-container": "w",
                "cluster-autoscaler.kubernetes.io/safe-to-evict": "true", "user.kubedask.io/owner": "ana"}
    admit(request(pod(), where, annotations=harmless), Policy(profile=profile), NAMESPACE)  # type: ignore[arg-type]


@pytest.mark.parametrize("where", ALL_TEMPLATE_KEYS)
def test_apparmor_and_seccomp_annotations_are_pod_securitys_to_decide(where: str) -> None:
    fine = {"container.apparmor.security.beta.kubernetes.io/w": "runtime/default",
            "seccomp.security.alpha.kubernetes.io/pod": "runtime/default"}
    admit(request(pod(), where, annotations=fine), Policy(), NAMESPACE)
    unconfined = request(pod(), where, annotations={"container.apparmor.security.beta.kubernetes.io/w": "unconfined"})
    message = refusal(unconfined)
    assert "podSecurityExemptions" in message and ANNOTATIONS not in message  # refused once, by Pod Security
    admit(unconfined, Policy(podSecurityExemptions=("appArmor",)), NAMESPACE)
    admit(unconfined, Policy(profile="privileged"), NAMESPACE)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("where", ALL_TEMPLATE_KEYS)
@pytest.mark.parametrize("case", SENSITIVE_LABELS)
def test_a_sensitive_label_is_refused_even_under_a_star_until_named(case: str, where: str, profile: str) -> None:
    key, entry = SENSITIVE_LABELS[case]
    req = request(pod(), where, labels={key: "true"})
    for policy in (Policy(profile=profile), Policy(profile=profile, allowedPodLabels=("*",))):  # type: ignore[arg-type]
        assert_refused(req, where, label_path(key), '"true"', LABELS, policy)
        assert "a '*' entry does not cover this key" in refusal(req, policy)
    for loose in loosened(Policy(profile=profile), **{LABELS: ["*", entry]}):  # type: ignore[arg-type]
        admit(req, loose, NAMESPACE)
    refusal(req, loosened(Policy(profile=profile), **{LABELS: [entry]})[1], namespace="team-b")  # type: ignore[arg-type]


def test_the_azure_identity_refusal_names_the_webhook() -> None:
    message = refusal(request(pod(), "scheduler-template", labels={"azure.workload.identity/use": "true"}))
    assert message.startswith("policy violation in scheduler-template: metadata.labels"
                              "['azure.workload.identity/use'] is \"true\": an admission webhook would inject "
                              "cloud credentials into the pod; a '*' entry does not cover this key. Remove it, "
                              "or ask an admin to add \"azure.workload.identity/use\" to policy key allowedPodLabels")


# Plain labels that would select a worker into what is not its own: another Service's traffic, a
# NetworkPolicy's allowed peers, a prefixed team label a Service of another team selects on.
PLAIN_LABELS = {"run": ("payments", "user.kubedask.io/run"), "role": ("frontend", "user.kubedask.io/role"),
                "example.com/team": ("risk", "user.kubedask.io/team")}


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("where", ALL_TEMPLATE_KEYS)
@pytest.mark.parametrize("key", PLAIN_LABELS)
def test_a_plain_label_is_refused_under_every_profile_with_both_fixes(key: str, where: str, profile: str) -> None:
    value, renamed = PLAIN_LABELS[key]
    req = request(pod(), where, labels={key: value})
    policy = Policy(profile=profile)  # type: ignore[arg-type]
    assert_refused(req, where, label_path(key), f'"{value}"', LABELS, policy)
    message = refusal(req, policy)
    assert "labels select pods into Services and NetworkPolicies" in message, message
    assert f'Rename it "{renamed}" (or remove it), or ask an admin to add "{key}" to policy key {LABELS} (in the ' \
           f"policy ConfigMap, Helm value policy.{LABELS}; for namespace {NAMESPACE} only: " \
           f"namespaces.{NAMESPACE}.{LABELS})" in message, message
    admit(request(pod(), where, labels={renamed: value}), policy, NAMESPACE)


def _seed() -> dict[str, Any]:
    template: dict[str, Any] = yaml.safe_load((REPO / "examples" / "worker-spec.yml").read_text())
    assert template["metadata"]["labels"] == {"foo": "bar"}
    return template


def test_the_seeds_label_is_refused_by_default_saying_why_and_both_fixes() -> None:
    req = parse_request("analysis", build_request_data(worker_template=_seed(), workers=1))
    assert refusal(req) == (
        "policy violation in worker-template: metadata.labels['foo'] is \"bar\": labels select pods into Services "
        "and NetworkPolicies (a pod labelled like another app's receives its traffic and passes its network rules) "
        "and webhooks act on them, and this key is not allowed. Rename it \"user.kubedask.io/foo\" (or remove it), "
        "or ask an admin to add \"foo\" to policy key allowedPodLabels (in the policy ConfigMap, Helm value "
        "policy.allowedPodLabels; for namespace team-a only: namespaces.team-a.allowedPodLabels)")


def test_make_pod_spec_labels_are_refused_like_a_templates() -> None:
    import kubernetes
    from kubedask import make_pod_spec
    made = make_pod_spec(image="ghcr.io/dask/dask:latest", labels={"app": "payments", "user.kubedask.io/ok": "1"})
    template = kubernetes.client.ApiClient().sanitize_for_serialization(made)  # type: ignore[no-untyped-call]
    message = refusal(parse_request("analysis", build_request_data(worker_template=template, workers=1)))
    assert "metadata.labels['app'] is \"payments\"" in message and "user.kubedask.io/ok" not in message


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("where", ALL_TEMPLATE_KEYS)
def test_the_users_own_label_domain_passes_under_every_profile(where: str, profile: str) -> None:
    labels = {"user.kubedask.io/team": "risk", "user.kubedask.io/cost-centre": "42"}
    admit(request(pod(), where, labels=labels), Policy(profile=profile), NAMESPACE)  # type: ignore[arg-type]


@pytest.mark.parametrize("profile", PROFILES)
def test_an_admins_star_allows_plain_labels_but_not_a_sensitive_one(profile: str) -> None:
    star = Policy(profile=profile, allowedPodLabels=("*",))  # type: ignore[arg-type]
    admit(parse_request("analysis", build_request_data(worker_template=_seed(), workers=1)), star, NAMESPACE)
    message = refusal(request(pod(), labels={"foo": "bar", "sidecar.istio.io/inject": "false"}), star)
    assert "metadata.labels['sidecar.istio.io/inject']" in message and "'foo'" not in message, message
    assert "a '*' entry does not cover this key. Remove it, or ask" in message, message


@pytest.mark.parametrize("profile", PROFILES)
def test_an_admin_allows_a_label_key_for_one_namespace(profile: str) -> None:
    req = parse_request("analysis", build_request_data(worker_template=_seed(), workers=1))
    for entries in (["user.kubedask.io/*", "foo"], ["*"]):
        everywhere, team_a = loosened(Policy(profile=profile), **{LABELS: entries})  # type: ignore[arg-type]
        admit(req, everywhere, "team-b")
        admit(req, team_a, NAMESPACE)
        assert "namespaces.team-b.allowedPodLabels" in refusal(req, team_a, namespace="team-b")


def test_an_allowlist_without_the_users_domain_offers_no_rename() -> None:
    message = refusal(request(pod(), labels={"foo": "bar"}), Policy(allowedPodLabels=("team",)))
    assert "Remove it, or ask an admin to add \"foo\"" in message and "Rename" not in message, message
    admit(request(pod(), labels={"team": "a"}), Policy(allowedPodLabels=("team",)), NAMESPACE)
    assert "metadata.labels['user.kubedask.io/x']" in refusal(
        request(pod(), labels={"user.kubedask.io/x": "1"}), Policy(allowedPodLabels=("team",)))


def test_the_label_default_is_the_same_under_every_namespaces_profile() -> None:
    req = request(pod(), labels={"team": "a"})
    policy = Policy.model_validate({"namespaces": {"strict": {"profile": "restricted"},
                                                   "open": {"profile": "privileged"}}})
    for namespace in (NAMESPACE, "strict", "open"):
        assert f"namespaces.{namespace}.allowedPodLabels" in refusal(req, policy, namespace=namespace)
    # An explicit global list is the admin's choice for every profile.
    admit(req, Policy.model_validate({LABELS: ["team"], "namespaces": {"strict": {"profile": "restricted"}}}),
          "strict")


def test_null_in_an_older_policy_file_means_the_closed_default(tmp_path: Path) -> None:
    # Earlier manifests and Helm values wrote null ("the profile's default", then "*" under baseline).
    path = tmp_path / "policy.yaml"
    path.write_text("allowedPodLabels: null\nallowedServiceLabels: null\nnamespaces:\n  team-a: "
                    "{allowedPodLabels: null}\n")
    policy = load_policy(path, environ={})
    assert policy.allowed_pod_labels == policy.allowed_service_labels == ("user.kubedask.io/*",)
    assert policy.for_namespace(NAMESPACE).allowed_pod_labels == ("user.kubedask.io/*",)
    assert "metadata.labels['foo']" in refusal(request(pod(), labels={"foo": "bar"}), policy)


def test_every_template_of_a_request_is_checked_and_all_refusals_listed() -> None:
    data = build_request_data(
        worker_template={"metadata": {"annotations": {"vault.hashicorp.com/agent-inject": "true"}}, "spec": pod()},
        scheduler_template={"metadata": {"labels": {"istio.io/rev": "canary"}}, "spec": pod()},
        job_template={"metadata": {"annotations": {"iam.amazonaws.com/role": "admin"}}, "spec": pod()},
        worker_groups={"gpu": (1, {"metadata": {"labels": {"aadpodidbinding": "admin"}}, "spec": pod()})},
        workers=1)
    message = refusal(parse_request("analysis", data), Policy(profile="privileged"))
    for where in ("worker-template: metadata.annotations['vault.hashicorp.com/agent-inject']",
                  "scheduler-template: metadata.labels['istio.io/rev']",
                  "job-template: metadata.annotations['iam.amazonaws.com/role']",
                  "worker-template.gpu: metadata.labels['aadpodidbinding']"):
        assert where in message, message


#: Every key-pattern allowlist: the pod's (here) and the scheduler Service's (test_policy_service_metadata).
KEY_PATTERN_LISTS = ("allowedPodAnnotations", "allowedPodLabels", "allowedServiceAnnotations", "allowedServiceLabels")


@pytest.mark.parametrize("pattern", ["vault.*/role", "", "*.example.com"])
@pytest.mark.parametrize("key", KEY_PATTERN_LISTS)
def test_a_key_pattern_with_an_inner_star_stops_the_controller_at_start(key: str, pattern: str,
                                                                        tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({key: [pattern]}))
    with pytest.raises(ValueError, match=f"invalid policy file .*{key}.*not a key pattern"):
        load_policy(path, environ={})
    # The same list from the environment, comma-separated.
    field = next(name for name, f in Policy.model_fields.items() if f.alias == key)
    policy = load_policy(None, environ={f"KUBEDASK_POLICY_{field.upper()}": "team, user.kubedask.io/*"})
    assert getattr(policy, field) == ("team", "user.kubedask.io/*")


def test_the_controllers_labels_win_over_a_templates_on_every_pod() -> None:
    """A template naming the controller's plain ``app`` keys cannot make its pods look like another app's:
    those labels are always the controller's own, even where the admin allows any label key."""
    forged = {"app": "payments", "app.kubernetes.io/name": "payments", "app.kubernetes.io/instance": "payments",
              "app.kubernetes.io/component": "api"}
    template = {"metadata": {"labels": {**forged, "tier": "batch"}}, "spec": pod()}
    req = admit(parse_request("analysis", build_request_data(worker_template=template, job_template=template,
                                                             workers=1)), Policy(allowedPodLabels=("*",)), NAMESPACE)
    owner = labelling.owner_reference("analysis", "uid-1")
    for manifest, component in ((builders.build_worker_pod(req, NAMESPACE, "analysis-worker-abcde", owner), "worker"),
                                (builders.build_scheduler_pod(req, NAMESPACE, owner), "scheduler"),
                                (job.build_job_pod(req, NAMESPACE, owner), "job")):
        labels = manifest["metadata"]["labels"]
        assert labels["tier"] == "batch"
        assert {k: labels[k] for k in forged} == {
            "app": "dask", "app.kubernetes.io/name": "dask", "app.kubernetes.io/instance": "analysis",
            "app.kubernetes.io/component": component}
