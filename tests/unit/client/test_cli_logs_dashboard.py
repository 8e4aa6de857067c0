"""``kubectl dask logs`` and ``kubectl dask dashboard`` against the in-memory API and a fake forward."""

from __future__ import annotations

import asyncio
import io

import pytest
from cli_fake import MemoryKube, run, running
from kubedask.cli import dashboard
from kubedask.cli.context import CliError, Context
from kubedask.portforward import PortForwardError


@pytest.fixture
def kube() -> MemoryKube:
    kube = MemoryKube()
    kube.add_request("team-a", "analysis", workers=2, status=running(2, 2))
    kube.add_pod("team-a", "analysis-scheduler", "analysis", "scheduler")
    kube.add_pod("team-a", "analysis-worker-abcde", "analysis", "worker")
    kube.add_pod("team-a", "analysis-worker-fghij", "analysis", "worker")
    api = kube.api("team-a")
    api.logs = {"analysis-scheduler": "scheduler line 1\nscheduler line 2\nscheduler line 3",
                "analysis-worker-abcde": "worker abcde\n"}
    return kube


def test_logs_default_to_the_scheduler(kube: MemoryKube) -> None:
    assert run(kube, "logs", "analysis") == (0, "scheduler line 1\nscheduler line 2\nscheduler line 3\n", "")
    assert run(kube, "logs", "analysis", "--scheduler", "--tail", "1") == (0, "scheduler line 3\n", "")


def test_worker_log_by_full_pod_name_or_suffix(kube: MemoryKube) -> None:
    assert run(kube, "logs", "analysis", "--worker", "analysis-worker-abcde")[1] == "worker abcde\n"
    assert run(kube, "logs", "analysis", "--worker", "abcde")[1] == "worker abcde\n"


def test_unknown_worker_lists_the_clusters_workers(kube: MemoryKube) -> None:
    code, _, err = run(kube, "logs", "analysis", "--worker", "zzzzz")
    assert code == 1 and err == ("error: the cluster team-a/analysis has no worker pod 'zzzzz'; its workers: "
                                 "analysis-worker-abcde, analysis-worker-fghij\n")


def test_empty_log_says_why_on_stderr(kube: MemoryKube) -> None:
    code, out, err = run(kube, "logs", "analysis", "--worker", "fghij")
    assert (code, out) == (0, "") and "is empty: its container may not have started yet" in err


def test_job_log_of_a_cluster_without_a_job_is_a_clear_error(kube: MemoryKube) -> None:
    code, out, err = run(kube, "logs", "analysis", "--job")
    assert (code, out) == (1, "")
    assert err == ("error: the cluster team-a/analysis has no job: its request has no job-template key; "
                   "use --scheduler or --worker POD\n")


def test_job_log_reads_the_job_pod_once_requests_have_jobs(kube: MemoryKube) -> None:
    kube.api("team-a").configmaps["analysis"]["data"]["job-template"] = "containers: [{name: job, image: i}]"
    assert "has no pod (yet)" in run(kube, "logs", "analysis", "--job")[2]
    kube.add_pod("team-a", "analysis-job", "analysis", "job")
    kube.api("team-a").logs["analysis-job"] = "0.9999"
    assert run(kube, "logs", "analysis", "--job") == (0, "0.9999\n", "")


def test_local_mode_scheduler_has_no_pod_log_nor_dashboard(kube: MemoryKube) -> None:
    local = {"deploy-mode": "local", "scheduler-address": "tcp://10.0.0.1:8786"}
    kube.add_request("team-a", "local", status=running(1, 1), data=local)
    for command in ("logs", "dashboard"):
        code, _, err = run(kube, command, "local")
        assert code == 1 and "runs in its client's process (deploy-mode local)" in err, command


def test_missing_scheduler_pod_points_at_describe(kube: MemoryKube) -> None:
    del kube.api("team-a").pods["analysis-scheduler"]
    for command in ("logs", "dashboard"):
        code, _, err = run(kube, command, "analysis")
        assert code == 1 and "does not exist (yet); `kubectl dask describe analysis` shows why" in err, command


class FakeForward:
    def __init__(self, refuse: bool = False) -> None:
        self.host = "127.0.0.1"
        self.local_ports: dict[int, int] = {}
        self.refuse = refuse
        self.opened: tuple[str, str, list[int]] | None = None
        self.closed = False

    def __call__(self, namespace: str, pod: str, ports: list[int]) -> FakeForward:
        self.opened = (namespace, pod, ports)
        return self

    async def start(self) -> None:
        self.local_ports = {8787: 40123}

    async def check(self, remote_port: int) -> None:
        if self.refuse:
            raise PortForwardError("the API server refused a port-forward to pod team-a/analysis-scheduler port "
                                   "8787: HTTP 403 Forbidden.")

    async def close(self) -> None:
        self.closed = True


def context(kube: MemoryKube) -> tuple[Context, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Context(kube, "team-a", out=out, err=err), out, err


async def test_dashboard_prints_the_forwarded_link_and_closes_the_forward_when_stopped(kube: MemoryKube) -> None:
    forward = FakeForward()
    ctx, out, err = context(kube)
    seen: list[tuple[str, bool]] = []

    async def stopped() -> None:  # plays the user's Ctrl-C, after looking at what was printed meanwhile
        seen.append((out.getvalue(), forward.closed))

    await dashboard.run(ctx, "analysis", open_forward=forward, stopped=stopped)
    assert seen == [("Dashboard of team-a/analysis: http://127.0.0.1:40123/status\n", False)]
    assert "Ctrl-C" in err.getvalue() and forward.opened == ("team-a", "analysis-scheduler", [8787])
    assert forward.closed


async def never() -> None:
    await asyncio.Event().wait()


async def test_dashboard_refused_forward_is_one_line_and_closes_the_listener(kube: MemoryKube) -> None:
    forward = FakeForward(refuse=True)
    ctx, out, _ = context(kube)
    with pytest.raises(CliError, match=r"refused a port-forward .* HTTP 403"):
        await dashboard.run(ctx, "analysis", open_forward=forward, stopped=never)
    assert forward.closed and out.getvalue() == ""
