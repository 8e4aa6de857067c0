"""Faults of the controller itself: SIGKILL in the middle of a scale-down, a leader paused past its lease
while a standby takes over, and watches that expire (410 Gone) after losing events (a watch that then
tries to resume from before the expiry gets 410 again, so only a fresh LIST recovers what was missed).

Every round ends with exactly the requested workers, no duplicate or orphaned pod, and a true status.
"""

from __future__ import annotations

import functools
import random
import time
from pathlib import Path
from typing import Any

import pytest
from chaoskit import ChaosProxy, Record, controller_env, delete_request, eventually, no_orphans, wait_converged
from controller_harness import Cluster, ControllerProcess, metric_sum

from devcluster import processes

HIGH, LOW = 150, 30


@pytest.mark.timeout(0)  # bounded by the per-round waits; the rounds are a command-line option
def test_controller_killed_during_scale_down_converges_exactly(
        chaos_rounds: int, chaos_kubeconfig: str, chaos_api: Any, chaos_namespace: str, tmp_path: Path) -> None:
    cluster = Cluster(chaos_api, chaos_namespace)
    rng = random.Random(7)
    proxy = ChaosProxy(chaos_kubeconfig, tmp_path).start()  # to see the deletes begin, on the wire
    controller = ControllerProcess(proxy.kubeconfig, [chaos_namespace], tmp_path, env=controller_env())
    try:
        controller.start()
        cluster.create_request("down", workers=HIGH)
        wait_converged(cluster, "down", HIGH)
        for round_ in range(chaos_rounds):
            changed = time.time()
            cluster.patch_data("down", {"workers": str(LOW)})
            # The deletes of a scale-down go out in well under a second (the simulated scheduler refuses
            # to retire at once): the proxy sees the first one, and the kill comes at a random instant
            # of the burst.
            eventually("the first delete of the scale-down", functools.partial(pod_deletes, proxy, changed),
                       timeout=60, interval=0.005)
            time.sleep(rng.uniform(0.0, 0.15))  # the fault's timing, not a synchronisation
            controller.kill()
            left = len(cluster.worker_names("down"))
            controller.start()
            settled = wait_converged(cluster, "down", LOW)
            assert not no_orphans(cluster)
            print(f"scale-down round {round_}: SIGKILLed with {left} workers left of {HIGH} -> {LOW}; "
                  f"restarted and converged in {settled:.1f}s")
            if round_ + 1 < chaos_rounds:
                cluster.patch_data("down", {"workers": str(HIGH)})
                wait_converged(cluster, "down", HIGH)
    finally:
        controller.stop()
        proxy.stop()


def pod_deletes(proxy: ChaosProxy, since: float) -> list[Record]:
    return [r for r in proxy.writes_since(since) if r.method == "DELETE" and r.resource == "pods"]


def not_leading(replica: ControllerProcess) -> bool:
    return bool(metric_sum(replica.metrics(), "kubedask_leader") == 0)


def leader_of(replicas: list[ControllerProcess]) -> ControllerProcess | None:
    leading = [r for r in replicas if metric_sum(r.metrics(), "kubedask_leader") == 1]
    return leading[0] if len(leading) == 1 else None


#: Seconds after SIGCONT within which a write may still be one that was mid-send when the process froze.
IN_FLIGHT_WINDOW = 0.1


