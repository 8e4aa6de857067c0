"""Counting a controller's requests from audit events."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from benchmarks import audit

CONTROLLER = "system:serviceaccount:kube-system:bench-kubedask"


def event(verb: str, resource: str, *, user: str = CONTROLLER, audit_id: str | None = None,
          at: str = "2026-11-27T10:00:30.000000Z", uri: str | None = None, stage: str = "ResponseComplete"
          ) -> dict[str, Any]:
    return {
        "auditID": audit_id or f"{verb}-{resource}-{at}-{user}", "stage": stage, "verb": verb,
        "user": {"username": user}, "userAgent": "kubedask-controller/0.1",
        "objectRef": {"resource": resource, "namespace": "bench"},
        "requestURI": uri or f"/api/v1/namespaces/bench/{resource}", "requestReceivedTimestamp": at,
    }


def test_reads_and_writes_are_counted_per_user_and_call() -> None:
    events = [event("list", "pods", uri="/api/v1/namespaces/bench/pods?labelSelector=a%3Db"),
              event("patch", "configmaps"), event("create", "pods", audit_id="x1"),
              event("create", "pods", audit_id="x2"), event("get", "pods", user="someone-else")]
    usage = audit.count(events, [CONTROLLER])[CONTROLLER]
    assert (usage.reads, usage.writes) == (1, 3)
    assert usage.by_call == {"list pods": 1, "patch configmaps": 1, "create pods": 2}


def test_a_watch_logged_at_two_stages_counts_once() -> None:
    started = event("watch", "pods", audit_id="w", stage="ResponseStarted")
    finished = event("watch", "pods", audit_id="w", stage="ResponseComplete")
    usage = audit.count([started, finished], [CONTROLLER])[CONTROLLER]
    assert usage.reads == 1


def test_only_requests_received_inside_the_window_count() -> None:
    start = dt.datetime(2026, 11, 27, 10, 0, 0, tzinfo=dt.UTC)
    end = start + dt.timedelta(minutes=1)
    events = [event("update", "leases", at="2026-11-27T09:59:59.999Z"),
              event("update", "leases", at="2026-11-27T10:00:00.000Z"),
              event("update", "leases", at="2026-11-27T10:01:00.000Z")]
    usage = audit.count(events, [CONTROLLER], start, end)[CONTROLLER]
    assert usage.writes == 1


def test_list_and_watch_without_label_selector_on_pods_or_configmaps_are_flagged() -> None:
    events = [event("list", "configmaps", uri="/api/v1/namespaces/bench/configmaps?limit=500"),
              event("watch", "pods", uri="/api/v1/namespaces/bench/pods?watch=true"),
              event("watch", "pods", uri="/api/v1/namespaces/bench/pods?labelSelector=x&watch=true"),
              event("list", "services", uri="/api/v1/namespaces/bench/services")]
    usage = audit.count(events, [CONTROLLER])[CONTROLLER]
    assert usage.unselected_list_watch == {"list configmaps": 1, "watch pods": 1}


def test_rates_per_minute_set_lease_renewals_apart() -> None:
    usage = audit.count([event("update", "leases", audit_id=str(i)) for i in range(6)]
                        + [event("get", "leases", audit_id="g")], [CONTROLLER])[CONTROLLER]
    report = usage.as_dict(minutes=2)
    assert report["writes_per_minute"] == 3.0
    assert report["writes_excluding_leases_per_minute"] == 0.0
    assert report["reads_per_minute"] == 0.5


def test_audit_log_is_read_from_a_mark_and_survives_rotation(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text(json.dumps(event("get", "pods", audit_id="old")) + "\n")
    reader = audit.AuditLog(log)
    mark = reader.mark()
    with log.open("a") as handle:
        handle.write(json.dumps(event("get", "pods", audit_id="new")) + "\n")
    assert [e["auditID"] for e in reader.events_since(mark)] == ["new"]

    # The API server renames the full log to audit-<time>.log and starts a new, shorter one.
    log.rename(tmp_path / "audit-2026-11-27T10-00-00.000.log")
    log.write_text(json.dumps(event("get", "pods", audit_id="after")) + "\n")
    assert [e["auditID"] for e in reader.events_since(mark)] == ["new", "after"]


def test_a_half_written_last_line_is_skipped() -> None:
    lines = [json.dumps(event("get", "pods", audit_id="a")), '{"auditID": "b", "verb": "ge']
    assert [e["auditID"] for e in audit.read_events(lines)] == ["a"]
