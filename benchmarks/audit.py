"""Counting a client's API requests from the API server's audit log (the local cluster writes one).

The audit log is the API server's own record, so it counts what a controller really sent, including
requests its libraries make behind its back (Kopf's watches, kr8s' lookups). Each request appears once
per stage (ResponseStarted for watches, ResponseComplete); :func:`count` dedupes by ``auditID``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
READ_VERBS = frozenset({"get", "list", "watch"})


@dataclasses.dataclass
class Usage:
    """One client's requests in a window."""

    reads: int = 0
    writes: int = 0
    #: Of the reads, the WATCH calls (long-lived streams, not per-object work).
    watches: int = 0
    #: "verb resource" -> count, e.g. "patch configmaps", "update leases".
    by_call: Counter[str] = dataclasses.field(default_factory=Counter)
    #: LIST/WATCH calls on pods or configmaps without a label selector: they load unrelated objects.
    unselected_list_watch: Counter[str] = dataclasses.field(default_factory=Counter)

    @property
    def lease_writes(self) -> int:
        return sum(n for call, n in self.by_call.items()
                   if call.split()[0] in WRITE_VERBS and call.endswith(" leases"))

    @property
    def lease_requests(self) -> int:
        return sum(n for call, n in self.by_call.items() if call.endswith(" leases"))

    def per_worker(self, workers: int) -> dict[str, Any]:
        """Requests per worker created, WATCH calls excluded (each is one stream, however many events it
        carries); also without leader election's Lease calls, a timer rather than per-worker work."""
        requests = self.reads + self.writes - self.watches
        return {
            "workers": workers, "requests": requests, "writes": self.writes, "watches": self.watches,
            "requests_per_worker": round(requests / workers, 3) if workers else None,
            "requests_per_worker_excluding_leases":
                round((requests - self.lease_requests) / workers, 3) if workers else None,
            "writes_per_worker": round(self.writes / workers, 3) if workers else None,
            "by_call": dict(sorted((c, n) for c, n in self.by_call.items() if not c.startswith("watch "))),
        }

    def as_dict(self, minutes: float) -> dict[str, Any]:
        per_minute = 1.0 / minutes if minutes > 0 else 0.0
        lease_writes = self.lease_writes
        return {
            "reads": self.reads, "writes": self.writes,
            # Leader election renews a Lease on a timer: a write at rest by design, reported apart.
            "writes_excluding_leases_per_minute": round((self.writes - lease_writes) * per_minute, 2),
            "lease_writes_per_minute": round(lease_writes * per_minute, 2),
            "reads_per_minute": round(self.reads * per_minute, 2),
            "writes_per_minute": round(self.writes * per_minute, 2),
            "by_call": dict(sorted(self.by_call.items())),
            "unselected_list_watch": dict(sorted(self.unselected_list_watch.items())),
        }


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _call(event: dict[str, Any]) -> str:
    ref = event.get("objectRef") or {}
    resource = ref.get("resource") or event.get("requestURI", "?").split("?")[0]
    if ref.get("subresource"):
        resource = f"{resource}/{ref['subresource']}"
    return f"{event.get('verb', '?')} {resource}"


def _has_label_selector(uri: str) -> bool:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)
    return bool(query.get("labelSelector", [""])[0])


def count(events: Iterable[dict[str, Any]], users: Iterable[str],
          start: dt.datetime | None = None, end: dt.datetime | None = None) -> dict[str, Usage]:
    """Each user's requests received in ``[start, end)`` (open bounds when None)."""
    wanted = set(users)
    result = {u: Usage() for u in wanted}
    seen: set[str] = set()
    for event in events:
        user = (event.get("user") or {}).get("username")
        if user not in wanted:
            continue
        audit_id = event.get("auditID", "")
        if audit_id in seen:
            continue
        received = event.get("requestReceivedTimestamp")
        if received and (start or end):
            at = parse_time(received)
            if (start and at < start) or (end and at >= end):
                continue
        seen.add(audit_id)
        usage = result[user]
        verb = event.get("verb", "")
        call = _call(event)
        usage.by_call[call] += 1
        if verb in WRITE_VERBS:
            usage.writes += 1
        elif verb in READ_VERBS:
            usage.reads += 1
            usage.watches += verb == "watch"
        resource = (event.get("objectRef") or {}).get("resource")
        if verb in ("list", "watch") and resource in ("pods", "configmaps") \
                and not _has_label_selector(event.get("requestURI", "")):
            usage.unselected_list_watch[call] += 1
    return result


def read_events(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue  # a line still being written when we read


@dataclasses.dataclass(frozen=True)
class Mark:
    inode: int
    offset: int


class AuditLog:
    """The audit log of a local-cluster instance, read incrementally from a remembered mark."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> Mark:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return Mark(0, 0)
        return Mark(stat.st_ino, stat.st_size)

    def events_since(self, mark: Mark) -> Iterator[dict[str, Any]]:
        current = self.mark()
        offset = mark.offset
        if mark.inode and current.inode != mark.inode:
            # Rotated since the mark: the API server renamed the marked file to audit-<time>.log.
            for backup in self.path.parent.glob(f"{self.path.stem}-*{self.path.suffix}"):
                if backup.stat().st_ino == mark.inode:
                    yield from self._read(backup, offset)
            offset = 0
        yield from self._read(self.path, offset)

    @staticmethod
    def _read(path: Path, offset: int) -> Iterator[dict[str, Any]]:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            # A mark falls between lines unless a line was half written; read_events skips that half.
            handle.seek(offset)
            yield from read_events(handle)
