"""The Helm chart and the plain manifests, checked without a cluster: lint, schema, least privilege,
the restricted pod, and that the manifests are exactly what the chart renders with its defaults."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from installkit import (
    CHART,
    MANIFESTS,
    MANIFESTS_ALL_NAMESPACES,
    NON_DEFAULT_VALUES,
    REPO,
    Doc,
    by_key,
    controller_container,
    find,
    helm_run,
    key,
    load_dir,
    one,
    package_version,
    render,
    served_namespaces,
    set_args,
    without_helm_bookkeeping,
)

RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def rules_of(doc: Doc) -> list[dict[str, Any]]:
    return list(doc.get("rules") or [])


def granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples a set of rules grants (resourceNames ignored)."""
    return {
        (g, r, v)
        for rule in rules
        for g in rule.get("apiGroups", [""])
        for r in rule["resources"]
        for v in rule["verbs"]
    }


# ---------------------------------------------------------------------------------------------
# Lint, versions, schema


@pytest.mark.parametrize(
    "values",
    [{}, NON_DEFAULT_VALUES, {"allNamespaces": True}],
    ids=["defaults", "non-default", "all-namespaces"],
)
def test_helm_lint_is_clean(helm: str, values: dict[str, Any]) -> None:
    # In its own namespace, as the docs install it: lint mode turns the chart's `fail` (the release
    # namespace among those served; `default` is, by default) into an [INFO] and stops rendering.
    proc = helm_run(helm, "lint", "--strict", str(CHART), "--namespace", "kubedask", *set_args(values))
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout
    output = proc.stdout + proc.stderr
    assert not re.search(r"\[(INFO|WARNING|ERROR)\]", output), output


def test_chart_and_app_version_are_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == package_version()


def test_manifests_name_the_image_of_this_version() -> None:
    for docs in (load_dir(MANIFESTS), load_dir(MANIFESTS_ALL_NAMESPACES)):
        image = controller_container(docs)["image"]
        assert image == f"ghcr.io/kubedask/kubedask-controller:{package_version()}"


@pytest.mark.parametrize(
    "bad",
    [
        {"watchNamespace": ["typo"]},  # unknown key
        {"logLevel": "verbose"},  # not a level
        {"watchNamespaces": ["Not_A_Namespace"]},  # not a DNS label
        {"policy": {"allowHostNetwork": True}},  # not a policy field the controller knows
        {"policy": {"allowPrivileged": True}},  # the old format's keys are gone, not ignored
        {"policy": {"maxWorkers": -1}},
        {"policy": {"profile": "lenient"}},
        {"policy": {"allowedServiceTypes": ["ExternalName"]}},
        {"policy": {"allowedSecrets": "s3-creds"}},  # a list, not a string
        {"policy": {"namespaces": {"team-a": {"allowedSecret": ["s3-creds"]}}}},  # typo in an override
        {"policy": {"namespaces": {"team-a": {"namespaces": {}}}}},  # overrides do not nest
        {"policy": {"namespaces": {"Team_A": {"maxWorkers": 1}}}},  # not a namespace name
        {"image": {"repository": "x", "digest": "latest"}},  # not a digest
        {"replicas": "two"},
    ],
    ids=lambda v: ",".join(v),
)
def test_schema_rejects_bad_values(helm: str, bad: dict[str, Any]) -> None:
    proc = helm_run(helm, "template", "kubedask", str(CHART), *set_args(bad), check=False)
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("values", "namespace", "message"),
    [
        # The controller's own namespace holds its policy: serving it would let users rewrite it.
        ({"watchNamespaces": ["kubedask"]}, "kubedask", "watchNamespaces lists kubedask, the release namespace"),
        ({"watchNamespaces": ["team-a", "dask"]}, "dask", "watchNamespaces lists dask, the release namespace"),
        # `helm install` without -n: the release namespace is the default one, which is served by default.
        ({}, "default", "Install the chart into a namespace of its own"),
        ({"watchNamespaces": []}, "kubedask", "watchNamespaces is empty"),
        ({"allNamespaces": True, "watchNamespaces": ["team-a"]}, "kubedask", "would be ignored"),
    ],
    ids=["release-namespace", "among-others", "no-namespace-given", "empty", "both-scopes"],
)
def test_install_refuses_a_scope_that_is_unsafe_or_ambiguous(
    helm: str, values: dict[str, Any], namespace: str, message: str
) -> None:
    proc = helm_run(
        helm, "template", "kubedask", str(CHART), "--namespace", namespace, *set_args(values), check=False
    )
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    if "release namespace" in message:
        assert "never serves its own namespace" in proc.stderr  # says why, and how to fix it
        assert "-n kubedask --create-namespace" in proc.stderr


