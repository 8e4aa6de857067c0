"""Red team: a user who holds only the kubedask user role asks the controller for everything a pod
creator could do. Every control of the policy is tried through the worker template and through the
scheduler template; each request ends Failed with a message naming the field and the policy key, a
Warning Event, and no pod. Then the admin allowlists exactly those requests for their namespaces
(restarting the controller with the new policy) and the same requests get their pods.

All requests are submitted at once, and the controller runs once per policy, to keep this fast.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from controller_harness import (
    REPO,
    SIMULATED_NODES_POLICY,
    SIMULATED_TEMPLATE,
    Cluster,
    running_controller,
    wait_for,
)
from kubedask.spec import build_request_configmap, build_request_data

C0 = "spec.containers[0]"
EXEMPT = "podSecurityExemptions"
#: Cluster objects an allowlisted request names must exist for the API server to take its pods.
REDTEAM_CLASS = "kubedask-redteam"
RUNNER_ACCOUNT = "dask-runner"
KWOK_NODE = "kwok-node-0"


def pod(**fields: Any) -> dict[str, Any]:
    spec = copy.deepcopy(SIMULATED_TEMPLATE["spec"])
    spec.update(fields)
    return spec


def container(**fields: Any) -> dict[str, Any]:
    spec = pod()
    spec["containers"][0].update(fields)
    return spec


def security(**context: Any) -> dict[str, Any]:
    return container(securityContext=context)


# name -> (pod spec, template metadata, field path named in the message, policy key named)
TEMPLATE_CASES: dict[str, tuple[dict[str, Any], dict[str, dict[str, str]] | None, str, str]] = {
    # Pod Security baseline
    "host-process": (pod(hostNetwork=True, securityContext={"windowsOptions": {"hostProcess": True}}), None,
                     "spec.securityContext.windowsOptions.hostProcess", EXEMPT),
    "host-network": (pod(hostNetwork=True), None, "spec.hostNetwork", EXEMPT),
    "host-pid": (pod(hostPID=True), None, "spec.hostPID", EXEMPT),
    "host-ipc": (pod(hostIPC=True), None, "spec.hostIPC", EXEMPT),
    "privileged": (security(privileged=True), None, f"{C0}.securityContext.privileged", EXEMPT),
    "privileged-init": (pod(initContainers=[{"name": "init", "image": "ghcr.io/dask/dask:latest",
                                             "securityContext": {"privileged": True}}]),
                        None, "spec.initContainers[0].securityContext.privileged", EXEMPT),
    "capabilities": (security(capabilities={"add": ["SYS_ADMIN"]}), None,
                     f"{C0}.securityContext.capabilities.add[0]", "allowedCapabilities"),
    "host-path": (pod(volumes=[{"name": "root", "hostPath": {"path": "/"}}]), None, "spec.volumes[0].hostPath",
                  EXEMPT),
    "host-port": (container(ports=[{"containerPort": 8786, "hostPort": 8786}]), None, f"{C0}.ports[0].hostPort",
                  EXEMPT),
    "apparmor": (security(appArmorProfile={"type": "Unconfined"}), None,
                 f"{C0}.securityContext.appArmorProfile.type", EXEMPT),
    "apparmor-annotation": (pod(), {"annotations": {
                                "container.apparmor.security.beta.kubernetes.io/dask-worker": "unconfined"}},
                            "metadata.annotations", EXEMPT),
    "selinux-type": (security(seLinuxOptions={"type": "spc_t"}), None, f"{C0}.securityContext.seLinuxOptions.type",
                     EXEMPT),
    "selinux-user": (pod(securityContext={"seLinuxOptions": {"user": "system_u"}}), None,
                     "spec.securityContext.seLinuxOptions.user", EXEMPT),
    "proc-mount": (pod(hostUsers=False, containers=[{**SIMULATED_TEMPLATE["spec"]["containers"][0],
                                                     "securityContext": {"procMount": "Unmasked"}}]), None,
                   f"{C0}.securityContext.procMount", EXEMPT),
    "seccomp": (pod(securityContext={"seccompProfile": {"type": "Unconfined"}}), None,
                "spec.securityContext.seccompProfile.type", EXEMPT),
    "sysctl": (pod(securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "65536"}]}), None,
               "spec.securityContext.sysctls[0].name", "allowedSysctls"),
    # Deputy rules
    "env-from-secret": (container(envFrom=[{"secretRef": {"name": "db-admin"}}]), None,
                        f"{C0}.envFrom[0].secretRef.name", "allowedSecrets"),
    "env-secret-key": (container(env=[{"name": "PASSWORD", "valueFrom": {
                           "secretKeyRef": {"name": "db-admin", "key": "password"}}}]), None,
                       f"{C0}.env[0].valueFrom.secretKeyRef.name", "allowedSecrets"),
    "secret-volume": (pod(volumes=[{"name": "creds", "secret": {"secretName": "db-admin"}}]), None,
                      "spec.volumes[0].secret.secretName", "allowedSecrets"),
    "projected-secret": (pod(volumes=[{"name": "creds", "projected": {"sources": [{"secret": {"name": "db-admin"}}]}}]),
                         None, "spec.volumes[0].projected.sources[0].secret.name", "allowedSecrets"),
    "pull-secret": (pod(imagePullSecrets=[{"name": "registry-creds"}]), None, "spec.imagePullSecrets[0].name",
                    "allowedSecrets"),
    "csi-secret": (pod(volumes=[{"name": "v", "csi": {"driver": "secrets.example.com",
                                                      "nodePublishSecretRef": {"name": "db-admin"}}}]), None,
                   "spec.volumes[0].csi.nodePublishSecretRef.name", "allowedSecrets"),
    "projected-token": (pod(volumes=[{"name": "t", "projected": {"sources": [
                            {"serviceAccountToken": {"path": "token", "audience": "vault"}}]}}]), None,
                        "spec.volumes[0].projected.sources[0].serviceAccountToken",
                        "allowServiceAccountTokenProjection"),
    "service-account": (pod(serviceAccountName=RUNNER_ACCOUNT), None, "spec.serviceAccountName",
                        "allowedServiceAccounts"),
    "pvc": (pod(volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "someone-elses"}}]), None,
            "spec.volumes[0].persistentVolumeClaim", "allowedVolumeTypes"),
    "nfs": (pod(volumes=[{"name": "data", "nfs": {"server": "10.0.0.1", "path": "/"}}]), None,
            "spec.volumes[0].nfs", "allowedVolumeTypes"),
    "node-name": (pod(nodeName=KWOK_NODE), None, "spec.nodeName", "allowNodeName"),
    "toleration": (pod(tolerations=[*SIMULATED_TEMPLATE["spec"]["tolerations"],
                                    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]),
                   None, "spec.tolerations[1].key", "allowedTolerations"),
    "tolerate-all": (pod(tolerations=[{"operator": "Exists"}]), None, "spec.tolerations[0]", "allowedTolerations"),
    "priority-class": (pod(priorityClassName=REDTEAM_CLASS), None, "spec.priorityClassName",
                       "allowedPriorityClasses"),
    "runtime-class": (pod(runtimeClassName=REDTEAM_CLASS), None, "spec.runtimeClassName", "allowedRuntimeClasses"),
    "resource-claim": (pod(resourceClaims=[{"name": "gpu", "resourceClaimName": "gpu"}]), None,
                       "spec.resourceClaims", "allowResourceClaims"),
    # What webhooks and agents act on: Vault injects secrets, Azure Workload Identity a cloud token.
    "vault-annotation": (pod(), {"annotations": {"vault.hashicorp.com/agent-inject": "true",
                                                 "vault.hashicorp.com/role": "db-admin"}},
                         "metadata.annotations['vault.hashicorp.com/agent-inject']", "allowedPodAnnotations"),
    "identity-label": (pod(), {"labels": {"azure.workload.identity/use": "true"}},
                       "metadata.labels['azure.workload.identity/use']", "allowedPodLabels"),
    # What selects pods: another app's Service would send its traffic to a pod labelled like its own, and a
    # NetworkPolicy letting the frontend in would let this pod in too.
    "service-selector-label": (pod(), {"labels": {"run": "payments"}}, "metadata.labels['run']", "allowedPodLabels"),
    "network-policy-label": (pod(), {"labels": {"role": "frontend"}}, "metadata.labels['role']", "allowedPodLabels"),
}

# Requests refused for what they ask of the cluster as a whole: name -> (data, field named, key named)
REQUEST_CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    "node-port": ({"scheduler_service_type": "NodePort"}, "scheduler-service-type", "allowedServiceTypes"),
    "too-many-workers": ({"workers": 3}, "workers", "maxWorkers"),
    "fast-adapt": ({"adapt": {"minimum": 1, "maximum": 1, "interval": 0.5}}, "adapt.interval", "minAdaptInterval"),
}

# The restricted profile's own controls, tried in a namespace whose admin chose restricted.
RESTRICTED_CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    "escalation": (security(allowPrivilegeEscalation=True), f"{C0}.securityContext.allowPrivilegeEscalation", EXEMPT),
    "root-user": (security(runAsUser=0), f"{C0}.securityContext.runAsUser", EXEMPT),
    "root-allowed": (pod(securityContext={"runAsNonRoot": False}), "spec.securityContext.runAsNonRoot", EXEMPT),
    "keep-capabilities": (security(capabilities={"drop": ["NET_RAW"]}), f"{C0}.securityContext.capabilities.drop",
                          EXEMPT),
    "nfs-restricted": (pod(volumes=[{"name": "d", "nfs": {"server": "10.0.0.1", "path": "/"}}]), "spec.volumes[0].nfs",
                       EXEMPT),
}

#: What the admin of this test cluster allows everywhere (the KWOK taint, see the harness), and the caps
#: the namespace-cap cases run into.
BEFORE: dict[str, Any] = {**SIMULATED_NODES_POLICY, "maxWorkers": 2}


def after_policy(ns: dict[str, str]) -> dict[str, Any]:
    """The admin's answer: exactly what the red team asked for, for the namespaces that asked."""
    return {**BEFORE, "namespaces": {
        ns["main"]: {
            EXEMPT: ["hostProcess", "hostNamespaces", "privileged", "hostPath", "hostPorts", "appArmor", "seLinux",
                     "procMount", "seccomp"],
            "allowedCapabilities": ["SYS_ADMIN"], "allowedSysctls": ["kernel.msgmax"],
            "allowedSecrets": ["db-admin", "registry-creds"], "allowServiceAccountTokenProjection": True,
            "allowedServiceAccounts": ["default", RUNNER_ACCOUNT],
            "allowedVolumeTypes": ["emptyDir", "configMap", "downwardAPI", "hostPath", "csi", "persistentVolumeClaim",
                                   "nfs"],
            "allowNodeName": True, "allowedTolerations": ["*"], "allowedPriorityClasses": [REDTEAM_CLASS],
            "allowedRuntimeClasses": [REDTEAM_CLASS], "allowResourceClaims": True,
            "allowedServiceTypes": ["ClusterIP", "NodePort"], "maxWorkers": 3, "minAdaptInterval": 0.5,
            "allowedPodAnnotations": ["vault.hashicorp.com/*"],
            "allowedPodLabels": ["*", "azure.workload.identity/use"],
            # The red team holds more clusters than the default 50 a namespace may have.
            "maxClustersPerNamespace": 100},
        ns["restricted"]: {
            "profile": "restricted", "allowedVolumeTypes": ["emptyDir", "nfs"],
            EXEMPT: ["privilegeEscalation", "runAsUser", "runAsNonRoot", "capabilities", "volumeTypes"]},
        ns["clusters"]: {"maxClustersPerNamespace": 2},
        ns["workers"]: {"maxWorkersPerNamespace": 2},
    }}


