"""Expectations and the pure observe step: what this process did, laid over what was listed."""

from __future__ import annotations

import asyncio

import pytest
from controller_fakes import LoopClock
from kubedask_controller.expectations import Expectations
from kubedask_controller.observe import external_address, observe
from kubedask_controller.reconcile import PodInfo


def pod(name: str, component: str = "worker", uid: str = "uid-1", **status: object) -> dict[str, object]:
    return {"metadata": {"name": name, "labels": {"dask.org/component": component},
                         "ownerReferences": [{"uid": uid}]}, "status": {"phase": "Running", **status}}


async def test_expected_creates_count_until_listed() -> None:
    expectations = Expectations(LoopClock(), timeout=60)
    expectations.created(["w1", "w2"])
    workers = expectations.overlay({"w1": PodInfo("w1", phase="Running")})
    assert workers == {"w1": PodInfo("w1", phase="Running"), "w2": PodInfo("w2")}
    assert expectations.pending == (frozenset({"w2"}), frozenset())


async def test_expected_deletes_hide_listed_pods_until_they_are_deleting() -> None:
    expectations = Expectations(LoopClock(), timeout=60)
    expectations.deleted(["w1"])
    assert expectations.overlay({"w1": PodInfo("w1")})["w1"].deleting
    expectations.seen("w1", deleting=True)
    assert not expectations.overlay({"w1": PodInfo("w1")})["w1"].deleting


@pytest.mark.looptime
async def test_expectations_expire_after_the_timeout() -> None:
    expectations = Expectations(LoopClock(), timeout=60)
    expectations.created(["w1"])
    expectations.deleted(["w2"])
    await asyncio.sleep(59)
    assert set(expectations.overlay({"w2": PodInfo("w2")})) == {"w1", "w2"}
    await asyncio.sleep(2)
    assert expectations.overlay({"w2": PodInfo("w2")}) == {"w2": PodInfo("w2")}
    assert expectations.pending == (frozenset(), frozenset())


async def test_observe_sorts_pods_and_skips_those_of_an_earlier_request_of_the_same_name() -> None:
    pods = [pod("analysis-scheduler", "scheduler", podIP="10.0.0.1"), pod("analysis-worker-a"),
            pod("analysis-worker-old", uid="uid-0")]
    seen = observe("analysis", "uid-1", pods, Expectations(LoopClock(), 60),
                   service={"metadata": {"ownerReferences": [{"uid": "uid-1"}]}}, pdb=None)
    assert seen.observed.scheduler is not None and seen.observed.scheduler.ip == "10.0.0.1"
    assert [w.name for w in seen.observed.workers] == ["analysis-worker-a"]
    assert seen.observed.service and not seen.observed.pdb


def test_external_address_of_nodeport_and_loadbalancer_services() -> None:
    ports = [{"port": 8786, "nodePort": 30086}, {"port": 8787, "nodePort": 30087}]
    scheduler = {"status": {"hostIP": "192.168.1.5"}}
    assert external_address({"spec": {"type": "NodePort", "ports": ports}}, scheduler) == "tcp://192.168.1.5:30086"
    balancer = {"spec": {"type": "LoadBalancer", "ports": ports},
                "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example"}]}}}
    assert external_address(balancer, scheduler) == "tcp://lb.example:8786"
    assert external_address({"spec": {"type": "ClusterIP", "ports": ports}}, scheduler) is None