def test_service_account_name_is_required_when_not_created(helm: str) -> None:
    no_account = set_args({"serviceAccount": {"create": False}})
    proc = helm_run(helm, "template", "kubedask", str(CHART), *no_account, check=False)
    assert proc.returncode != 0 and "serviceAccount.name is required" in proc.stderr


# ---------------------------------------------------------------------------------------------
# Scope and least privilege


def test_default_install_serves_default_and_never_its_own_namespace(helm: str) -> None:
    docs = render(helm, namespace="analytics", release="dask")
    assert find(docs, "ClusterRoleBinding") == []
    # The only cluster-scoped object is the (unbound) user role.
    assert [d["metadata"]["name"] for d in find(docs, "ClusterRole")] == ["dask-kubedask-user"]
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in find(docs, "Role")}
    assert roles == {
        ("default", "dask-kubedask-controller"),  # where users' clusters run
        ("analytics", "dask-kubedask-controller-leader-election"),  # its home: only the Lease
    }
    for doc in docs:
        if doc["kind"] not in ("ClusterRole", "Role", "RoleBinding"):
            assert doc["metadata"]["namespace"] == "analytics", key(doc)
    # The policy lives where the controller does not serve.
    assert one(docs, "ConfigMap")["metadata"]["namespace"] == "analytics"
    assert served_namespaces(docs) == ["default"]
    assert "--all-namespaces" not in controller_container(docs)["args"]
    # The controller learns its own namespace (to skip it) from the downward API.
    env = {e["name"]: e for e in controller_container(docs)["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_default_manifests_serve_default_and_never_their_own_namespace() -> None:
    for directory, served in ((MANIFESTS, ["default"]), (MANIFESTS_ALL_NAMESPACES, None)):
        docs = load_dir(directory)
        assert served_namespaces(docs) == served
        home = one(docs, "Namespace")["metadata"]["name"]
        assert home == "kubedask" and home not in (served or [])
        assert one(docs, "ConfigMap")["metadata"]["namespace"] == home
        assert one(docs, "Lease")["metadata"]["namespace"] == home
        env = {e["name"]: e for e in controller_container(docs)["env"]}
        assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_watch_namespaces_get_one_role_each_and_nothing_else(helm: str) -> None:
    docs = render(helm, NON_DEFAULT_VALUES, namespace="dask-system")
    controller_roles = {d["metadata"]["namespace"] for d in find(docs, "Role", "dask-control-controller")}
    assert controller_roles == {"team-a", "team-b"}
    for binding in find(docs, "RoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "dask-controller", "namespace": "dask-system"}
        ]
    args = controller_container(docs)["args"]
    assert [a for a in args if a.startswith("--namespace")] == ["--namespace=team-a", "--namespace=team-b"]
    assert find(docs, "ClusterRoleBinding") == []


def test_all_namespaces_uses_a_cluster_role_with_the_same_rules(helm: str) -> None:
    namespaced = render(helm)
    cluster = render(helm, {"allNamespaces": True})
    cluster_role = one(cluster, "ClusterRole", "kubedask-controller")
    assert rules_of(cluster_role) == rules_of(one(namespaced, "Role", "kubedask-controller"))
    binding = one(cluster, "ClusterRoleBinding", "kubedask-controller")
    assert binding["roleRef"]["name"] == "kubedask-controller"
    assert find(cluster, "Role", "kubedask-controller") == []
    assert "--all-namespaces" in controller_container(cluster)["args"]
    # Leader election stays namespaced in every mode.
    assert one(cluster, "Role", "kubedask-controller-leader-election")["metadata"]["namespace"] == "kubedask"


def test_rbac_create_false_renders_no_rbac(helm: str) -> None:
    docs = render(helm, {"rbac": {"create": False, "userRole": {"create": False}}})
    assert not [d for d in docs if d["apiVersion"].startswith("rbac.authorization.k8s.io")]


def test_controller_rules_grant_no_secrets_no_wildcards_no_escalation(helm: str) -> None:
    for values in ({}, {"allNamespaces": True}):
        docs = render(helm, values)
        for role in find(docs, "Role") + find(docs, "ClusterRole", "kubedask-controller"):
            for rule in rules_of(role):
                assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
                assert "secrets" not in rule["resources"], rule
                assert not set(rule["verbs"]) & {"escalate", "bind", "impersonate"}, rule
                assert not set(rule["resources"]) & {
                    "pods/exec",
                    "pods/attach",
                    "nodes",
                    "namespaces",
                    "roles",
                    "rolebindings",
                    "serviceaccounts/token",
                }, rule


# What each Kubernetes client method the controller calls needs: (apiGroup, resource, verb).
_VERBS = {
    "create": "create",
    "delete": "delete",
    "list": "list",
    "read": "get",
    "patch": "patch",
    "replace": "update",
}
_RESOURCES = {
    "pod": ("", "pods"),
    "pod_log": ("", "pods/log"),
    "service": ("", "services"),
    "config_map": ("", "configmaps"),
    "event": ("", "events"),
    "pod_disruption_budget": ("policy", "poddisruptionbudgets"),
    "lease": ("coordination.k8s.io", "leases"),
}


# The controller's own HTTP calls (kube_http, pod_watch): `_send("POST", "/api/v1/...")` writes and
# `reads.get` / `reads.stream` (a LIST page, a WATCH) of the one core resource the module's paths name.
_HTTP_VERBS = {"POST": "create", "DELETE": "delete", "get": "list", "stream": "watch"}


def _core_resources_in_paths(tree: ast.AST) -> set[str]:
    """`pods` from "/api/v1/pods" and f"/api/v1/namespaces/{ns}/pods/{name}"."""
    formatted = [n for n in ast.walk(tree) if isinstance(n, ast.JoinedStr)]
    parts = {id(v) for n in formatted for v in n.values}
    paths = [n.value for n in ast.walk(tree)
             if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in parts]
    paths += ["".join(v.value if isinstance(v, ast.Constant) else "{}" for v in n.values) for n in formatted]
    found = (re.match(r"/api/v1/(?:namespaces/\{\}/)?(\w+)", p) for p in paths)
    return {m[1] for m in found if m}


def _http_calls(tree: ast.AST, source: str) -> set[tuple[str, str, str]]:
    verbs: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        method = node.args[0] if node.args else None
        if node.func.attr == "_send" and isinstance(method, ast.Constant) and isinstance(method.value, str):
            verbs.add(_HTTP_VERBS[method.value])  # (kube.Kube._send's first argument is a write guard)
        owner = node.func.value
        if node.func.attr in ("get", "stream") and isinstance(owner, ast.Attribute) and owner.attr == "reads":
            verbs.add(_HTTP_VERBS[node.func.attr])
    if not verbs:
        return set()
    resources = _core_resources_in_paths(tree)
    assert len(resources) == 1, f"{source}: raw API calls on {resources or 'no path'}: extend this test"
    (resource,) = resources
    return {("", resource, verb) for verb in verbs}


def controller_api_calls() -> set[tuple[str, str, str]]:
    """Every API call in the controller's sources: `self.core.create_namespaced_pod`-style calls, the
    controller's own HTTP writes and pod watch, and Kopf's list+watch of the resources it has handlers
    for."""
    needed: set[tuple[str, str, str]] = set()
    sources = sorted((REPO / "controller" / "kubedask_controller").glob("*.py"))
    for source in sources:
        tree = ast.parse(source.read_text())
        needed |= _http_calls(tree, source.name)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute)
                and node.value.attr in ("core", "policy", "coordination", "apps", "events")
            ):
                match = re.fullmatch(
                    r"(create|delete|list|read|patch|replace)_namespaced_(\w+?)(_status)?", node.attr
                )
                assert match, f"{source.name}: unrecognised API call {node.attr}: extend this test"
                verb, resource = _VERBS[match[1]], _RESOURCES[match[2]]
                needed.add((resource[0], resource[1] + ("/status" if match[3] else ""), verb))
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", None) == "event"
                and getattr(getattr(node.func, "value", None), "attr", None) == "on"
            ):
                group_version, plural = (ast.literal_eval(a) for a in node.args[:2])
                group = "" if group_version == "v1" else group_version.split("/")[0]
                needed |= {(group, plural, "list"), (group, plural, "watch")}
    assert needed, "found no API calls in the controller: has it moved?"
    return needed


