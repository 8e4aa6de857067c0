"""Pod Security Standards as the controller enforces them: every baseline control, in every template
and container list, refused by default, named in the message, and allowed once exempted."""

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
    security,
)

EXEMPT = "podSecurityExemptions"
C0 = "spec.containers[0]"

# id -> (pod spec, template annotations, field path, value as shown, policy key, the loosening)
BASELINE: dict[str, tuple[dict[str, Any], dict[str, str] | None, str, str, str, dict[str, Any]]] = {
    "hostProcess-pod": (pod(securityContext={"windowsOptions": {"hostProcess": True}}), None,
                        "spec.securityContext.windowsOptions.hostProcess", "true", EXEMPT,
                        {EXEMPT: ["hostProcess"]}),
    "hostProcess-container": (security(windowsOptions={"hostProcess": True}), None,
                              f"{C0}.securityContext.windowsOptions.hostProcess", "true", EXEMPT,
                              {EXEMPT: ["hostProcess"]}),
    "hostNetwork": (pod(hostNetwork=True), None, "spec.hostNetwork", "true", EXEMPT, {EXEMPT: ["hostNamespaces"]}),
    "hostPID": (pod(hostPID=True), None, "spec.hostPID", "true", EXEMPT, {EXEMPT: ["hostNamespaces"]}),
    "hostIPC": (pod(hostIPC=True), None, "spec.hostIPC", "true", EXEMPT, {EXEMPT: ["hostNamespaces"]}),
    "privileged": (security(privileged=True), None, f"{C0}.securityContext.privileged", "true", EXEMPT,
                   {EXEMPT: ["privileged"]}),
    "privileged-init": (pod(initContainers=[{"name": "i", "image": "x", "securityContext": {"privileged": True}}]),
                        None, "spec.initContainers[0].securityContext.privileged", "true", EXEMPT,
                        {EXEMPT: ["privileged"]}),
    "privileged-ephemeral": (pod(ephemeralContainers=[{"name": "e", "image": "x",
                                                       "securityContext": {"privileged": True}}]),
                             None, "spec.ephemeralContainers[0].securityContext.privileged", "true", EXEMPT,
                             {EXEMPT: ["privileged"]}),
    "capabilities": (security(capabilities={"add": ["SYS_ADMIN"]}), None,
                     f"{C0}.securityContext.capabilities.add[0]", '"SYS_ADMIN"', "allowedCapabilities",
                     {"allowedCapabilities": ["SYS_ADMIN"]}),
    "hostPath": (pod(volumes=[{"name": "root", "hostPath": {"path": "/"}}]), None, "spec.volumes[0].hostPath",
                 '{"path": "/"}', EXEMPT, {EXEMPT: ["hostPath"], "allowedVolumeTypes": ["emptyDir", "hostPath"]}),
    "hostPorts": (container(ports=[{"containerPort": 80, "hostPort": 80}]), None, f"{C0}.ports[0].hostPort", "80",
                  EXEMPT, {EXEMPT: ["hostPorts"]}),
    "appArmor-pod": (pod(securityContext={"appArmorProfile": {"type": "Unconfined"}}), None,
                     "spec.securityContext.appArmorProfile.type", '"Unconfined"', EXEMPT, {EXEMPT: ["appArmor"]}),
    "appArmor-container": (security(appArmorProfile={"type": "Unconfined"}), None,
                           f"{C0}.securityContext.appArmorProfile.type", '"Unconfined"', EXEMPT,
                           {EXEMPT: ["appArmor"]}),
    "appArmor-annotation": (pod(), {"container.apparmor.security.beta.kubernetes.io/w": "unconfined"},
                            "metadata.annotations['container.apparmor.security.beta.kubernetes.io/w']",
                            '"unconfined"', EXEMPT, {EXEMPT: ["appArmor"]}),
    "seLinux-type": (security(seLinuxOptions={"type": "spc_t"}), None, f"{C0}.securityContext.seLinuxOptions.type",
                     '"spc_t"', EXEMPT, {EXEMPT: ["seLinux"]}),
    "seLinux-user": (pod(securityContext={"seLinuxOptions": {"user": "system_u"}}), None,
                     "spec.securityContext.seLinuxOptions.user", '"system_u"', EXEMPT, {EXEMPT: ["seLinux"]}),
    "seLinux-role": (security(seLinuxOptions={"role": "sysadm_r"}), None, f"{C0}.securityContext.seLinuxOptions.role",
                     '"sysadm_r"', EXEMPT, {EXEMPT: ["seLinux"]}),
    "procMount": (security(procMount="Unmasked"), None, f"{C0}.securityContext.procMount", '"Unmasked"', EXEMPT,
                  {EXEMPT: ["procMount"]}),
    "seccomp-pod": (pod(securityContext={"seccompProfile": {"type": "Unconfined"}}), None,
                    "spec.securityContext.seccompProfile.type", '"Unconfined"', EXEMPT, {EXEMPT: ["seccomp"]}),
    "seccomp-container": (security(seccompProfile={"type": "Unconfined"}), None,
                          f"{C0}.securityContext.seccompProfile.type", '"Unconfined"', EXEMPT, {EXEMPT: ["seccomp"]}),
    "seccomp-annotation": (pod(), {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"},
                           "metadata.annotations['seccomp.security.alpha.kubernetes.io/pod']", '"unconfined"',
                           EXEMPT, {EXEMPT: ["seccomp"]}),
    "sysctls": (pod(securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}), None,
                "spec.securityContext.sysctls[0].name", '"kernel.msgmax"', "allowedSysctls",
                {"allowedSysctls": ["kernel.msgmax"]}),
}


