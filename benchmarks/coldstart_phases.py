"""Where a real-node cold start's seconds go: scenario 5's cluster, phase by phase.

``python -m benchmarks.coldstart_phases NAMESPACE [--runs N] [--variant NAME=ITEMS]...`` starts the
cold-start scenario's cluster (:func:`benchmarks.coldstart_probe.kubedask_spec`) ``N`` times against a
kubedask controller already watching ``NAMESPACE``, and before closing each one reads what every step left
behind:

- the client's clock: ``KubeCluster(...)`` called and returned, ``wait_for_workers(2)`` returned;
- a watch on the namespace (started before the request): when the request ConfigMap and each pod appeared,
  were scheduled, ran and became ready, to the millisecond as this machine saw them;
- each container's log with containerd's timestamps: a marker printed by ``sh`` just before it execs Dask
  (the container's process start), then Dask's own milestones.

It prints each run's milestones in seconds from ``KubeCluster(...)``, each pod's CPU seconds (its cgroup
on the devcluster's real node) and the median of every phase. Each ``--variant`` is one arm of an A/B
comparison, run alternately with the others: environment variables and worker flags added to the template,
or another namespace (e.g. one watched by a differently built controller).

The Nanny logs "Start Nanny at" only once it has registered with the scheduler, and starts its worker
process only then: a worker's "exec -> Nanny registered" includes waiting for the scheduler's Service.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kubedask.spec import parse_status

#: The wrapper's first line: ``sh`` prints it, then execs the container's Dask command unchanged.
EXEC_MARKER = "kubedask-phase-exec"
WRAPPER = ["sh", "-c", f'echo {EXEC_MARKER}; exec "$@"', "sh"]

#: Log substrings -> milestone names, per role (the first matching line counts).
WORKER_MARKS = {EXEC_MARKER: "exec", "Start Nanny at": "nanny", "Start worker at": "worker",
                "Registered to": "registered"}
SCHEDULER_MARKS = {EXEC_MARKER: "exec", "Scheduler at:": "listening"}

#: (phase name, from milestone, to milestone); "worker." / "scheduler." name whose milestone.
PHASES = [
    ("client: KubeCluster() -> request created", "t0", "request"),
    ("controller: request -> scheduler pod", "request", "scheduler.added"),
    ("scheduler: pod -> process exec", "scheduler.added", "scheduler.exec"),
    ("scheduler: exec -> listening", "scheduler.exec", "scheduler.listening"),
    ("scheduler: listening -> Ready", "scheduler.listening", "scheduler.ready"),
    ("controller: scheduler Ready -> status says so", "scheduler.ready", "request.ready"),
    ("client: status -> KubeCluster returned", "request.ready", "cluster"),
    ("worker: pod -> process exec", "worker.added", "worker.exec"),
    ("worker: exec -> Nanny registered", "worker.exec", "worker.nanny"),
    ("worker: scheduler Ready -> Nanny registered", "scheduler.ready", "worker.nanny"),
    ("worker: Nanny -> worker process listening", "worker.nanny", "worker.worker"),
    ("worker: listening -> registered", "worker.worker", "worker.registered"),
    ("client: last registered -> 2 workers seen", "worker.registered", "workers"),
    ("total: KubeCluster() -> 2 workers", "t0", "workers"),
]


def parse_log_time(line: str) -> tuple[float, str] | None:
    """A ``kubectl logs --timestamps`` line -> (epoch seconds, text); None for anything else."""
    stamp, _, text = line.partition(" ")
    if not stamp.endswith("Z") or "T" not in stamp:
        return None
    whole, _, fraction = stamp[:-1].partition(".")
    try:
        base = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC)
    except ValueError:
        return None
    return base.timestamp() + float(f"0.{fraction or '0'}"), text


def log_milestones(log: str, marks: Mapping[str, str]) -> dict[str, float]:
    """The time of the first log line containing each mark's substring, by milestone name."""
    found: dict[str, float] = {}
    for line in log.splitlines():
        parsed = parse_log_time(line)
        if parsed is None:
            continue
        at, text = parsed
        for needle, name in marks.items():
            if name not in found and needle in text:
                found[name] = at
    return found


def phase_table(runs: Sequence[Mapping[str, float]]) -> list[tuple[str, list[float]]]:
    """Each phase's durations over the runs that have both its milestones."""
    table = []
    for name, start, end in PHASES:
        durations = [run[end] - run[start] for run in runs if start in run and end in run]
        table.append((name, durations))
    return table


