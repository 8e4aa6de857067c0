"""Why a scheduler pod can't start, as the user will read it in the error."""

from __future__ import annotations

from kubedask.diagnostics import explain, fatal_reason, format_events, tail


def waiting(reason: str, message: str = "") -> dict[str, object]:
    return {
        "status": {
            "phase": "Pending",
            "containerStatuses": [{"state": {"waiting": {"reason": reason, "message": message}}}],
        }
    }


def test_image_pull_failures_are_fatal_and_quoted() -> None:
    assert fatal_reason(waiting("ErrImagePull", "pull access denied")) == "ErrImagePull: pull access denied"
    assert fatal_reason(waiting("ImagePullBackOff")) == "ImagePullBackOff"


def test_pods_that_may_still_start_are_not_fatal() -> None:
    assert fatal_reason(waiting("ContainerCreating")) is None
    assert fatal_reason({"status": {"phase": "Pending"}}) is None


def test_a_failed_pod_reports_its_exit_code() -> None:
    pod = {
        "status": {
            "phase": "Failed",
            "containerStatuses": [{"state": {"terminated": {"exitCode": 1, "reason": "Error"}}}],
        }
    }
    assert fatal_reason(pod) == "the pod failed: exit code 1 (Error)"


def test_events_are_listed_oldest_first_and_bounded() -> None:
    events = [
        {
            "type": "Warning",
            "reason": f"R{i}",
            "message": f"m{i}",
            "lastTimestamp": f"2026-01-01T00:00:{i:02d}Z",
        }
        for i in range(15)
    ]
    text = format_events(reversed(events), limit=3)
    assert text.splitlines() == ["  Warning R12: m12", "  Warning R13: m13", "  Warning R14: m14"]


def test_explanation_contains_reason_events_and_log_tail() -> None:
    text = explain("c-scheduler", "ErrImagePull: nope", "  Warning Failed: nope", tail("a\nb\nc", lines=2))
    assert text == "pod c-scheduler: ErrImagePull: nope\nevents:\n  Warning Failed: nope\nlog tail:\n  b\n  c"
