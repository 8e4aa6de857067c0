"""The policy is out of users' reach, proven by the API server's authorizer rather than argued.

The default Helm install and the default manifests are applied for real (everything but the
Deployment: RBAC does not depend on a running controller). A user, a ServiceAccount acting through its
own kubeconfig (`python -m devcluster user NS SA`), is bound with the RoleBinding the docs tell admins
to create, in every namespace the install serves. Then SelfSubjectAccessReviews, one per row of the
tables below, ask as that user: "no" for every verb that could change the policy or any other object
the controller reads (besides the user's own requests), and "yes" for what KubeCluster needs.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from installkit import (
    MANIFESTS,
    REPO,
    Doc,
    load_dir,
    one,
    relocate,
    render,
    served_namespaces,
    to_yaml,
)

WRITE = ("create", "update", "patch", "delete", "deletecollection")

# (resource, verbs, object name or None, why a user must not). `resource` is "plural[.group][/sub]".
Row = tuple[str, tuple[str, ...], str | None, str]

# In the controller's own namespace, where no user is (or may be) bound. {policy}, {lease} and
# {controller} are the installed objects' names.
CONTROLLER_NAMESPACE_NO: list[Row] = [
    ("configmaps", WRITE, None, "the request policy is a ConfigMap here"),
    ("configmaps", ("update", "patch", "delete"), "{policy}", "the request policy itself"),
    ("leases.coordination.k8s.io", WRITE, None, "leader election decides which controller acts"),
    ("leases.coordination.k8s.io", ("update", "patch", "delete"), "{lease}", "the controller's Lease"),
    ("secrets", ("get", "list", "watch", *WRITE), None, "service-account tokens and anything else secret"),
    ("serviceaccounts", WRITE, None, "the controller's identity"),
    ("serviceaccounts/token", ("create",), "{controller}", "a token of the controller is its rights"),
    ("deployments.apps", WRITE, None, "the controller's image, arguments and policy mount"),
    ("replicasets.apps", WRITE, None, "the controller's pods, one level down"),
    ("pods", WRITE, None, "the controller's pod"),
    ("pods/exec", ("create", "get"), None, "a shell in the controller"),
    ("pods/attach", ("create", "get"), None, "the controller's stdin"),
    ("pods/portforward", ("create", "get"), None, "the controller's health and metrics ports"),
    ("pods/ephemeralcontainers", ("update", "patch"), None, "a debug container beside the controller"),
    ("roles.rbac.authorization.k8s.io", (*WRITE, "bind", "escalate"), None, "rights here"),
    ("rolebindings.rbac.authorization.k8s.io", WRITE, None, "rights here"),
]

# In each namespace the controller serves, where users are bound.
SERVED_NAMESPACE_NO: list[Row] = [
    ("pods", WRITE, None, "the controller's pods: only it creates and deletes them"),
    ("pods/status", ("update", "patch"), None, "the controller reads pod phases and readiness"),
    ("pods/ephemeralcontainers", ("update", "patch"), None, "a container with none of the policy's checks"),
    ("pods/resize", ("update", "patch"), None, "resources the policy and quotas judged"),
    ("pods/exec", ("create", "get"), None, "commands inside a pod beyond the policy"),
    ("pods/attach", ("create", "get"), None, "a pod's stdin"),
    ("pods/eviction", ("create",), None, "deleting pods through the back door"),
    ("pods/binding", ("create",), None, "choosing a pod's node (nodeName is a policy control)"),
    ("services", WRITE, None, "the scheduler's Service: the controller reads it and talks through it"),
    ("services/status", ("update", "patch"), None, "the external address the controller reports"),
    ("endpoints", WRITE, None, "where the controller's calls to a scheduler go"),
    ("endpointslices.discovery.k8s.io", WRITE, None, "where the controller's calls to a scheduler go"),
    ("poddisruptionbudgets.policy", WRITE, None, "the scheduler's PDB, which the controller checks"),
    ("poddisruptionbudgets.policy/status", ("update", "patch"), None, "the scheduler's PDB"),
    ("events", WRITE, None, "the controller's account of what it did"),
    ("events.events.k8s.io", WRITE, None, "the controller's account of what it did"),
    ("secrets", ("get", "list", "watch", *WRITE), None, "the policy refuses pods that read Secrets"),
    ("serviceaccounts", WRITE, None, "the identities the policy allowlists"),
    ("serviceaccounts/token", ("create",), "default", "the pods' identity"),
    ("roles.rbac.authorization.k8s.io", (*WRITE, "bind", "escalate"), None, "rights beyond the user role"),
    ("rolebindings.rbac.authorization.k8s.io", WRITE, None, "rights beyond the user role"),
    ("resourcequotas", WRITE, None, "what the API server lets the controller's pods use"),
    ("limitranges", WRITE, None, "defaults the API server writes into the controller's pods"),
    ("leases.coordination.k8s.io", WRITE, None, "a Lease the controller might take for its own"),
    ("deployments.apps", ("create", "update", "patch"), None, "pods without the controller"),
    ("replicasets.apps", ("create", "update", "patch"), None, "pods without the controller"),
    ("statefulsets.apps", ("create", "update", "patch"), None, "pods without the controller"),
    ("daemonsets.apps", ("create", "update", "patch"), None, "pods without the controller"),
    ("jobs.batch", ("create", "update", "patch"), None, "pods without the controller"),
    ("cronjobs.batch", ("create", "update", "patch"), None, "pods without the controller"),
    ("persistentvolumeclaims", WRITE, None, "storage the policy does not allow by default"),
]

# Cluster-scoped, or every namespace at once.
CLUSTER_NO: list[Row] = [
    ("namespaces", ("create", "update", "patch", "delete"), None, "namespace labels (Pod Security)"),
    ("nodes", WRITE, None, "where pods run, taints and labels the policy judges"),
    ("nodes/status", ("update", "patch"), None, "node capacity and conditions"),
    ("clusterroles.rbac.authorization.k8s.io", (*WRITE, "bind", "escalate"), None, "rights anywhere"),
    ("clusterrolebindings.rbac.authorization.k8s.io", WRITE, None, "rights anywhere"),
    ("mutatingwebhookconfigurations.admissionregistration.k8s.io", WRITE, None, "rewrites pods on creation"),
    ("validatingwebhookconfigurations.admissionregistration.k8s.io", WRITE, None, "judges every write"),
    ("validatingadmissionpolicies.admissionregistration.k8s.io", WRITE, None, "judges every write"),
    ("validatingadmissionpolicybindings.admissionregistration.k8s.io", WRITE, None, "judges every write"),
    ("customresourcedefinitions.apiextensions.k8s.io", WRITE, None, "new kinds"),
    ("priorityclasses.scheduling.k8s.io", WRITE, None, "what an allowlisted priority class name means"),
    ("runtimeclasses.node.k8s.io", WRITE, None, "what an allowlisted runtime class name means"),
    ("persistentvolumes", WRITE, None, "storage"),
    ("configmaps", ("create", "update", "patch", "delete"), None, "every namespace, the controller's too"),
    ("secrets", ("get", "list"), None, "every namespace"),
    ("pods", ("create",), None, "every namespace"),
    ("leases.coordination.k8s.io", ("update", "patch"), None, "every namespace"),
    ("users", ("impersonate",), None, "becoming someone else"),
    ("groups", ("impersonate",), None, "becoming someone else"),
    ("serviceaccounts", ("impersonate",), None, "becoming the controller"),
]

# What KubeCluster needs in a served namespace (the sanity half).
SERVED_NAMESPACE_YES: list[Row] = [
    ("configmaps", ("get", "list", "watch", "create", "update", "patch", "delete"), None, "requests"),
    ("pods", ("get", "list", "watch"), None, "cluster.pods(), readiness"),
    ("services", ("get", "list", "watch"), None, "the scheduler's address"),
    ("pods/log", ("get",), None, "cluster.get_logs()"),
    ("pods/portforward", ("get", "create"), None, "reaching the scheduler from outside the cluster"),
    ("events", ("get", "list", "watch"), None, "why a scheduler does not start"),
    ("events.events.k8s.io", ("get", "list", "watch"), None, "why a scheduler does not start"),
]

# The documented way to let users in: `kubectl -n NS create rolebinding NAME --clusterrole=ROLE --group=G`.
DOCUMENTED_BINDING = re.compile(
    r"kubectl -n (?P<namespace>\S+) create rolebinding (?P<name>\S+) --clusterrole=(?P<role>\S+) --group=\S+"
)
# The docs' install commands: `helm install kubedask ... -n kubedask`, and manifests/ in kubedask.
DOCUMENTED_RELEASE = DOCUMENTED_HOME = "kubedask"


def documented_bindings(doc: str) -> list[dict[str, str]]:
    found = [m.groupdict() for m in DOCUMENTED_BINDING.finditer((REPO / doc).read_text())]
    assert found, f"{doc} no longer shows how to bind the user role: update this test with it"
    return found


class SelfReview:
    """SelfSubjectAccessReviews through a user's own kubeconfig: the API server's answer for them."""

    def __init__(self, kubeconfig: str) -> None:
        from kubernetes import client, config

        self._client = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        self._api = client.AuthorizationV1Api(self._client)
        self._models = client

    def allowed(self, verb: str, resource: str, namespace: str | None, name: str | None = None) -> bool:
        plural_group, _, subresource = resource.partition("/")
        plural, _, group = plural_group.partition(".")
        attributes = self._models.V1ResourceAttributes(
            verb=verb,
            resource=plural,
            group=group,
            subresource=subresource or None,
            namespace=namespace or "",
            name=name,
        )
        review = self._models.V1SelfSubjectAccessReview(
            spec=self._models.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes)
        )
        status = self._api.create_self_subject_access_review(review).status
        assert status is not None, f"no answer for {verb} {resource}"
        return bool(status.allowed)

    def close(self) -> None:
        self._client.close()


@dataclass
class Installed:
    flavour: str
    home: str  # the controller's namespace
    served: list[str]
    names: dict[str, str]  # {policy}, {lease}, {controller}
    user_role: str
    docs: list[Doc]


def expand(rows: list[Row], names: dict[str, str]) -> list[tuple[str, str, str | None, str]]:
    return [
        (resource, verb, name.format(**names) if name else None, why)
        for resource, verbs, name, why in rows
        for verb in verbs
    ]


@pytest.fixture
def fresh_namespace(kubectl: Callable[..., str]) -> Iterator[Callable[[str], str]]:
    made: list[str] = []

    def make(prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:5]}"
        kubectl("create", "namespace", name)
        made.append(name)
        return name

    yield make
    for name in made:
        kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture(params=["helm", "manifests"])
def installed(
    request: pytest.FixtureRequest,
    helm: str,
    kubectl: Callable[..., str],
    namespace: str,
    fresh_namespace: Callable[[str], str],
) -> Iterator[Installed]:
    """The default install, with nothing changed but where it lives: the chart rendered with its
    default values under a unique release name (it still serves `default`); the manifests moved to
    fresh namespaces, as kustomize would."""
    if request.param == "helm":
        release = f"ur-{uuid.uuid4().hex[:6]}"
        docs = render(helm, release=release, namespace=namespace)
        user_role = f"{release}-kubedask-user"
    else:
        suffix = f"-{namespace}"
        docs = relocate(load_dir(MANIFESTS), namespace, suffix=suffix, served=fresh_namespace("ur-served"))
        user_role = f"kubedask-user{suffix}"
    served = served_namespaces(docs)
    assert served, f"the default {request.param} install serves no namespace list: {served}"
    one(docs, "ClusterRole", user_role)
    applied = [d for d in docs if d["kind"] != "Deployment"]
    kubectl("apply", "-f", "-", input=to_yaml(applied))
    names = {
        "policy": one(docs, "ConfigMap")["metadata"]["name"],
        "lease": one(docs, "Lease")["metadata"]["name"],
        "controller": one(docs, "ServiceAccount")["metadata"]["name"],
    }
    yield Installed(request.param, namespace, served, names, user_role, applied)
    kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=to_yaml(applied), check=False)


@pytest.fixture
def user(
    installed: Installed,
    kubectl: Callable[..., str],
    user_kubeconfig: Callable[[str, str], str],
    fresh_namespace: Callable[[str], str],
) -> Iterator[SelfReview]:
    """Alice, bound exactly as the docs say in every namespace the install serves, and nowhere else."""
    doc = {"helm": "README.md", "manifests": "manifests/README.md"}[installed.flavour]
    home_namespace = fresh_namespace("ur-users")  # where her ServiceAccount lives
    kubeconfig = user_kubeconfig(home_namespace, "alice")
    documented_role = {"helm": f"{DOCUMENTED_RELEASE}-user", "manifests": "kubedask-user"}[installed.flavour]
    bound: list[tuple[str, str]] = []
    for binding in documented_bindings(doc):
        # What the doc tells admins to do is safe as written: a served namespace, never the home.
        assert binding["namespace"] != DOCUMENTED_HOME, f"{doc} binds users in the controller's namespace"
        assert binding["role"] == documented_role, binding
        for served in installed.served:
            name = f"{binding['name']}-{uuid.uuid4().hex[:5]}"
            kubectl(
                "-n", served, "create", "rolebinding", name,
                f"--clusterrole={installed.user_role}",
                f"--serviceaccount={home_namespace}:alice",  # instead of --group: the same binding for her
            )
            bound.append((served, name))
    reviews = SelfReview(kubeconfig)
    yield reviews
    reviews.close()
    for served, name in bound:
        kubectl("-n", served, "delete", "rolebinding", name, "--ignore-not-found", check=False)


def answers(
    user: SelfReview, rows: list[Row], namespace: str | None, names: dict[str, str], want: bool
) -> list[str]:
    """The rows whose answer is not `want`, as readable lines."""
    return [
        f"{verb} {resource}{'/' + name if name else ''} in {namespace or 'the cluster'} ({why})"
        for resource, verb, name, why in expand(rows, names)
        if user.allowed(verb, resource, namespace, name) != want
    ]


def test_docs_bind_users_only_where_the_default_installs_serve(helm: str) -> None:
    """Followed verbatim, the docs' RoleBindings land in served namespaces of the installs they describe."""
    helm_served = served_namespaces(render(helm, release=DOCUMENTED_RELEASE, namespace=DOCUMENTED_HOME))
    manifests_served = served_namespaces(load_dir(MANIFESTS))
    assert helm_served == manifests_served == ["default"]
    for doc, served in (("README.md", helm_served), ("manifests/README.md", manifests_served)):
        for binding in documented_bindings(doc):
            assert binding["namespace"] in served, f"{doc}: {binding} is not in a served namespace {served}"


