"""The driver puts the request's ``user.kubedask.io/`` labels on what it creates, and a label edit alone
patches the Service (and nothing else)."""

from __future__ import annotations

import copy

from controller_fakes import FakeKube, configmap, request_data
from kubedask_controller.controller import Controller
from kubedask_controller.driver import RequestDriver
from kubedask_controller.policy import Policy
from kubedask_controller.settings import Settings

TEAM = "user.kubedask.io/team"


async def test_request_labels_reach_what_the_driver_creates_and_an_edit_patches_the_service(
        fake_kube: FakeKube) -> None:
    body = configmap(request_data(workers=2))
    body["metadata"]["labels"].update({TEAM: "risk", "team": "plain"})
    driver = RequestDriver(Controller(fake_kube, Settings(policy=Policy())), body)
    await driver.reconcile_once()
    created = [*fake_kube.pods.values(), *fake_kube.services.values(), *fake_kube.pdbs.values()]
    assert len(created) == 5
    for obj in created:
        assert obj["metadata"]["labels"][TEAM] == "risk" and obj["metadata"]["labels"].get("team") != "plain"

    fake_kube.run_all()
    await driver.reconcile_once()
    pods = sorted(fake_kube.pods)
    edited = copy.deepcopy(body)
    edited["metadata"]["labels"][TEAM] = "fraud"
    driver.update(edited)
    await driver.reconcile_once()
    assert fake_kube.service_patches[-1] == {"metadata": {"labels": {TEAM: "fraud"}}}
    assert fake_kube.services["analysis-scheduler"]["metadata"]["labels"][TEAM] == "fraud"
    # Running pods keep their labels: nothing is recreated or patched besides the Service.
    assert sorted(fake_kube.pods) == pods and len(fake_kube.service_patches) == 1
    assert {p["metadata"]["labels"][TEAM] for p in fake_kube.pods.values()} == {"risk"}