def before_policy(ns: dict[str, str]) -> dict[str, Any]:
    return {**BEFORE, "namespaces": {
        ns["restricted"]: {"profile": "restricted", "allowedVolumeTypes": ["emptyDir", "nfs"]},
        ns["clusters"]: {"maxClustersPerNamespace": 1},
        ns["workers"]: {"maxWorkersPerNamespace": 1},
    }}


@pytest.fixture
def namespaces(namespace: str, kubectl: Callable[..., str]) -> Iterator[dict[str, str]]:
    """The red team's namespace and three more, for the restricted profile and the namespace caps."""
    extra = {role: f"redteam-{role}-{uuid.uuid4().hex[:5]}" for role in ("restricted", "clusters", "workers")}
    for name in extra.values():
        kubectl("create", "namespace", name)
    yield {"main": namespace, **extra}
    for name in extra.values():
        kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture
def user_role(kubectl: Callable[..., str]) -> Iterator[str]:
    """manifests/user-role.yaml's ClusterRole, under a name of its own (an installed chart may own the
    original name)."""
    role = yaml.safe_load((REPO / "manifests" / "user-role.yaml").read_text())
    role["metadata"] = {"name": f"kubedask-user-redteam-{uuid.uuid4().hex[:5]}"}
    kubectl("apply", "-f", "-", input=yaml.safe_dump(role))
    yield role["metadata"]["name"]
    kubectl("delete", "clusterrole", role["metadata"]["name"], "--ignore-not-found", check=False)