def test_controller_rbac_is_exactly_what_the_controller_calls(helm: str) -> None:
    docs = render(helm)
    grants = granted(rules_of(one(docs, "Role", "kubedask-controller")))
    grants |= granted(rules_of(one(docs, "Role", "kubedask-controller-leader-election")))
    needed = controller_api_calls()
    assert needed - grants == set(), "the controller calls APIs its RBAC does not allow"
    assert grants - needed == set(), "the RBAC grants verbs the controller never uses"


def test_leader_election_role_renews_only_its_own_lease(helm: str) -> None:
    docs = render(helm, release="one")
    rules = rules_of(one(docs, "Role", "one-kubedask-controller-leader-election"))
    named = [r for r in rules if set(r["verbs"]) & {"get", "update"}]
    assert named and all(r.get("resourceNames") == ["one-kubedask-controller"] for r in named)
    lease = one(docs, "Lease")
    assert lease["metadata"]["name"] == "one-kubedask-controller"
    env = {e["name"]: e.get("value") for e in controller_container(docs)["env"]}
    assert env["KUBEDASK_LEASE_NAME"] == "one-kubedask-controller"


def test_user_role_lets_users_request_clusters_but_not_run_pods(helm: str) -> None:
    grants = granted(rules_of(one(render(helm), "ClusterRole", "kubedask-user")))
    for verb in ("get", "list", "watch", "create", "update", "patch", "delete"):
        assert ("", "configmaps", verb) in grants
    for resource in ("pods", "services"):
        assert {("", resource, v) for v in ("get", "list", "watch")} <= grants
        assert not {("", resource, v) for v in ("create", "update", "patch", "delete")} & grants
    assert ("", "pods/log", "get") in grants
    assert ("", "pods/portforward", "create") in grants
    assert not {g for g in grants if g[1] in ("secrets", "pods/exec", "pods/attach")}


