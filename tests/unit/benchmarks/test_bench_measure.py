"""Reading pod counts, process footprints and machine facts: the runner's measuring instruments."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks import machine, processes
from benchmarks.kube import PodCounts, count_pods


def pod(phase: str, deleting: bool = False) -> dict[str, object]:
    metadata = {"name": "p", **({"deletionTimestamp": "2026-11-27T10:00:00Z"} if deleting else {})}
    return {"metadata": metadata, "status": {"phase": phase}}


def test_terminating_pods_are_neither_live_nor_running() -> None:
    counts = count_pods([pod("Running"), pod("Pending"), pod("Running", deleting=True)])
    assert counts == PodCounts(live=2, running=1, deleting=1)


def test_scale_down_converges_when_exactly_the_target_is_live_and_running() -> None:
    assert PodCounts(live=100, running=100, deleting=900).converged(100)
    assert not PodCounts(live=101, running=101, deleting=0).converged(100)
    assert not PodCounts(live=100, running=99, deleting=0).converged(100)


def test_cpu_ticks_are_read_even_when_the_command_name_has_spaces_and_parens() -> None:
    # Fields after "(comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    stat = "4242 (kopf (run) x) S 1 2 3 0 -1 4194304 10 0 0 0 150 50 0 0 20 0 9 0"
    assert processes.parse_cpu_ticks(stat) == 200


def test_rss_is_read_from_vmrss() -> None:
    assert processes.parse_rss_kib("Name:\tpython\nVmRSS:\t  123456 kB\nThreads:\t9\n") == 123456
    with pytest.raises(ValueError, match="VmRSS"):
        processes.parse_rss_kib("Name:\tzombie\n")


def test_footprint_of_this_process_is_plausible() -> None:
    fp = processes.footprint(os.getpid())
    assert fp.rss_mib > 1
    assert fp.cpu_seconds >= 0


def test_wait_until_returns_once_the_probe_holds_and_names_what_timed_out() -> None:
    answers = iter([False, False, True])
    assert processes.wait_until("the third answer", lambda: next(answers), timeout=60, interval=0) >= 0
    with pytest.raises(TimeoutError, match="never"):
        processes.wait_until("never", lambda: False, timeout=0, interval=0)


def test_controller_process_is_stopped_by_its_own_pid(tmp_path: Path) -> None:
    controller = processes.Controller("sleeper", ["sleep", "30"], dict(os.environ), tmp_path / "s.log")
    controller.start()
    assert controller.alive()
    controller.stop(grace=5)
    assert not controller.alive()
    with pytest.raises(RuntimeError, match="sleeper controller exited"):
        controller.check_alive()


def test_machine_facts_come_from_proc_files() -> None:
    assert machine.cpu_model("processor\t: 0\nmodel name\t: Example CPU @ 2.0GHz\n") == "Example CPU @ 2.0GHz"
    assert machine.memory_gib("MemTotal:       8388608 kB\n") == 8.0


def test_cold_start_probe_output_is_found_after_client_chatter() -> None:
    from benchmarks import coldstart_probe
    from benchmarks.scenarios import PROBE_MARKER, parse_probe_output

    assert coldstart_probe.MARKER == PROBE_MARKER
    assert parse_probe_output("╭─ DaskCluster ─╮\n╰──────╯\ncoldstart-seconds=23.273\n") == 23.273
    assert parse_probe_output("Traceback ...\n") is None