@pytest.fixture
def cluster_objects(kubectl: Callable[..., str], namespaces: dict[str, str]) -> Iterator[None]:
    """What the allowlisted requests name: a service account, a priority class, a runtime class."""
    kubectl("create", "serviceaccount", "-n", namespaces["main"], RUNNER_ACCOUNT)
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all([
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": REDTEAM_CLASS},
         "value": 1000},
        {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": REDTEAM_CLASS},
         "handler": "runc"},
    ]))
    yield
    for kind in ("priorityclass", "runtimeclass"):
        kubectl("delete", kind, REDTEAM_CLASS, "--ignore-not-found", check=False)


def user_api(kubectl: Callable[..., str], user_kubeconfig: Callable[[str, str], str], namespace: str,
             role: str) -> kubernetes.client.CoreV1Api:
    """The CoreV1 API as ServiceAccount mallory, bound in ``namespace`` to the user role and nothing else."""
    path = user_kubeconfig(namespace, "mallory")
    kubectl("create", "rolebinding", "-n", namespace, "dask-users", f"--clusterrole={role}",
            f"--serviceaccount={namespace}:mallory")
    for verb in ("create pods", "get secrets", "create serviceaccounts/token"):
        answer = kubectl("auth", "can-i", *verb.split(), "-n", namespace, kubeconfig_path=path, check=False)
        assert answer.strip() == "no", f"mallory can {verb}: the red team must hold only the user role"
    return kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(config_file=path))