@pytest.mark.parametrize("key", TEMPLATE_KEYS)
@pytest.mark.parametrize("case", BASELINE)
def test_baseline_control_is_refused_by_default_and_allowed_once_exempted(case: str, key: str) -> None:
    spec, annotations, path, value, policy_key, loosening = BASELINE[case]
    req = request(spec, key, annotations)
    assert_refused(req, key, path, value, policy_key)
    refusal(req, Policy(profile="restricted"))  # restricted is baseline and more
    for loose in loosened(None, **loosening):
        admit(req, loose, NAMESPACE)
    admitted_elsewhere = loosened(None, **loosening)[1]
    refusal(req, admitted_elsewhere, namespace="team-b")  # a namespace override is for that namespace only


def test_privileged_profile_is_an_explicit_admin_choice_that_skips_pod_security() -> None:
    req = request(pod(hostNetwork=True, securityContext={"seccompProfile": {"type": "Unconfined"}},
                      containers=[{"name": "w", "image": "x", "securityContext": {"privileged": True}}]))
    refusal(req, Policy())
    admit(req, Policy(profile="privileged"), NAMESPACE)


@pytest.mark.parametrize("spec", [
    security(capabilities={"add": ["NET_BIND_SERVICE", "CHOWN", "cap_kill"]}, privileged=False),
    pod(securityContext={"sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"}],
                         "seLinuxOptions": {"type": "container_t"}, "seccompProfile": {"type": "RuntimeDefault"},
                         "appArmorProfile": {"type": "Localhost", "localhostProfile": "p"}}),
    security(procMount="Default", seccompProfile={"type": "Localhost", "localhostProfile": "p"}),
    container(ports=[{"containerPort": 8786, "hostPort": 0}]),
    pod(hostNetwork=False, hostPID=False, hostIPC=False),
], ids=["baseline-capabilities", "safe-pod-values", "default-procmount", "no-host-port", "false-host-namespaces"])
def test_baseline_allows_what_pss_baseline_allows(spec: dict[str, Any]) -> None:
    admit(request(spec), Policy(), NAMESPACE)


def test_apparmor_annotation_may_name_the_runtime_default_or_a_local_profile() -> None:
    for value in ("runtime/default", "localhost/dask"):
        admit(request(pod(), annotations={"container.apparmor.security.beta.kubernetes.io/w": value}), Policy(),
              NAMESPACE)


def test_every_refusal_of_a_request_is_listed() -> None:
    message = refusal(request(pod(hostNetwork=True, hostPID=True, containers=[
        {"name": "w", "image": "x", "securityContext": {"privileged": True}}])))
    assert "spec.hostNetwork" in message and "spec.hostPID" in message
    assert "spec.containers[0].securityContext.privileged" in message


# --- restricted -------------------------------------------------------------------------------------

RESTRICTED = Policy(profile="restricted")

