"""The deputy policy: what a request may ask the controller to create."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from controller_fakes import request_data
from kubedask.spec import parse_request
from kubedask_controller.policy import Policy, PolicyViolation, check_request, load_policy


def with_spec(**pod: Any) -> Any:
    spec = {"containers": [{"name": "w", "image": "img"}], **pod}
    return parse_request("analysis", request_data(worker_template={"spec": spec}))


def container(**fields: Any) -> Any:
    return with_spec(containers=[{"name": "w", "image": "img", **fields}])


@pytest.mark.parametrize(("request_", "expected"), [
    (container(securityContext={"privileged": True}), "privileged: true"),
    (with_spec(hostNetwork=True), "spec.hostNetwork"),
    (with_spec(hostPID=True), "spec.hostPID"),
    (with_spec(hostIPC=True), "spec.hostIPC"),
    (with_spec(volumes=[{"name": "root", "hostPath": {"path": "/"}}]), "hostPath volume 'root'"),
    (container(securityContext={"capabilities": {"add": ["SYS_ADMIN"]}}), "adding capabilities SYS_ADMIN"),
    (with_spec(serviceAccountName="admin"), "serviceAccountName 'admin'"),
    (container(ports=[{"containerPort": 80, "hostPort": 80}]), "hostPort 80"),
    (with_spec(initContainers=[{"name": "i", "image": "img", "securityContext": {"privileged": True}}]),
     "initContainers[0]"),
])
def test_default_policy_refuses_dangerous_requests(request_: Any, expected: str) -> None:
    with pytest.raises(PolicyViolation) as err:
        check_request(request_, Policy())
    assert "policy violation in 'worker-template'" in str(err.value)
    assert expected in str(err.value)


def test_namespace_in_template_is_always_refused() -> None:
    request = parse_request("analysis", request_data(worker_template={
        "metadata": {"namespace": "kube-system"}, "spec": {"containers": [{"name": "w", "image": "i"}]}}))
    with pytest.raises(PolicyViolation, match=r"metadata\.namespace"):
        check_request(request, Policy(allow_privileged=True, allow_host_namespaces=True))


def test_scheduler_template_is_checked_too() -> None:
    request = parse_request("analysis", request_data(scheduler_template={
        "containers": [{"name": "s", "image": "i", "securityContext": {"privileged": True}}]}))
    with pytest.raises(PolicyViolation, match="'scheduler-template'"):
        check_request(request, Policy())


def test_ordinary_dask_request_is_allowed() -> None:
    check_request(parse_request("analysis", request_data()), Policy())
    check_request(with_spec(serviceAccountName="default",
                            securityContext={"runAsNonRoot": True}), Policy())


def test_worker_limit() -> None:
    with pytest.raises(PolicyViolation, match="at most 10 per cluster"):
        check_request(parse_request("a", request_data(workers=11)), Policy(max_workers=10))
    with pytest.raises(PolicyViolation, match="adapt maximum"):
        request = parse_request("a", request_data(workers=1, adapt={"maximum": 50}))
        check_request(request, Policy(max_workers=10))


def test_admins_loosen_the_policy_with_a_file_and_env(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("allowPrivileged: true\nallowedServiceAccounts: [default, dask]\nmaxWorkers: 5\n")
    policy = load_policy(path, environ={"KUBEDASK_POLICY_ALLOWED_CAPABILITIES": "NET_ADMIN, SYS_PTRACE",
                                        "KUBEDASK_POLICY_MAX_WORKERS": "7"})
    assert policy.allow_privileged and policy.max_workers == 7
    assert policy.allowed_service_accounts == ("default", "dask")
    assert policy.allowed_capabilities == ("NET_ADMIN", "SYS_PTRACE")
    check_request(container(securityContext={"privileged": True,
                                             "capabilities": {"add": ["NET_ADMIN"]}}), policy)
    check_request(with_spec(serviceAccountName="dask"), policy)


def test_bad_policy_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("allowEverything: true\n")
    with pytest.raises(ValueError, match="invalid policy"):
        load_policy(path, environ={})
