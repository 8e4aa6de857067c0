"""The API calls a batch job adds (kube.Kube against kmock): a bounded log read, and deleting the finished
job's Service and PDB only if they are still the ones observed; the deletes are fenced by the lease."""

from __future__ import annotations

import pytest
from controller_fakes import FakeKube
from kmock import KubernetesEmulator, ResourceInfo
from kubedask_controller.fence import FencedApi, LostLease
from kubedask_controller.kube import MAX_LOG_BYTES, Kube
from kubernetes.client.exceptions import ApiException
from test_kube_faults import NS, kube, status

__all__ = ["kube"]  # the fixture, shared with test_kube_faults
LOG = f"/api/v1/namespaces/{NS}/pods/nightly-job/log"


async def test_the_job_log_is_read_as_text_bounded_and_from_its_tail(kube: Kube, kmock: KubernetesEmulator) -> None:
    kmock[f"get {LOG}"] << 200 << b"step 1\nstep 2\n1.0\n"
    assert await kube.read_pod_log(NS, "nightly-job", 20) == "step 1\nstep 2\n1.0\n"
    [sent] = list(kmock[f"get {LOG}"])
    assert sent.params["tailLines"] == "20" and sent.params["limitBytes"] == str(MAX_LOG_BYTES)


async def test_a_log_larger_than_the_bound_is_cut_and_bad_bytes_do_not_fail(kube: Kube,
                                                                            kmock: KubernetesEmulator) -> None:
    kmock[f"get {LOG}"] << 200 << (b"\xff" + b"x" * (2 * MAX_LOG_BYTES))
    text = await kube.read_pod_log(NS, "nightly-job", 20)
    assert len(text) == MAX_LOG_BYTES and text[0] == "\ufffd"


async def test_a_forbidden_log_read_reaches_the_caller(kube: Kube, kmock: KubernetesEmulator) -> None:
    message = 'pods "nightly-job" is forbidden: User cannot get resource "pods/log"'
    kmock[f"get {LOG}"] << 403 << status(403, "Forbidden", message)
    with pytest.raises(ApiException) as info:
        await kube.read_pod_log(NS, "nightly-job", 20)
    assert info.value.status == 403


async def test_service_and_pdb_deletes_carry_the_uid_and_a_gone_one_is_done(kube: Kube,
                                                                           kmock: KubernetesEmulator) -> None:
    service = f"/api/v1/namespaces/{NS}/services/nightly-scheduler"
    pdb = f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/nightly-scheduler"
    kmock.resources["v1/services"] = ResourceInfo(namespaced=True, kind="Service")
    await kube.create_service({"apiVersion": "v1", "kind": "Service",
                               "metadata": {"name": "nightly-scheduler", "namespace": NS}, "spec": {}})
    assert await kube.delete_service(NS, "nightly-scheduler", "svc-uid") is True
    [sent] = list(kmock[f"delete {service}"])
    assert sent.data["preconditions"] == {"uid": "svc-uid"}
    kmock[f"delete {pdb}"] << 409 << status(409, "Conflict", "Precondition failed: UID in precondition: pdb-uid")
    assert await kube.delete_pdb(NS, "nightly-scheduler", "pdb-uid") is False  # a newer one is not ours


async def test_the_jobs_deletes_are_fenced_and_its_log_read_is_not(fake_kube: FakeKube) -> None:
    fenced = FencedApi(fake_kube, lambda: False)
    fake_kube.logs["nightly-job"] = "1.0"
    assert await fenced.read_pod_log("ns", "nightly-job", 20) == "1.0"
    for write in (fenced.delete_service("ns", "s", "u"), fenced.delete_pdb("ns", "p", "u")):
        with pytest.raises(LostLease):
            await write
    assert fake_kube.writes == 0
