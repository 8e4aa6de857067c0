"""What this process did that the API server's answers may not show yet.

Pods this process created but has not yet seen listed are counted as existing, and pods it deleted as
gone, until they show up (or a deadline passes), so neither a slow watch nor a lagging read can cause a
duplicate create. A restarted controller starts with none and relies on the consistent LIST, which
includes every pod whose create reached the API server before the crash.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from kubedask.spec import DEFAULT_GROUP

from .clock import Clock
from .reconcile import PodInfo


class Expectations:
    def __init__(self, clock: Clock, timeout: float) -> None:
        self.clock = clock
        #: How long an unseen create / delete is trusted before the LIST is believed instead.
        self.timeout = timeout
        self._creates: dict[str, tuple[float, str]] = {}  # pod name -> (monotonic deadline, worker group)
        self._deletes: dict[str, float] = {}

    def created(self, names: Iterable[str], group: str = DEFAULT_GROUP) -> None:
        """Expect these pods (workers of ``group``) to exist; called before the creates are sent, so a crash
        mid-way is covered by the next LIST."""
        deadline = self.clock.monotonic() + self.timeout
        self._creates.update(dict.fromkeys(names, (deadline, group)))

    def not_created(self, name: str) -> None:
        """The create failed or was never sent."""
        self._creates.pop(name, None)

    def deleted(self, names: Iterable[str]) -> None:
        deadline = self.clock.monotonic() + self.timeout
        self._deletes.update(dict.fromkeys(names, deadline))

    def not_deleted(self, name: str) -> None:
        """The delete failed: the pod is there until a LIST says otherwise."""
        self._deletes.pop(name, None)

    def seen(self, name: str, deleting: bool) -> None:
        """A watch event about the pod: it exists (or existed) on the API server, and if it is deleting,
        the delete has landed. A pod created and deleted again between two LISTs is met this way."""
        self._creates.pop(name, None)
        if deleting:
            self._deletes.pop(name, None)

    def overdue(self) -> bool:
        """Whether an expectation outlived its deadline unmet: the watch may have missed it, so the next
        pass must read what exists rather than trust a view the watch keeps."""
        now = self.clock.monotonic()
        return any(d < now for d, _ in self._creates.values()) or any(d < now for d in self._deletes.values())

    @property
    def pending(self) -> tuple[frozenset[str], frozenset[str]]:
        """(creates, deletes) still unmet, for tests and debugging."""
        return frozenset(self._creates), frozenset(self._deletes)

    def overlay(self, listed: Mapping[str, PodInfo]) -> dict[str, PodInfo]:
        """The listed workers as this process expects them; met and expired expectations are dropped."""
        now = self.clock.monotonic()
        workers = dict(listed)
        for name, (deadline, group) in list(self._creates.items()):
            if name in workers or deadline < now:
                del self._creates[name]
            else:
                workers[name] = PodInfo(name=name, group=group)
        for name, deadline in list(self._deletes.items()):
            info = workers.get(name)
            if info is None or info.deleting or deadline < now:
                del self._deletes[name]
            else:
                workers[name] = dataclasses.replace(info, deleting=True)
        return workers