def submit(core: kubernetes.client.CoreV1Api, namespace: str, name: str, **kwargs: Any) -> None:
    kwargs.setdefault("worker_template", SIMULATED_TEMPLATE)
    kwargs.setdefault("workers", 1)
    core.create_namespaced_config_map(namespace, build_request_configmap(name, namespace, build_request_data(**kwargs)))


def template_requests() -> Iterator[tuple[str, str, dict[str, Any], str, str]]:
    """(request name, template key, request kwargs, field path, policy key) for both templates."""
    for case, (spec, metadata, path, key) in TEMPLATE_CASES.items():
        template: dict[str, Any] = {"kind": "Pod", "spec": spec}
        if metadata:
            template["metadata"] = metadata
        yield f"{case}-w", "worker-template", {"worker_template": template}, path, key
        yield f"{case}-s", "scheduler-template", {"scheduler_template": template}, path, key


def assert_refused(cluster: Cluster, name: str, where: str, path: str, key: str) -> None:
    status = cluster.wait_phase(name, "Failed", timeout=120)
    # The first refusal is spelled out in full, further ones briefly ("TEMPLATE: PATH is VALUE (policy key K)").
    assert status.message.startswith("policy violation in ") and f"{where}: {path}" in status.message, (
        name, status.message)
    assert f"policy key {key}" in status.message and f"namespaces.{cluster.namespace}.{key}" in status.message, (
        name, status.message)
    events = wait_for(f"a Warning event on {name}", lambda: [
        e for e in cluster.events(name) if e.type == "Warning" and path in (e.message or "")])
    assert key in events[0].message
    assert cluster.pods(name, include_deleting=True) == [], f"{name} got pods although refused"


