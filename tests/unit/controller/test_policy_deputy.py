"""Deputy rules: what a pod creator has and a ConfigMap writer must not gain through the controller.
Each is refused under every profile (privileged too), named in the message, and allowed once the admin
allowlists it, globally or for one namespace."""

from __future__ import annotations

from typing import Any

import pytest
from kubedask_controller.policy import Policy, admit
from policy_requests import (
    NAMESPACE,
    TEMPLATE_KEYS,
    assert_refused,
    container,
    loosened,
    pod,
    refusal,
    request,
)

C0 = "spec.containers[0]"
SECRETS = "allowedSecrets"
VOLUMES = "allowedVolumeTypes"
CSI = {"driver": "secrets.example.com", "nodePublishSecretRef": {"name": "csi-creds"}}

# id -> (pod spec, field path, value as shown, policy key, the loosening)
CASES: dict[str, tuple[dict[str, Any], str, str, str, dict[str, Any]]] = {
    "envFrom-secretRef": (container(envFrom=[{"secretRef": {"name": "db-admin"}}]),
                          f"{C0}.envFrom[0].secretRef.name", '"db-admin"', SECRETS, {SECRETS: ["db-admin"]}),
    "env-secretKeyRef": (container(env=[{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "p"}}}]),
                         f"{C0}.env[0].valueFrom.secretKeyRef.name", '"db"', SECRETS, {SECRETS: ["db"]}),
    "init-envFrom": (pod(initContainers=[{"name": "i", "image": "x", "envFrom": [{"secretRef": {"name": "s"}}]}]),
                     "spec.initContainers[0].envFrom[0].secretRef.name", '"s"', SECRETS, {SECRETS: ["*"]}),
    "secret-volume": (pod(volumes=[{"name": "v", "secret": {"secretName": "s3-creds"}}]),
                      "spec.volumes[0].secret.secretName", '"s3-creds"', SECRETS, {SECRETS: ["s3-creds"]}),
    "projected-secret": (pod(volumes=[{"name": "v", "projected": {"sources": [{"secret": {"name": "s3"}}]}}]),
                         "spec.volumes[0].projected.sources[0].secret.name", '"s3"', SECRETS, {SECRETS: ["s3"]}),
    "imagePullSecrets": (pod(imagePullSecrets=[{"name": "registry"}]), "spec.imagePullSecrets[0].name",
                         '"registry"', SECRETS, {SECRETS: ["registry"]}),
    "csi-nodePublishSecretRef": (pod(volumes=[{"name": "v", "csi": CSI}]),
                                 "spec.volumes[0].csi.nodePublishSecretRef.name", '"csi-creds"', SECRETS,
                                 {SECRETS: ["csi-creds"], VOLUMES: ["csi"]}),
    "cephfs-secretRef": (pod(volumes=[{"name": "v", "cephfs": {"monitors": ["m"], "secretRef": {"name": "ceph"}}}]),
                         "spec.volumes[0].cephfs.secretRef.name", '"ceph"', SECRETS,
                         {SECRETS: ["ceph"], VOLUMES: ["cephfs"]}),
    "azureFile-secretName": (pod(volumes=[{"name": "v", "azureFile": {"secretName": "az", "shareName": "s"}}]),
                             "spec.volumes[0].azureFile.secretName", '"az"', SECRETS,
                             {SECRETS: ["az"], VOLUMES: ["azureFile"]}),
    "projected-token": (pod(volumes=[{"name": "v", "projected": {"sources": [
                            {"serviceAccountToken": {"path": "t", "audience": "vault"}}]}}]),
                        "spec.volumes[0].projected.sources[0].serviceAccountToken",
                        '{"audience": "vault", "path": "t"}',
                        "allowServiceAccountTokenProjection", {"allowServiceAccountTokenProjection": True}),
    "automountServiceAccountToken": (pod(automountServiceAccountToken=True), "spec.automountServiceAccountToken",
                                     "true", "allowServiceAccountToken", {"allowServiceAccountToken": True}),
    "serviceAccountName": (pod(serviceAccountName="admin"), "spec.serviceAccountName", '"admin"',
                           "allowedServiceAccounts", {"allowedServiceAccounts": ["default", "admin"]}),
    "serviceAccount": (pod(serviceAccount="admin"), "spec.serviceAccount", '"admin"', "allowedServiceAccounts",
                       {"allowedServiceAccounts": ["admin"]}),
    "pvc": (pod(volumes=[{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}]),
            "spec.volumes[0].persistentVolumeClaim", '"persistentVolumeClaim"', VOLUMES,
            {VOLUMES: ["persistentVolumeClaim"]}),
    "ephemeral": (pod(volumes=[{"name": "v", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]),
                  "spec.volumes[0].ephemeral", '"ephemeral"', VOLUMES, {VOLUMES: ["ephemeral"]}),
    "nfs": (pod(volumes=[{"name": "v", "nfs": {"server": "s", "path": "/"}}]), "spec.volumes[0].nfs", '"nfs"',
            VOLUMES, {VOLUMES: ["*"]}),
    "projected-clusterTrustBundle": (pod(volumes=[{"name": "v", "projected": {"sources": [
                                         {"clusterTrustBundle": {"name": "b", "path": "p"}}]}}]),
                                     "spec.volumes[0].projected.sources[0].clusterTrustBundle",
                                     '"clusterTrustBundle"', VOLUMES, {VOLUMES: ["clusterTrustBundle"]}),
    "nodeName": (pod(nodeName="control-plane"), "spec.nodeName", '"control-plane"', "allowNodeName",
                 {"allowNodeName": True}),
    "toleration": (pod(tolerations=[{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]),
                   "spec.tolerations[0].key", '"node-role.kubernetes.io/control-plane"', "allowedTolerations",
                   {"allowedTolerations": ["node-role.kubernetes.io/control-plane"]}),
    "toleration-of-everything": (pod(tolerations=[{"operator": "Exists"}]), "spec.tolerations[0]",
                                 '{"operator": "Exists"}', "allowedTolerations", {"allowedTolerations": ["*"]}),
    "priorityClassName": (pod(priorityClassName="system-cluster-critical"), "spec.priorityClassName",
                          '"system-cluster-critical"', "allowedPriorityClasses",
                          {"allowedPriorityClasses": ["system-cluster-critical"]}),
    "runtimeClassName": (pod(runtimeClassName="runc-unsafe"), "spec.runtimeClassName", '"runc-unsafe"',
                         "allowedRuntimeClasses", {"allowedRuntimeClasses": ["runc-unsafe"]}),
    "resourceClaims-pod": (pod(resourceClaims=[{"name": "gpu", "resourceClaimName": "gpu"}]),
                           "spec.resourceClaims", '[{"name": "gpu", "resourceClaimName": "gpu"}]',
                           "allowResourceClaims", {"allowResourceClaims": True}),
    "resourceClaims-container": (container(resources={"claims": [{"name": "gpu"}]}), f"{C0}.resources.claims",
                                 '[{"name": "gpu"}]', "allowResourceClaims", {"allowResourceClaims": True}),
}


@pytest.mark.parametrize("key", TEMPLATE_KEYS)
@pytest.mark.parametrize("case", CASES)
def test_deputy_rule_is_refused_under_every_profile_until_allowlisted(case: str, key: str) -> None:
    spec, path, value, policy_key, loosening = CASES[case]
    req = request(spec, key)
    assert_refused(req, key, path, value, policy_key)
    assert_refused(req, key, path, value, policy_key, Policy(profile="privileged"))
    for loose in loosened(Policy(profile="privileged"), **loosening):
        admit(req, loose, NAMESPACE)
    refusal(req, loosened(Policy(profile="privileged"), **loosening)[1], namespace="team-b")


def test_the_issue_reports_secret_leak_is_refused_in_the_derived_scheduler_too() -> None:
    # No scheduler-template: the scheduler is derived from the worker template, which is what is checked.
    message = refusal(request(container(envFrom=[{"secretRef": {"name": "db-admin"}}])))
    assert "worker-template: spec.containers[0].envFrom[0].secretRef.name" in message


def test_default_allowlists_admit_an_ordinary_dask_pod() -> None:
    admit(request(pod(
        serviceAccountName="default",
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                     {"key": "k8s.dask.org/dedicated", "operator": "Equal", "value": "worker"}],
        volumes=[{"name": "scratch", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "dask"}},
                 {"name": "info", "downwardAPI": {"items": []}},
                 {"name": "both", "projected": {"sources": [{"configMap": {"name": "c"}}, {"downwardAPI": {}}]}}],
    )), Policy(), NAMESPACE)