# id -> (pod spec, field path, value as shown, policy key, the loosening)
RESTRICTED_CASES: dict[str, tuple[dict[str, Any], str, str, str, dict[str, Any]]] = {
    "privilegeEscalation": (security(allowPrivilegeEscalation=True), f"{C0}.securityContext.allowPrivilegeEscalation",
                            "true", EXEMPT, {EXEMPT: ["privilegeEscalation"]}),
    "runAsNonRoot-pod": (pod(securityContext={"runAsNonRoot": False}), "spec.securityContext.runAsNonRoot", "false",
                         EXEMPT, {EXEMPT: ["runAsNonRoot"]}),
    "runAsNonRoot-container": (security(runAsNonRoot=False), f"{C0}.securityContext.runAsNonRoot", "false", EXEMPT,
                               {EXEMPT: ["runAsNonRoot"]}),
    "runAsUser-pod": (pod(securityContext={"runAsUser": 0}), "spec.securityContext.runAsUser", "0", EXEMPT,
                      {EXEMPT: ["runAsUser"]}),
    "runAsUser-container": (security(runAsUser=0), f"{C0}.securityContext.runAsUser", "0", EXEMPT,
                            {EXEMPT: ["runAsUser"]}),
    "capabilities-drop": (security(capabilities={"drop": ["NET_RAW"]}), f"{C0}.securityContext.capabilities.drop",
                          '["NET_RAW"]', EXEMPT, {EXEMPT: ["capabilities"]}),
    "capabilities-add": (security(capabilities={"add": ["CHOWN"], "drop": ["ALL"]}),
                         f"{C0}.securityContext.capabilities.add[0]", '"CHOWN"', "allowedCapabilities",
                         {"allowedCapabilities": ["CHOWN"]}),
    "volumeTypes": (pod(volumes=[{"name": "n", "nfs": {"server": "s", "path": "/"}}]), "spec.volumes[0].nfs",
                    '"nfs"', EXEMPT, {EXEMPT: ["volumeTypes"]}),
}


@pytest.mark.parametrize("key", TEMPLATE_KEYS)
@pytest.mark.parametrize("case", RESTRICTED_CASES)
def test_restricted_control_is_refused_and_allowed_once_exempted(case: str, key: str) -> None:
    spec, path, value, policy_key, loosening = RESTRICTED_CASES[case]
    base = RESTRICTED.model_copy(update={"allowed_volume_types": ("emptyDir", "nfs")})
    req = request(spec, key)
    assert_refused(req, key, path, value, policy_key, base)
    admit(req, base.model_copy(update={"profile": "baseline"}), NAMESPACE)  # restricted-only
    for loose in loosened(base, **loosening):
        admit(req, loose, NAMESPACE)


def test_restricted_fills_secure_values_where_a_template_is_silent() -> None:
    req = request(pod(initContainers=[{"name": "i", "image": "x"}]))
    admitted = admit(req, RESTRICTED, NAMESPACE)
    spec = admitted.worker_template.spec
    assert spec["securityContext"] == {"runAsNonRoot": True, "runAsUser": 1000,
                                       "seccompProfile": {"type": "RuntimeDefault"}}
    for group in ("containers", "initContainers"):
        assert spec[group][0]["securityContext"] == {"allowPrivilegeEscalation": False,
                                                     "capabilities": {"drop": ["ALL"]}}
    assert "securityContext" not in req.worker_template.spec  # the parsed request is left as it was
    assert admit(req, Policy(), NAMESPACE) == req  # baseline fills nothing


def test_restricted_keeps_what_a_template_says() -> None:
    req = request(pod(securityContext={"runAsUser": 2000, "seccompProfile": {"type": "Localhost",
                                                                            "localhostProfile": "p"}},
                      containers=[{"name": "w", "image": "x", "securityContext": {
                          "capabilities": {"add": ["NET_BIND_SERVICE"]}, "allowPrivilegeEscalation": False}}]))
    spec = admit(req, RESTRICTED, NAMESPACE).worker_template.spec
    assert spec["securityContext"]["runAsUser"] == 2000
    assert spec["securityContext"]["seccompProfile"]["type"] == "Localhost"
    assert spec["containers"][0]["securityContext"]["capabilities"] == {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}


def test_restricted_fills_every_template_and_leaves_exempted_controls_alone() -> None:
    req = request(pod(), "scheduler-template")
    admitted = admit(req, RESTRICTED, NAMESPACE)
    assert admitted.scheduler_template is not None
    assert admitted.scheduler_template.spec["securityContext"]["runAsNonRoot"] is True
    assert admitted.worker_template.spec["securityContext"]["runAsNonRoot"] is True
    root = RESTRICTED.model_copy(update={"pod_security_exemptions": ("runAsUser",)})
    assert "runAsUser" not in admit(req, root, NAMESPACE).worker_template.spec["securityContext"]