def assert_admitted(cluster: Cluster, name: str, component: str | None) -> None:
    wait_for(f"a {component or 'Dask'} pod for {name}", lambda: cluster.pods(name, component), timeout=120)
    # The status the first controller wrote is replaced on this controller's next pass.
    wait_for(f"{name} to leave phase Failed", lambda: (s := cluster.status(name)) and s.phase != "Failed")


def test_every_control_is_refused_for_a_user_and_allowed_by_the_admin_per_namespace(
        kubeconfig: str, namespaces: dict[str, str], api: Any, tmp_path: Path, kubectl: Callable[..., str],
        user_kubeconfig: Callable[[str, str], str], user_role: str, cluster_objects: None) -> None:
    core = {role: user_api(kubectl, user_kubeconfig, ns, user_role) for role, ns in namespaces.items()}
    clusters = {role: Cluster(api, ns) for role, ns in namespaces.items()}
    main, restricted = namespaces["main"], namespaces["restricted"]
    refused: list[tuple[Cluster, str, str, str, str, str | None]] = []  # cluster, name, where, path, key, component
    for name, where, kwargs, path, key in template_requests():
        submit(core["main"], main, name, **kwargs)
        # A worker template's scheduler is derived from it: whichever pod comes first shows it was taken.
        refused.append((clusters["main"], name, where, path, key, "scheduler" if name.endswith("-s") else None))
    for name, (kwargs, path, key) in REQUEST_CASES.items():
        submit(core["main"], main, name, **kwargs)
        refused.append((clusters["main"], name, path.split(".")[0], path, key, "scheduler"))
    for case, (spec, path, key) in RESTRICTED_CASES.items():
        for suffix, where in (("w", "worker-template"), ("s", "scheduler-template")):
            submit(core["restricted"], restricted, f"{case}-{suffix}", **{where.replace("-", "_"): {"spec": spec}})
            refused.append((clusters["restricted"], f"{case}-{suffix}", where, path, key,
                            "scheduler" if suffix == "s" else None))

    before = tmp_path / "before"
    before.mkdir()
    for _ in running_controller(kubeconfig, list(namespaces.values()), before, policy=before_policy(namespaces)):
        # The namespace caps: the older request is admitted, the newer one is refused.
        submit(core["clusters"], namespaces["clusters"], "first")
        submit(core["workers"], namespaces["workers"], "first")
        for role in ("clusters", "workers"):
            clusters[role].wait_phase("first", "Running", timeout=120)
            submit(core[role], namespaces[role], "second")
        refused.append((clusters["clusters"], "second", "metadata.name", "the number of clusters",
                        "maxClustersPerNamespace", "scheduler"))
        refused.append((clusters["workers"], "second", "workers", "workers is 1", "maxWorkersPerNamespace",
                        "scheduler"))
        for cluster, name, where, path, key, _ in refused:
            if path == "the number of clusters" or path == "workers is 1":
                status = cluster.wait_phase(name, "Failed", timeout=120)
                assert f"policy key {key}" in status.message, (name, status.message)
                assert cluster.pods(name, include_deleting=True) == []
            else:
                assert_refused(cluster, name, where, path, key)

    after = tmp_path / "after"
    after.mkdir()
    for _ in running_controller(kubeconfig, list(namespaces.values()), after, policy=after_policy(namespaces)):
        for cluster, name, _where, _path, _key, component in refused:
            assert_admitted(cluster, name, component)