def test_an_allowed_service_account_does_not_bring_its_token_and_the_refusal_says_why() -> None:
    asks = request(pod(serviceAccountName="dask", automountServiceAccountToken=True))
    policy = Policy(allowedServiceAccounts=["default", "dask"])
    message = refusal(asks, policy)
    assert "spec.automountServiceAccountToken is true: its user could call the API server as that service " \
           "account. Remove it" in message
    assert "set true policy key allowServiceAccountToken (in the policy ConfigMap, Helm value " \
           "policy.allowServiceAccountToken; for namespace team-a only: " \
           "namespaces.team-a.allowServiceAccountToken)" in message
    admit(asks, policy.model_copy(update={"allow_service_account_token": True}), NAMESPACE)
    # Without a token the account is admitted as before; a template may also turn the token off itself.
    admit(request(pod(serviceAccountName="dask")), policy, NAMESPACE)
    admit(request(pod(automountServiceAccountToken=False)), Policy(), NAMESPACE)


def test_a_secret_allowlisted_for_one_namespace_is_that_one_only() -> None:
    policy = Policy.model_validate({"namespaces": {"team-a": {SECRETS: ["s3-creds"]}}})
    req = request(pod(volumes=[{"name": "v", "secret": {"secretName": "s3-creds"}}]))
    admit(req, policy, "team-a")
    refusal(req, policy, namespace="team-b")
    other = request(pod(volumes=[{"name": "v", "secret": {"secretName": "db-admin"}}]))
    refusal(other, policy, namespace="team-a")


def test_a_template_never_picks_another_namespace() -> None:
    from kubedask.spec import build_request_data, parse_request
    req = parse_request("analysis", build_request_data(worker_template={
        "metadata": {"namespace": "kube-system"}, "spec": pod()}))
    message = refusal(req, Policy(profile="privileged"))
    assert "worker-template: metadata.namespace is \"kube-system\"" in message
