"""Every object a request owns is identified by its owner's uid and repaired on its own watch event; a name
held by a foreign object fails the request visibly (never adopted); safe live changes are applied, the
others are reported with what to do, and the status never names a spec that was not applied."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from controller_fakes import WORKER_TEMPLATE, FakeKube, configmap, request_data
from kubedask.spec import fingerprint, parse_status
from kubedask_controller.driver import RequestDriver
from kubedask_controller.policy import Policy
from test_driver import last_status, new_controller, new_driver

FOREIGN_MESSAGE = "Service analysis-scheduler exists and is not owned by this request; delete or rename it"


def foreign(kind: str, **metadata: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": "analysis-scheduler", "namespace": "ns", "uid": "someone-else",
                                       **metadata}, "spec": {"type": "ClusterIP"}}


@pytest.mark.looptime
@pytest.mark.parametrize("kind", ["services", "pdbs", "scheduler pod", "worker pod"])
async def test_a_deleted_owned_object_is_back_on_its_watch_event_not_at_the_resync(
        fake_kube: FakeKube, kind: str) -> None:
    controller = new_controller(fake_kube)
    controller.on_request_event("ADDED", configmap(request_data(workers=2)))
    await asyncio.sleep(10)  # converged and settled: the next timed pass is the resync, 300 s away
    fake_kube.run_all()
    if kind in ("services", "pdbs"):
        gone = getattr(fake_kube, kind).pop("analysis-scheduler")
        controller.on_owned_event("DELETED", gone)
    else:
        name = "analysis-scheduler" if kind == "scheduler pod" else fake_kube.workers()[0]
        controller.on_pod_event("DELETED", fake_kube.pods.pop(name))
    await asyncio.sleep(1)
    assert "analysis-scheduler" in fake_kube.services and "analysis-scheduler" in fake_kube.pdbs
    assert "analysis-scheduler" in fake_kube.pods and len(fake_kube.workers()) == 2
    await controller.stop()


async def test_a_foreign_service_under_the_name_fails_the_request_and_is_never_adopted(fake_kube: FakeKube) -> None:
    fake_kube.services["analysis-scheduler"] = foreign("Service")
    driver = new_driver(fake_kube, configmap(request_data(workers=2)))
    delay = await driver.reconcile_once()
    status = last_status(fake_kube)
    assert (status.phase, status.message) == ("Failed", FOREIGN_MESSAGE)
    assert status.condition("NamesAvailable").reason == "NameTaken"
    assert ("NameTaken", FOREIGN_MESSAGE, "Warning") in fake_kube.events
    assert fake_kube.pods == {} and fake_kube.pdbs == {}  # nothing created beside a foreign object
    assert delay is not None and delay <= 10  # looked at again soon: a foreign object sends no watch events

    del fake_kube.services["analysis-scheduler"]  # the user deletes or renames it: the request recovers
    await driver.reconcile_once()
    assert fake_kube.services["analysis-scheduler"]["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert last_status(fake_kube).phase == "Pending" and len(fake_kube.workers()) == 2


async def test_a_foreign_pod_under_the_scheduler_name_fails_the_request(fake_kube: FakeKube) -> None:
    fake_kube.pods["analysis-scheduler"] = {**foreign("Pod", labels={}), "spec": {}}  # the LIST never shows it
    driver = new_driver(fake_kube, configmap(request_data(workers=1)))
    await driver.reconcile_once()
    status = last_status(fake_kube)
    assert status.phase == "Failed"
    assert status.message == "Pod analysis-scheduler exists and is not owned by this request; delete or rename it"


async def test_workers_sent_beside_a_taken_scheduler_name_are_deleted_and_not_sent_again(
        fake_kube: FakeKube) -> None:
    fake_kube.pods["analysis-scheduler"] = {**foreign("Pod", labels={}), "spec": {}}  # the LIST never shows it

    def workers() -> int:
        return sum(p["metadata"]["labels"].get("dask.org/component") == "worker" for p in fake_kube.pods.values())

    driver = new_driver(fake_kube, configmap(request_data(workers=2)))
    await driver.reconcile_once()
    assert last_status(fake_kube).phase == "Failed"
    assert workers() == 0  # sent beside the scheduler, deleted again: it cannot be created
    writes = fake_kube.writes
    await driver.reconcile_once()  # the retry: only the scheduler is tried, no round of workers in vain
    assert workers() == 0 and fake_kube.writes == writes + 1

    del fake_kube.pods["analysis-scheduler"]  # the user removes it: scheduler first, then workers as usual
    await driver.reconcile_once()
    assert fake_kube.pods["analysis-scheduler"]["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert workers() == 2 and last_status(fake_kube).phase == "Pending"


async def test_objects_of_an_earlier_request_of_the_same_name_are_waited_for(fake_kube: FakeKube) -> None:
    fake_kube.services["analysis-scheduler"] = foreign("Service", ownerReferences=[
        {"kind": "ConfigMap", "name": "analysis", "uid": "uid-0"}])
    driver = new_driver(fake_kube, configmap(request_data(workers=1)))
    await driver.reconcile_once()
    status = last_status(fake_kube)
    assert status.phase == "Pending" and "garbage collector" in status.message
    assert fake_kube.pods == {}


def service_policy() -> Policy:
    return Policy.model_validate({"allowedServiceTypes": ["ClusterIP", "NodePort"]})


async def test_a_changed_service_type_patches_the_service_and_shows_the_external_address(fake_kube: FakeKube) -> None:
    driver = RequestDriver(new_controller(fake_kube, policy=service_policy()), configmap(request_data(workers=1)))
    await driver.reconcile_once()
    fake_kube.run_all()
    await driver.reconcile_once()
    assert last_status(fake_kube).external_address is None

    changed = configmap(request_data(workers=1, scheduler_service_type="NodePort"))
    driver.update(changed)
    await driver.reconcile_once()
    assert fake_kube.service_patches == [{"spec": {"type": "NodePort"}}]
    assert "ServiceUpdated" in fake_kube.reasons()
    # The API server allocates the node port; the next pass (the Service's watch event) reads it.
    fake_kube.services["analysis-scheduler"]["spec"]["ports"][0]["nodePort"] = 30786
    fake_kube.pods["analysis-scheduler"]["status"]["hostIP"] = "192.168.1.5"
    await driver.reconcile_once()
    status = last_status(fake_kube)
    assert status.external_address == "tcp://192.168.1.5:30786"
    assert status.observed_spec == fingerprint(changed["data"])
    await driver.reconcile_once()
    assert len(fake_kube.service_patches) == 1


async def test_a_changed_scheduler_template_never_kills_the_running_scheduler(fake_kube: FakeKube) -> None:
    template = {"containers": [{"name": "s", "image": "ghcr.io/dask/dask:latest", "args": ["dask", "scheduler"]}]}
    first = configmap(request_data(workers=1, scheduler_template=template))
    driver = new_driver(fake_kube, first)
    await driver.reconcile_once()
    fake_kube.run_all()
    await driver.reconcile_once()
    scheduler_uid = fake_kube.pods["analysis-scheduler"]["metadata"]["uid"]
    assert last_status(fake_kube).condition("SchedulerUpToDate") is None

    changed_template = copy.deepcopy(template)
    changed_template["containers"][0]["image"] = "ghcr.io/dask/dask:2026.1.0"
    changed = configmap(request_data(workers=1, scheduler_template=changed_template))
    driver.update(changed)
    await driver.reconcile_once()
    assert fake_kube.pods["analysis-scheduler"]["metadata"]["uid"] == scheduler_uid  # still running
    status = last_status(fake_kube)
    condition = status.condition("SchedulerUpToDate")
    assert (condition.status, condition.reason) == ("False", "RestartNeeded")
    assert "kubectl delete pod analysis-scheduler" in condition.message and "restart" in status.message
    assert condition.message.startswith("the scheduler template changed")
    assert status.phase == "Running"
    assert status.observed_spec == fingerprint(first["data"])  # the spec it runs, not the one it did not apply

    del fake_kube.pods["analysis-scheduler"]  # the user restarts it, as the status says
    await driver.reconcile_once()
    fake_kube.run_all()
    await driver.reconcile_once()
    status = last_status(fake_kube)
    assert status.condition("SchedulerUpToDate") is None and status.observed_spec == fingerprint(changed["data"])
    image = fake_kube.pods["analysis-scheduler"]["spec"]["containers"][0]["image"]
    assert image == "ghcr.io/dask/dask:2026.1.0"


async def test_a_scale_change_alone_never_asks_for_a_scheduler_restart(fake_kube: FakeKube) -> None:
    driver = new_driver(fake_kube, configmap(request_data(workers=1)))
    await driver.reconcile_once()
    fake_kube.run_all()
    driver.update(configmap(request_data(workers=3)))
    await driver.reconcile_once()
    status = parse_status(fake_kube.configmap_patches[-1]["metadata"]["annotations"])
    assert status is not None and status.condition("SchedulerUpToDate") is None


async def test_a_changed_worker_template_asks_for_a_restart_of_a_scheduler_derived_from_it(
        fake_kube: FakeKube) -> None:
    driver = new_driver(fake_kube, configmap(request_data(workers=1)))
    await driver.reconcile_once()
    template: dict[str, Any] = copy.deepcopy(WORKER_TEMPLATE)
    template["spec"]["containers"][0]["image"] = "ghcr.io/dask/dask:2026.1.0"
    driver.update(configmap(request_data(workers=1, worker_template=template)))
    await driver.reconcile_once()
    condition = last_status(fake_kube).condition("SchedulerUpToDate")
    assert condition is not None and condition.reason == "RestartNeeded"
    assert "the worker template changed, and the scheduler pod is made from it" in condition.message