# ---------------------------------------------------------------------------------------------
# The controller pod


@pytest.mark.parametrize("values", [{}, NON_DEFAULT_VALUES], ids=["defaults", "non-default"])
def test_controller_pod_meets_the_restricted_pod_security_level(helm: str, values: dict[str, Any]) -> None:
    pod = one(render(helm, values), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    container = pod["containers"][0]
    assert container["securityContext"] == RESTRICTED_CONTAINER
    volumes = {v["name"]: set(v) - {"name"} for v in pod["volumes"]}
    assert volumes == {"policy": {"configMap"}, "tmp": {"emptyDir"}}  # nothing from the host
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "health"
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_non_default_values_reach_the_pod(helm: str) -> None:
    docs = render(helm, NON_DEFAULT_VALUES)
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["spec"]["replicas"] == 2
    assert container["image"] == "registry.example.com/kubedask-controller:0.1.0-rc1"
    assert container["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["serviceAccountName"] == "dask-controller"
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["nodeSelector"] == NON_DEFAULT_VALUES["nodeSelector"]
    assert pod["tolerations"] == NON_DEFAULT_VALUES["tolerations"]
    assert pod["affinity"] == NON_DEFAULT_VALUES["affinity"]
    assert container["resources"] == NON_DEFAULT_VALUES["resources"]
    assert "--log-level=DEBUG" in container["args"] and "--resync-interval=120" in container["args"]
    assert {"name": "KUBEDASK_RESYNC_INTERVAL", "value": "120"} in container["env"]
    assert deployment["spec"]["template"]["metadata"]["labels"]["example.com/cost-centre"] == "42"
    assert deployment["spec"]["template"]["metadata"]["annotations"]["example.com/team"] == "data"
    sa = one(docs, "ServiceAccount")
    assert sa["metadata"]["annotations"] == {"iam.example.com/role": "x"}
    monitor = one(docs, "ServiceMonitor")
    service = one(docs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "metrics"


def test_image_digest_pins_the_image(helm: str) -> None:
    digest = "sha256:" + "a" * 64
    image = controller_container(render(helm, {"image": {"repository": "r/c", "digest": digest}}))["image"]
    assert image == f"r/c@{digest}"


def test_metrics_disabled_renders_no_service_or_port(helm: str) -> None:
    docs = render(helm, {"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}})
    assert find(docs, "Service") == [] and find(docs, "ServiceMonitor") == []
    assert [p["name"] for p in controller_container(docs)["ports"]] == ["health"]


# ---------------------------------------------------------------------------------------------
# The policy: what the chart renders is what the controller reads


def _tuples(value: Any) -> Any:
    """Lists as tuples, recursively: how the controller's Policy model holds them."""
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def test_policy_values_are_read_by_the_controller_as_given(helm: str, tmp_path: Path) -> None:
    from kubedask_controller.policy import load_policy

    config_map = one(render(helm, NON_DEFAULT_VALUES), "ConfigMap")
    (tmp_path / "policy.yaml").write_text(config_map["data"]["policy.yaml"])
    policy = load_policy(tmp_path / "policy.yaml", environ={})
    # Every key, the per-namespace overrides included, reaches the controller exactly as written.
    assert policy.model_dump(by_alias=True, exclude_unset=True) == _tuples(NON_DEFAULT_VALUES["policy"])
    team_a = policy.for_namespace("team-a")
    assert team_a.allowed_secrets == ("s3-creds", "db-read") and team_a.max_workers == 50
    assert team_a.profile == "restricted"  # not overridden: the global value
    assert policy.for_namespace("team-c") == policy.for_namespace("elsewhere")


def test_policy_values_schema_and_controller_know_the_same_keys() -> None:
    """values.yaml documents every policy key (with its default), the schema validates exactly those,
    and they are the controller's own: nothing an admin sets is lost on the way."""
    import typing

    from kubedask_controller.policy import Policy
    from kubedask_controller.policy.document import Control

    values_text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(values_text)["policy"]
    schema = json.loads((CHART / "values.schema.json").read_text())
    fields = schema["definitions"]["policyFields"]["properties"]
    controller_keys = {f.alias or name for name, f in Policy.model_fields.items()}
    assert set(values) == set(schema["properties"]["policy"]["properties"]) == controller_keys
    assert set(fields) == controller_keys - {"namespaces"}
    assert sorted(fields["podSecurityExemptions"]["items"]["enum"]) == sorted(typing.get_args(Control))
    # Each key comes with an explanation right above it.
    block = values_text[values_text.index("\npolicy:\n") :].split("\n\n")[0].splitlines()
    for i, line in enumerate(block):
        if re.match(r"^  [a-zA-Z]+:", line):
            assert block[i - 1].lstrip().startswith("#"), f"values.yaml: policy key without a comment: {line}"


def test_default_policy_is_the_controllers_default(helm: str, tmp_path: Path) -> None:
    from kubedask_controller.policy import Policy, load_policy

    for docs in (render(helm), load_dir(MANIFESTS), load_dir(MANIFESTS_ALL_NAMESPACES)):
        (tmp_path / "policy.yaml").write_text(one(docs, "ConfigMap")["data"]["policy.yaml"])
        assert load_policy(tmp_path / "policy.yaml", environ={}) == Policy()


def test_policy_change_rolls_the_controller(helm: str) -> None:
    def checksum(values: dict[str, Any]) -> str:
        return str(
            one(render(helm, values), "Deployment")["spec"]["template"]["metadata"]["annotations"][
                "checksum/policy"
            ]
        )

    assert checksum({}) == checksum({"logLevel": "debug"})
    assert checksum({}) != checksum({"policy": {"maxWorkers": 10}})


# ---------------------------------------------------------------------------------------------
# The plain manifests are the chart's defaults


@pytest.mark.parametrize(
    ("directory", "values"),
    [(MANIFESTS, {}), (MANIFESTS_ALL_NAMESPACES, {"allNamespaces": True})],
    ids=["namespaced", "all-namespaces"],
)
def test_manifests_are_what_the_chart_renders(helm: str, directory: Path, values: dict[str, Any]) -> None:
    chart = by_key(without_helm_bookkeeping(d) for d in render(helm, values))
    manifests = by_key(without_helm_bookkeeping(d) for d in load_dir(directory))
    namespace = manifests.pop(("Namespace", "", "kubedask"))  # Helm leaves namespaces to --create-namespace
    # Only the controller runs there (Dask pods run in the served namespaces).
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert sorted(manifests) == sorted(chart)
    for k in chart:
        assert manifests[k] == chart[k], f"{k} differs between {directory.relative_to(REPO)} and the chart"


def test_manifest_files_apply_in_dependency_order() -> None:
    for directory in (MANIFESTS, MANIFESTS_ALL_NAMESPACES):
        docs = load_dir(directory)
        assert docs[0]["kind"] == "Namespace", "kubectl apply -f applies files in name order"
        kinds = [d["kind"] for d in docs]
        assert kinds.index("ServiceAccount") < kinds.index("Deployment")
        assert kinds.index("Lease") < kinds.index("Deployment")
