"""A scale-down through the scheduler, run beside the request's passes, bounded in time.

Asking the scheduler to retire workers can take minutes (their data moves first), so it runs as its own
task: the driver keeps reconciling, repairing and writing status meanwhile, counting the workers being
retired as leaving (:attr:`Observed.retiring`) so that it neither replaces them nor retires more.

Either the scheduler chooses which workers go (the cluster's only group is scaled down: any worker it picks
is one of the candidates), or the controller does (a named group is scaled down while others run, or a
rolling update replaces chosen workers): then the scheduler lists its workers, the first ``count``
candidates it knows are picked, and it retires exactly those, by address (pod IP -> worker address).

What the scheduler retired is remembered (:attr:`Retirement.retired`): those pods are deleted and never
replaced, whatever happens to the delete. When the scheduler cannot be asked, does not answer within the
timeout, or knows none of the candidates, nothing is deleted here: the next pass re-observes (workers that
have exited by then count toward the scale-down) and deletes only what is still in excess, without
asking again (:meth:`Retirement.take_fallback`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

from .api import SchedulerApi
from .scheduler import RetiredWorker, SchedulerUnavailable

logger = logging.getLogger(__name__)

EventSink = Callable[[str, str, str], Awaitable[None]]


class Retirement:
    def __init__(self, timeout: float, on_done: Callable[[], None]) -> None:
        self.timeout = timeout
        self.on_done = on_done
        #: Workers the scheduler retired; pruned when their pods are gone.
        self.retired: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._count = 0
        self._fallback = False

    @property
    def in_flight(self) -> int:
        """How many workers the retirement under way takes away (0: none under way)."""
        return self._count if self._task is not None and not self._task.done() else 0

    def take_fallback(self) -> bool:
        """Whether the last retirement failed, so this pass's scale-down deletes without asking; asked once
        per pass (a later scale-down asks the scheduler again)."""
        fallback, self._fallback = self._fallback, False
        return fallback

    def forget_gone(self, listed: Iterable[str]) -> None:
        self.retired &= set(listed)

    def start(self, scheduler: SchedulerApi, count: int, candidates: tuple[str, ...], ips: Mapping[str, str],
              event: EventSink, *, chosen: bool = False) -> None:
        """Ask the scheduler, in the background, to retire ``count`` of ``candidates`` (``ips``: pod IP ->
        pod name, for schedulers whose worker names are not the pod names): ``count`` of its choosing, or,
        when ``chosen``, the first ``count`` candidates it knows."""
        if self.in_flight:
            return
        self._count = count
        self._task = asyncio.get_running_loop().create_task(
            self._run(scheduler, count, candidates, dict(ips), event, chosen))

    async def _run(self, scheduler: SchedulerApi, count: int, candidates: tuple[str, ...], ips: dict[str, str],
                   event: EventSink, chosen: bool) -> None:
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    if chosen:
                        answer = await _retire_chosen(scheduler, count, candidates, ips)
                    else:
                        answer = await scheduler.retire_workers(count)
            except (SchedulerUnavailable, TimeoutError) as exc:
                why = str(exc) or f"no answer within {self.timeout:.0f} s"
                self._fallback = True
                await event("RetireFailed", f"could not retire {count} workers through the scheduler ({why}); the "
                            "next pass deletes only the workers still in excess, without moving their data", "Warning")
                return
            names: list[str] = []
            for worker in answer:
                name = worker.name if worker.name in candidates else ips.get(worker.host or "")
                if name in candidates and name not in names:
                    names.append(name)
            if not names:
                # The scheduler knows none of the candidates (not connected yet): they hold no data.
                self._fallback = True
                return
            self.retired.update(names[:count])
            await event("WorkersRetired", f"scheduler retired {len(names[:count])} workers: {', '.join(names[:count])}",
                        "Normal")
        except Exception as exc:  # an Event that could not be posted: the retired set is what matters
            logger.warning("retirement: %s", exc)
        finally:
            self._count = 0
            self.on_done()  # the next pass deletes the retired pods, or falls back

    async def finished(self) -> None:
        """Until the retirement under way (if any) is over."""
        if self._task is not None:
            await asyncio.shield(self._task)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def _retire_chosen(scheduler: SchedulerApi, count: int, candidates: tuple[str, ...],
                         ips: Mapping[str, str]) -> list[RetiredWorker]:
    """Retire the first ``count`` of ``candidates`` that the scheduler knows, by their worker addresses (a
    worker is a candidate's by its name, else by the host of its address, the pod IP)."""
    addresses: dict[str, str] = {}
    for worker in await scheduler.workers():
        name = worker.name if worker.name in candidates else ips.get(worker.host or "")
        if name in candidates:
            addresses.setdefault(name, worker.address)
    picked = [addresses[name] for name in candidates if name in addresses][:count]
    return await scheduler.retire_addresses(picked) if picked else []