@pytest.mark.timeout(0)
def test_leader_paused_past_its_lease_does_not_write_when_it_wakes(
        chaos_rounds: int, chaos_kubeconfig: str, chaos_api: Any, chaos_namespace: str, tmp_path: Path) -> None:
    cluster = Cluster(chaos_api, chaos_namespace)
    # Each replica talks through its own recording proxy: the writes of each are counted on the wire.
    proxies = [ChaosProxy(chaos_kubeconfig, tmp_path).start() for _ in range(2)]
    replicas = [ControllerProcess(p.kubeconfig, [chaos_namespace], tmp_path, leader_election=True,
                                  env=controller_env()) for p in proxies]
    proxy_of = dict(zip(map(id, replicas), proxies, strict=True))
    try:
        for replica in replicas:
            replica.start()
        cluster.create_request("lead", workers=LOW)
        wait_converged(cluster, "lead", LOW)
        target = LOW
        stale_rounds: list[str] = []
        for round_ in range(chaos_rounds):
            leader = eventually("exactly one leader", lambda: leader_of(replicas), timeout=90)
            standby = next(r for r in replicas if r is not leader)
            assert leader.proc is not None
            # Pause the leader in the middle of work: a scale-up it has begun.
            target = HIGH if target == LOW else LOW
            changed, wire = time.time(), proxy_of[id(leader)]
            cluster.patch_data("lead", {"workers": str(target)})
            eventually("the leader to act on the change", functools.partial(wire.writes_since, changed),
                       timeout=60, interval=0.02)
            processes.pause(leader.proc.pid)
            paused_at = time.monotonic()
            try:
                eventually("the standby to take over", functools.partial(leader_of, [standby]), timeout=120,
                           interval=1)
                took_over = time.monotonic() - paused_at
                wait_converged(cluster, "lead", target)
            finally:
                processes.resume(leader.proc.pid)
            paused = time.monotonic() - paused_at
            resumed = time.time()
            # Awake again, the deposed leader must notice the lost lease before its next write, while
            # the new leader keeps acting: a change made now is carried out by the new leader alone.
            target = HIGH if target == LOW else LOW
            cluster.patch_data("lead", {"workers": str(target)})
            settled = wait_converged(cluster, "lead", target)
            eventually("the resumed replica to report it is not leading", functools.partial(not_leading, leader),
                       timeout=30)
            time.sleep(5)  # a window for late writes of the resumed replica to show up on the wire
            # A write whose thread had passed the last lease check (in the sending thread, just before the
            # socket write) when SIGSTOP froze the process goes out the instant it wakes: no client can take
            # back a syscall it was about to make. Such writes are at most one per pool thread and leave
            # within milliseconds; anything later would be a write the replica decided on after waking.
            # A request the proxy never forwarded (its body never came: the sending thread's lease check
            # stopped it mid-request, status None) never reached the API server, so it wrote nothing.
            woke = proxy_of[id(leader)].writes_since(resumed)
            aborted = [r for r in woke if r.status is None]
            in_flight = [r for r in woke if r.status is not None and r.time - resumed < IN_FLIGHT_WINDOW]
            stale = [r for r in woke if r.status is not None and r.time - resumed >= IN_FLIGHT_WINDOW]
            if stale:  # every round still runs (and converges), so the report covers them all
                stale_rounds.append(
                    f"round {round_}: {len(stale)} writes (seconds after SIGCONT, method, path, status): "
                    f"{[(round(r.time - resumed, 3), r.method, r.path, r.status) for r in stale]}")
            assert proxy_of[id(standby)].writes_since(resumed), "the new leader made no writes"
            assert not no_orphans(cluster)
            print(f"leader round {round_}: paused {paused:.0f}s; standby took over after {took_over:.1f}s; "
                  f"resumed replica made {len(stale)} non-lease writes after waking ({len(in_flight)} already "
                  f"past the lease check when paused, {len(aborted)} stopped mid-request); new leader converged "
                  f"a change in {settled:.1f}s")
        assert not stale_rounds, "the resumed replica wrote after losing the lease:\n" + "\n".join(stale_rounds)
    finally:
        for replica in replicas:
            if replica.proc is not None and processes.is_stopped(replica.proc.pid):
                processes.resume(replica.proc.pid)
            replica.stop()
        for proxy in proxies:
            proxy.stop()


@pytest.mark.timeout(0)
def test_expired_watches_lose_nothing(
        chaos_rounds: int, chaos_kubeconfig: str, chaos_api: Any, chaos_namespace: str, tmp_path: Path) -> None:
    cluster = Cluster(chaos_api, chaos_namespace)
    proxy = ChaosProxy(chaos_kubeconfig, tmp_path).start()
    controller = ControllerProcess(proxy.kubeconfig, [chaos_namespace], tmp_path, env=controller_env())
    try:
        controller.start()
        cluster.create_request("gone", workers=LOW)
        wait_converged(cluster, "gone", LOW)
        target = LOW
        for round_ in range(chaos_rounds):
            eventually("the controller's watches", lambda: {"configmaps", "pods"} <= {
                r.resource for r in proxy.watches_since(0)}, timeout=30)
            # The watches go deaf: a scale change and deleted workers happen unseen...
            proxy.swallow()
            target = LOW + 5 if target == LOW else LOW
            cluster.patch_data("gone", {"workers": str(target)})
            victims = cluster.worker_names("gone")[:3]
            for victim in victims:
                cluster.core.delete_namespaced_pod(victim, chaos_namespace)
            # ... then expire, as a watch that fell behind the API server's history does.
            expired_at = time.time()
            counts = proxy.expire()
            assert counts.get("configmaps") and counts.get("pods"), counts
            settled = wait_converged(cluster, "gone", target, timeout=120)
            rewatched = {r.resource for r in proxy.watches_since(expired_at)}
            assert {"configmaps", "pods"} <= rewatched, rewatched
            assert not set(victims) & set(cluster.worker_names("gone"))
            assert not no_orphans(cluster)
            print(f"410 round {round_}: expired {counts} watches after a missed scale to {target} and "
                  f"{len(victims)} missed pod deletions; converged {settled:.1f}s after the 410 (watches "
                  f"refused for resuming from before it, so far: {proxy.refused or 'none'})")
        delete_request(cluster, "gone")
    finally:
        controller.stop()
        proxy.stop()
