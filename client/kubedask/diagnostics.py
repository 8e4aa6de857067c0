"""Explaining why a pod does not run: its fatal waiting reasons, its events and the tail of its log.

Pure functions over pod / event manifests (dicts, as the API returns them), so they are unit-testable.

Example:
    >>> fatal_reason({"status": {"containerStatuses": [{"state": {"waiting": {
    ...     "reason": "ErrImagePull", "message": "not found"}}}]}})
    'ErrImagePull: not found'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Waiting reasons that do not resolve on their own within a client's patience. ErrImagePull is included:
# the kubelet retries pulls, but an unreachable registry or a wrong name rarely fixes itself, and the
# user is better served by the event now than by ImagePullBackOff a timeout later.
FATAL_WAITING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "CrashLoopBackOff",
        "RunContainerError",
    }
)


def fatal_reason(pod: Mapping[str, Any]) -> str | None:
    """Why this pod will not become ready by itself, or None while it may still."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Failed", "Succeeded"):
        reason = status.get("reason") or status.get("message") or ""
        for container in status.get("containerStatuses") or []:
            terminated = (container.get("state") or {}).get("terminated")
            if terminated:
                reason = (
                    f"exit code {terminated.get('exitCode')} ({terminated.get('reason') or 'terminated'})"
                )
        return f"the pod {status['phase'].lower()}" + (f": {reason}" if reason else "")
    for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FATAL_WAITING_REASONS:
            message = waiting.get("message") or ""
            return f"{waiting['reason']}: {message}" if message else str(waiting["reason"])
    return None


def format_events(events: Iterable[Mapping[str, Any]], limit: int = 10) -> str:
    """The newest ``limit`` events, one line each, oldest first, like ``kubectl describe``."""

    def when(event: Mapping[str, Any]) -> str:
        return str(
            event.get("lastTimestamp")
            or event.get("eventTime")
            or (event.get("metadata") or {}).get("creationTimestamp")
            or ""
        )

    ordered = sorted(events, key=when)[-limit:]
    return "\n".join(
        f"  {e.get('type', '')} {e.get('reason', '')}: {str(e.get('message', '')).strip()}" for e in ordered
    )


def tail(text: str | None, lines: int = 20) -> str:
    """The last ``lines`` lines of a log, indented for an error message."""
    if not text:
        return ""
    return "\n".join("  " + line for line in text.rstrip().splitlines()[-lines:])


def explain(pod_name: str, reason: str | None, events: str, log_tail: str) -> str:
    """A multi-line explanation for an error message."""
    parts = [f"pod {pod_name}" + (f": {reason}" if reason else "")]
    parts.append("events:\n" + events if events else "events: (none visible)")
    if log_tail:
        parts.append("log tail:\n" + log_tail)
    return "\n".join(parts)
