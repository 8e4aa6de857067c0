"""Pod Security Standards, checked by the controller itself for every template it runs.

The namespaces a controller serves may carry no ``pod-security.kubernetes.io`` label, so the controller
cannot leave this to the API server. Allowed values follow the PSS page (kubernetes.io, "Pod Security
Standards"); each control can be exempted by name with ``podSecurityExemptions``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .document import Rules
from .findings import Refusal, containers, items, mapping, security_contexts, show, volume_sources

BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
RESTRICTED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes"})
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
RESTRICTED_VOLUME_TYPES = frozenset({
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
    "secret"})
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
SECCOMP_ANNOTATIONS = ("seccomp.security.alpha.kubernetes.io/pod", "container.seccomp.security.alpha.kubernetes.io/")

_UNSET_OR_FALSE = (None, False)


def check(spec: dict[str, Any], annotations: dict[str, str], rules: Rules) -> Iterator[Refusal]:
    """Every refusal of ``rules.profile`` (none under ``privileged``), minus the exempted controls."""
    if rules.profile == "privileged":
        return
    found = list(_baseline(spec, annotations, rules))
    if rules.profile == "restricted":
        found += _restricted(spec, rules)
    yield from (r for r in found if r.control is None or not rules.exempt(r.control))


def _refuse(path: str, value: Any, why: str, control: str) -> Refusal:
    return Refusal(path, value, why, "podSecurityExemptions", f"add {control!r} to", control)


def _baseline(spec: dict[str, Any], annotations: dict[str, str], rules: Rules) -> Iterator[Refusal]:
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field) not in _UNSET_OR_FALSE:
            yield _refuse(f"spec.{field}", spec[field], "sharing the node's namespaces is refused",
                          "hostNamespaces")
    for path, _type, source in volume_sources(spec):
        if _type == "hostPath":
            yield _refuse(path, source, "hostPath volumes give access to the node's files", "hostPath")
    for path, context in security_contexts(spec):
        host_process = mapping(context.get("windowsOptions")).get("hostProcess")
        if host_process not in _UNSET_OR_FALSE:
            yield _refuse(f"{path}.windowsOptions.hostProcess", host_process,
                          "Windows HostProcess containers run on the node", "hostProcess")
        apparmor = mapping(context.get("appArmorProfile")).get("type")
        if apparmor not in (None, "RuntimeDefault", "Localhost"):
            yield _refuse(f"{path}.appArmorProfile.type", apparmor,
                          "only RuntimeDefault or Localhost AppArmor profiles are allowed", "appArmor")
        selinux = mapping(context.get("seLinuxOptions"))
        if selinux.get("type") not in (None, *SELINUX_TYPES):
            yield _refuse(f"{path}.seLinuxOptions.type", selinux["type"],
                          f"SELinux type must be one of {', '.join(sorted(SELINUX_TYPES - {''}))}", "seLinux")
        for field in ("user", "role"):
            if selinux.get(field) not in (None, ""):
                yield _refuse(f"{path}.seLinuxOptions.{field}", selinux[field],
                              f"setting the SELinux {field} is refused", "seLinux")
        seccomp = mapping(context.get("seccompProfile")).get("type")
        if seccomp not in (None, "RuntimeDefault", "Localhost"):
            yield _refuse(f"{path}.seccompProfile.type", seccomp,
                          "only RuntimeDefault or Localhost seccomp profiles are allowed", "seccomp")
    for i, sysctl in enumerate(items(mapping(spec.get("securityContext")).get("sysctls"))):
        name = mapping(sysctl).get("name")
        if name not in SAFE_SYSCTLS and name not in rules.allowed_sysctls and "*" not in rules.allowed_sysctls:
            yield Refusal(f"spec.securityContext.sysctls[{i}].name", name,
                          "only namespaced, safe sysctls are allowed", "allowedSysctls", f"add {show(name)} to",
                          "sysctls")
    for path, container in containers(spec):
        context = mapping(container.get("securityContext"))
        if context.get("privileged") not in _UNSET_OR_FALSE:
            yield _refuse(f"{path}.securityContext.privileged", context["privileged"],
                          "privileged containers are refused", "privileged")
        if context.get("procMount") not in (None, "Default"):
            yield _refuse(f"{path}.securityContext.procMount", context["procMount"],
                          "only the Default /proc mount is allowed", "procMount")
        yield from _added_capabilities(path, context, BASELINE_CAPABILITIES, rules)
        for j, port in enumerate(items(container.get("ports"))):
            if mapping(port).get("hostPort") not in (None, 0):
                yield _refuse(f"{path}.ports[{j}].hostPort", port["hostPort"],
                              "ports on the node's address are refused", "hostPorts")
    for name, value in annotations.items():
        if name.startswith(APPARMOR_ANNOTATION) and value != "runtime/default" and not value.startswith(
                "localhost/"):
            yield _refuse(f"metadata.annotations[{name!r}]", value,
                          "only runtime/default or localhost/* AppArmor profiles are allowed", "appArmor")
        if name.startswith(SECCOMP_ANNOTATIONS) and value == "unconfined":
            yield _refuse(f"metadata.annotations[{name!r}]", value, "unconfined seccomp is refused", "seccomp")


def _added_capabilities(path: str, context: dict[str, Any], allowed: frozenset[str], rules: Rules
                        ) -> Iterator[Refusal]:
    for i, capability in enumerate(items(mapping(context.get("capabilities")).get("add"))):
        name = _capability(capability)
        if name in allowed or name in rules.allowed_capabilities or "*" in rules.allowed_capabilities:
            continue
        yield Refusal(f"{path}.securityContext.capabilities.add[{i}]", capability,
                      f"containers may add only {', '.join(sorted(allowed))}", "allowedCapabilities",
                      f"add {show(name)} to", "capabilities")


def _restricted(spec: dict[str, Any], rules: Rules) -> Iterator[Refusal]:
    for path, _type, _source in volume_sources(spec):
        if _type not in RESTRICTED_VOLUME_TYPES:
            yield _refuse(path, _type, "the restricted profile allows only "
                          f"{', '.join(sorted(RESTRICTED_VOLUME_TYPES))} volumes", "volumeTypes")
    pod = mapping(spec.get("securityContext"))
    listed = list(containers(spec))
    if pod.get("runAsNonRoot") is False:
        yield _refuse("spec.securityContext.runAsNonRoot", False, "containers must run as non-root",
                      "runAsNonRoot")
    if pod.get("runAsUser") == 0:
        yield _refuse("spec.securityContext.runAsUser", 0, "containers must not run as user 0", "runAsUser")
    seccomp = mapping(pod.get("seccompProfile")).get("type")
    for path, container in listed:
        context = mapping(container.get("securityContext"))
        where = f"{path}.securityContext"
        if context.get("allowPrivilegeEscalation") is not False:
            yield _refuse(f"{where}.allowPrivilegeEscalation", context.get("allowPrivilegeEscalation"),
                          "the restricted profile requires allowPrivilegeEscalation: false", "privilegeEscalation")
        non_root = context.get("runAsNonRoot")
        if non_root is False or (non_root is None and pod.get("runAsNonRoot") is not True):
            yield _refuse(f"{where}.runAsNonRoot", non_root, "the restricted profile requires runAsNonRoot: true "
                          "(on the pod or on every container)", "runAsNonRoot")
        if context.get("runAsUser") == 0:
            yield _refuse(f"{where}.runAsUser", 0, "containers must not run as user 0", "runAsUser")
        own = mapping(context.get("seccompProfile")).get("type")
        if own is None and seccomp not in ("RuntimeDefault", "Localhost"):
            yield _refuse(f"{where}.seccompProfile.type", own, "the restricted profile requires a "
                          "RuntimeDefault or Localhost seccomp profile (on the pod or every container)", "seccomp")
        drop = [_capability(c) for c in items(mapping(context.get("capabilities")).get("drop"))]
        if "ALL" not in drop:
            yield _refuse(f"{where}.capabilities.drop", drop or None,
                          "the restricted profile requires dropping ALL capabilities", "capabilities")
        # Capabilities outside the baseline set were reported by the baseline pass already.
        yield from (r for r in _added_capabilities(path, context, RESTRICTED_CAPABILITIES, rules)
                    if _capability(r.value) in BASELINE_CAPABILITIES)


def _capability(value: Any) -> str:
    return str(value).upper().removeprefix("CAP_")