def test_user_cannot_change_the_policy_or_anything_the_controller_reads(
    installed: Installed, user: SelfReview
) -> None:
    names = installed.names
    # The policy and the Lease are there to be asked about by name.
    assert installed.home not in installed.served
    unsafe = answers(user, CONTROLLER_NAMESPACE_NO, installed.home, names, want=False)
    for served in installed.served:
        unsafe += answers(user, SERVED_NAMESPACE_NO, served, names, want=False)
    unsafe += answers(user, CLUSTER_NO, None, names, want=False)
    assert unsafe == [], "the user may:\n" + "\n".join(unsafe)


def test_user_can_do_what_kubecluster_needs_only_where_served(
    installed: Installed, user: SelfReview, fresh_namespace: Callable[[str], str]
) -> None:
    names = installed.names
    for served in installed.served:
        missing = answers(user, SERVED_NAMESPACE_YES, served, names, want=True)
        assert missing == [], f"the user may not, in {served}:\n" + "\n".join(missing)
    # Not in the controller's namespace, nor in one the controller does not serve.
    for namespace in (installed.home, fresh_namespace("ur-elsewhere")):
        extra = answers(user, SERVED_NAMESPACE_YES, namespace, names, want=False)
        assert extra == [], f"the user may, in {namespace}:\n" + "\n".join(extra)
