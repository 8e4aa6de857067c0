"""The cold-start phase tool: container log milestones, the worker that decides, phases, A/B arms."""

from __future__ import annotations

import datetime

import pytest

from benchmarks.coldstart_phases import (
    EXEC_MARKER,
    SCHEDULER_MARKS,
    WORKER_MARKS,
    Variant,
    critical_worker,
    log_milestones,
    parse_log_time,
    phase_table,
)

WORKER_LOG = f"""\
2026-12-03T14:11:03.500000000Z {EXEC_MARKER}
2026-12-03T14:11:06.524286186Z 2026-12-03 14:11:06,523 - distributed.nanny - INFO - Start Nanny at: 'tcp://10.244.0.6:33927'
not a log line
2026-12-03T14:11:08.209985972Z 2026-12-03 14:11:08,209 - distributed.worker - INFO - Start worker at: tcp://10.244.0.6:41987
2026-12-03T14:11:08.235284639Z 2026-12-03 14:11:08,234 - distributed.worker - INFO - Registered to: tcp://s:8786
2026-12-03T14:11:09.000000000Z 2026-12-03 14:11:09,000 - distributed.worker - INFO - Registered to: tcp://s:8786
"""


def at(clock: str) -> float:
    return datetime.datetime.fromisoformat(f"2026-12-03T{clock}+00:00").timestamp()


def test_a_timestamped_line_keeps_its_nanoseconds_and_other_lines_are_skipped() -> None:
    parsed = parse_log_time("2026-12-03T14:11:08.209985972Z hello world")
    assert parsed is not None
    assert parsed[0] == pytest.approx(at("14:11:08") + 0.209985972)
    assert parsed[1] == "hello world"
    assert parse_log_time("2026-12-03 14:11:08,209 - plain dask line") is None
    assert parse_log_time("") is None


def test_worker_milestones_are_the_first_line_of_each_kind() -> None:
    marks = log_milestones(WORKER_LOG, WORKER_MARKS)
    assert marks["exec"] == pytest.approx(at("14:11:03.5"))
    assert marks["nanny"] == pytest.approx(at("14:11:06.524286"))
    assert marks["worker"] == pytest.approx(at("14:11:08.209986"))
    assert marks["registered"] == pytest.approx(at("14:11:08.235285"))  # not the later line


def test_a_scheduler_that_never_listened_has_no_listening_milestone() -> None:
    log = f"2026-12-03T14:11:03.1Z {EXEC_MARKER}\n2026-12-03T14:11:04.0Z - distributed.scheduler - State start\n"
    assert set(log_milestones(log, SCHEDULER_MARKS)) == {"exec"}


def test_the_critical_worker_is_the_one_registered_last_and_an_unregistered_one_counts_as_last() -> None:
    early, late = {"registered": 5.0, "exec": 1.0}, {"registered": 7.0, "exec": 2.0}
    assert critical_worker([late, early]) is late
    stuck = {"exec": 3.0}
    assert critical_worker([early, stuck, late]) is stuck
    assert critical_worker([]) == {}


def test_phases_are_durations_between_milestones_and_skip_runs_missing_one() -> None:
    runs = [{"t0": 0.0, "request": 0.1, "workers": 4.0}, {"t0": 10.0, "workers": 16.0}]
    table = dict(phase_table(runs))
    assert table["client: KubeCluster() -> request created"] == pytest.approx([0.1])
    assert table["total: KubeCluster() -> 2 workers"] == pytest.approx([4.0, 6.0])
    assert table["worker: Nanny -> worker process listening"] == []


def test_a_variant_reads_environment_worker_flags_namespace_and_pod_fields() -> None:
    variant = Variant.parse("fast=DASK_A=fork,DASK_B=x=y,--no-dashboard,ns:team-b,"
                            "pod.automount_service_account_token=false")
    assert variant == Variant("fast", {"DASK_A": "fork", "DASK_B": "x=y"}, ["--no-dashboard"], "team-b",
                              {"automount_service_account_token": False})
    assert Variant.parse("plain=") == Variant("plain", {}, [])


@pytest.mark.parametrize(("text", "problem"), [("=DASK_A=1", "give it a name"),
                                               ("x=oops", "neither KEY=VALUE")])
def test_a_malformed_variant_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Variant.parse(text)


def test_the_probe_reports_its_client_import_seconds_beside_the_total() -> None:
    from benchmarks import coldstart_probe
    from benchmarks.scenarios import PROBE_IMPORT_MARKER, PROBE_MARKER, parse_probe_output

    assert coldstart_probe.IMPORT_MARKER == PROBE_IMPORT_MARKER
    out = f"progress without a newline\n{PROBE_IMPORT_MARKER}0.612\n{PROBE_MARKER}6.950\n"
    assert parse_probe_output(out) == 6.95
    assert parse_probe_output(out, PROBE_IMPORT_MARKER) == 0.612
    assert parse_probe_output(f"{PROBE_MARKER}6.950\n", PROBE_IMPORT_MARKER) is None  # an older probe