def critical_worker(workers: Iterable[Mapping[str, float]]) -> Mapping[str, float]:
    """The worker that registered last (the one ``wait_for_workers(2)`` waited for)."""
    return max(workers, key=lambda w: w.get("registered", float("inf")), default={})


class PodWatch:
    """Records, from a watch, when each pod and the request ConfigMap were first seen in each state."""

    def __init__(self, core: Any, namespace: str) -> None:
        self.core, self.namespace = core, namespace
        self.seen: dict[str, dict[str, float]] = {}
        self.uids: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> PodWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _mark(self, name: str, state: str) -> None:
        self.seen.setdefault(name, {}).setdefault(state, time.time())

    def _run(self) -> None:
        import kubernetes

        threading.Thread(target=self._watch_configmaps, daemon=True).start()
        watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
        for event in watch.stream(  # type: ignore[no-untyped-call]
                self.core.list_namespaced_pod, self.namespace, timeout_seconds=600):
            if self._stop.is_set():
                watch.stop()  # type: ignore[no-untyped-call]
                return
            pod = event["object"]
            name = pod.metadata.name
            self.uids[name] = pod.metadata.uid
            self._mark(name, "added")
            if pod.spec.node_name:
                self._mark(name, "scheduled")
            if any(s.state and s.state.running for s in pod.status.container_statuses or []):
                self._mark(name, "running")
            if any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []):
                self._mark(name, "ready")

    def _watch_configmaps(self) -> None:
        import kubernetes

        watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
        for event in watch.stream(  # type: ignore[no-untyped-call]
                self.core.list_namespaced_config_map, self.namespace, timeout_seconds=600):
            if self._stop.is_set():
                watch.stop()  # type: ignore[no-untyped-call]
                return
            configmap = event["object"]
            self._mark(f"configmap/{configmap.metadata.name}", "added")
            status = parse_status(configmap.metadata.annotations)
            ready = status.condition("SchedulerReady") if status else None
            if ready is not None and ready.status == "True":
                self._mark(f"configmap/{configmap.metadata.name}", "ready")


#: The kubelet's pod cgroup (cgroup v1, cgroupfs driver: the devcluster's real node) and the machine's CPUs.
PODS_CPUACCT = "/sys/fs/cgroup/cpuacct/kubepods/cpuacct.usage"
CORES = os.cpu_count() or 1


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds used by all pods, by the whole machine) so far; pods 0 where the cgroup is elsewhere."""
    try:
        with open(PODS_CPUACCT) as f:
            pods = int(f.read()) / 1e9
    except OSError:
        pods = 0.0
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return pods, (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One arm of an A/B comparison: environment variables and extra worker flags for the pod template, and
    the namespace (None: the default one), e.g. one watched by a controller built differently."""

    name: str
    env: dict[str, str]
    worker_args: list[str]
    namespace: str | None = None
    pod_fields: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Variant:
        """``NAME=ITEM,ITEM...``; an item is ``KEY=VALUE`` (environment), ``--flag`` (a worker flag),
        ``ns:NAMESPACE`` or ``pod.FIELD=JSON`` (a pod spec field, by its Python name).

        Example:
            >>> Variant.parse("fork=DASK_X=fork,--no-dashboard,ns:team-b,pod.host_users=false")
            Variant(name='fork', env={'DASK_X': 'fork'}, worker_args=['--no-dashboard'], namespace='team-b', \
pod_fields={'host_users': False})
        """
        name, _, items = text.partition("=")
        if not name:
            raise ValueError(f"--variant {text!r}: give it a name, e.g. fork=KEY=VALUE,--flag")
        env: dict[str, str] = {}
        args: list[str] = []
        namespace = None
        fields: dict[str, Any] = {}
        for item in filter(None, items.split(",")):
            if item.startswith("pod.") and "=" in item:
                key, _, value = item.removeprefix("pod.").partition("=")
                fields[key] = json.loads(value)
            elif item.startswith("ns:"):
                namespace = item.removeprefix("ns:")
            elif item.startswith("--"):
                args.append(item)
            elif "=" in item:
                key, _, value = item.partition("=")
                env[key] = value
            else:
                raise ValueError(f"--variant {text!r}: {item!r} is neither KEY=VALUE, --flag nor ns:NAMESPACE")
        return cls(name, env, args, namespace, fields)


def pod_cpu_seconds(uid: str) -> float:
    """CPU seconds one pod's containers used so far (its cgroup under kubepods); NaN if not found."""
    for qos in ("burstable/", "besteffort/", ""):
        try:
            with open(f"{os.path.dirname(PODS_CPUACCT)}/{qos}pod{uid}/cpuacct.usage") as f:
                return int(f.read()) / 1e9
        except OSError:
            continue
    return float("nan")


def run_once(core: Any, namespace: str, name: str, variant: Variant) -> dict[str, float]:
    """One cold start; its milestones in epoch seconds (``worker.*`` from the worker that registered last)."""
    from distributed import Client
    from kubedask import KubeCluster

    from benchmarks.coldstart_probe import kubedask_spec

    spec = kubedask_spec(env=variant.env or None)
    container = spec.spec.containers[0]
    container.command = WRAPPER  # args stay: the wrapper execs them
    container.args = [*container.args, *variant.worker_args]
    for field, value in variant.pod_fields.items():
        setattr(spec.spec, field, value)
    pods = PodWatch(core, namespace).start()
    time.sleep(0.5)  # the watch is listening before the request exists
    cpu_before = cpu_seconds()
    run: dict[str, float] = {"t0": time.time()}
    cluster = KubeCluster(spec, name=name, namespace=namespace, n_workers=2)
    run["cluster"] = time.time()
    try:
        with Client(cluster) as client:  # type: ignore[no-untyped-call]
            client.wait_for_workers(2, timeout=120)
            run["workers"] = time.time()
        cpu_after = cpu_seconds()
        pod_cpu = {pod: pod_cpu_seconds(uid) for pod, uid in pods.uids.items() if pod.startswith(f"{name}-")}
        workers = []
        for pod, states in pods.seen.items():
            if not pod.startswith(f"{name}-") or states["added"] < run["t0"]:
                continue  # the request's ConfigMap, or an earlier run's pod on its way out
            log = core.read_namespaced_pod_log(pod, namespace, timestamps=True)
            role = "scheduler" if pod.endswith("-scheduler") else "worker"
            marks = {**states, **log_milestones(log, SCHEDULER_MARKS if role == "scheduler" else WORKER_MARKS)}
            if role == "scheduler":
                run.update({f"scheduler.{k}": v for k, v in marks.items()})
            else:
                workers.append(marks)
        run.update({f"worker.{k}": v for k, v in critical_worker(workers).items()})
        per_pod = ", ".join(f"{pod.removeprefix(name + '-')} {cpu:.2f}" for pod, cpu in sorted(pod_cpu.items()))
        print(f"  CPU seconds until 2 workers: {per_pod}; node's pods {cpu_after[0] - cpu_before[0]:.2f}, machine "
              f"{cpu_after[1] - cpu_before[1]:.2f} of {(run['workers'] - run['t0']) * CORES:.2f}")
        request = pods.seen.get(f"configmap/{name}", {})
        run.update({"request": request["added"]} if "added" in request else {})
        run.update({"request.ready": request["ready"]} if "ready" in request else {})
    finally:
        pods.stop()
        cluster.close()
    return run


def print_run(i: int, run: Mapping[str, float]) -> None:
    t0 = run["t0"]
    marks = sorted((v - t0, k) for k, v in run.items() if k != "t0")
    print(f"run {i}: " + ", ".join(f"{k} {s:.2f}" for s, k in marks), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("namespace")
    parser.add_argument("--runs", type=int, default=3, help="rounds; each round runs every variant once")
    parser.add_argument("--variant", action="append", default=[], type=Variant.parse, metavar="NAME=ITEMS",
                        help="an A/B arm: NAME=KEY=VALUE,--worker-flag,... (default: one arm, the template)")
    args = parser.parse_args(argv)
    import kubernetes

    kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    core = kubernetes.client.CoreV1Api()
    variants: list[Variant] = args.variant or [Variant("template", {}, [])]
    runs: dict[str, list[dict[str, float]]] = {v.name: [] for v in variants}
    for i in range(args.runs):
        for variant in variants:  # alternating, so the machine's load falls on every arm alike
            load = os.getloadavg()[0]
            count = sum(map(len, runs.values()))
            namespace = variant.namespace or args.namespace
            run = run_once(core, namespace, f"phases-{int(time.time()) % 100000}-{count}", variant)
            runs[variant.name].append(run)
            print(f"{variant.name} ", end="")
            print_run(i, run)
            print(f"  load average before: {load:.2f}", flush=True)
    for variant in variants:
        print(f"\n{variant.name}: phase (seconds)                          median   runs")
        for name, durations in phase_table(runs[variant.name]):
            median = f"{statistics.median(durations):6.2f}" if durations else "     -"
            print(f"{name:50} {median}   {' '.join(f'{d:.2f}' for d in durations)}")


if __name__ == "__main__":
    main(sys.argv[1:])
