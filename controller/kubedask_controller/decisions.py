"""Adaptive scaling, idle and heartbeat decisions between passes. Pure: time comes in as an argument."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

from kubedask.spec import DEFAULT_GROUP, AdaptSpec, ClusterRequest


@dataclasses.dataclass(frozen=True)
class AdaptState:
    """What the adaptive loop remembers between looks at the scheduler (in memory only)."""

    target: int
    last_scale_down: float = float("-inf")


def adapt_step(spec: AdaptSpec, state: AdaptState, scheduler_target: int | None, now: float,
               max_step: int = 100) -> AdaptState:
    """The next adaptive target: the scheduler's wish clamped to [minimum, maximum], growing by at most
    ``max_step`` at a time and shrinking only after ``cooldown`` seconds since the last shrink."""
    current = min(max(state.target, spec.minimum), spec.maximum)
    if scheduler_target is None:  # scheduler unreachable: hold, but honour the bounds
        return dataclasses.replace(state, target=current)
    wanted = min(max(scheduler_target, spec.minimum), spec.maximum)
    if wanted > current:
        return dataclasses.replace(state, target=min(wanted, current + max_step))
    if wanted < current and now - state.last_scale_down >= spec.cooldown:
        return AdaptState(target=wanted, last_scale_down=now)
    return dataclasses.replace(state, target=current)


class Desired(int):
    """The default group's desired workers (an ``int``, what the plan and status always took) carrying, in
    :attr:`groups`, the adaptive target of every named group with ``adapt.GROUP``."""

    groups: Mapping[str, int]

    def __new__(cls, default: int, groups: Mapping[str, int]) -> Desired:
        desired = super().__new__(cls, default)
        desired.groups = dict(groups)
        return desired

    def __repr__(self) -> str:
        return f"Desired({int(self)}, {self.groups!r})"


def adaptive_groups(request: ClusterRequest) -> Iterator[tuple[str, AdaptSpec]]:
    """``(group, bounds)`` of every adaptive group: the default one first (``adapt``), then by name."""
    if request.adapt is not None:
        yield DEFAULT_GROUP, request.adapt
    for group in request.worker_groups:
        if group.adapt is not None:
            yield group.name, group.adapt


def share_target(request: ClusterRequest, scheduler_target: int) -> dict[str, int]:
    """Each adaptive group's part of the scheduler's adaptive target.

    The scheduler asks for one number of workers for the whole cluster and knows nothing of groups (it counts
    every worker it has). So the fixed-size groups are taken as they are asked for, and what they do not cover
    goes to the adaptive groups: each gets its minimum, and the rest fills them in order, the default group
    first and then the named ones by name, each up to its maximum. A named adaptive group thus grows once the
    groups before it are at their maximum (e.g. GPU workers once the CPU workers are all there).
    """
    adaptive = list(adaptive_groups(request))
    fixed = (0 if request.adapt else request.workers) + sum(g.workers for g in request.worker_groups if not g.adapt)
    left = max(0, scheduler_target - fixed) - sum(bounds.minimum for _, bounds in adaptive)
    shares = {}
    for group, bounds in adaptive:
        extra = min(max(left, 0), bounds.maximum - bounds.minimum)
        shares[group] = bounds.minimum + extra
        left -= extra
    return shares


def shutdown_reason(request: ClusterRequest, *, now: float, idle_since: float | None,
                    heartbeat_silence: float) -> str | None:
    """Why the cluster should shut itself down now, or None.

    ``heartbeat_silence`` is how long this controller, by its own monotonic clock, has seen no change of
    the heartbeat annotation (counted from when it first saw the request, so a client that never wrote
    one, or a controller that just restarted, gets a full timeout first). The heartbeat's value is never
    compared with the controller's clock: a client whose clock runs an hour ahead or behind is reaped
    exactly when a correct one would be.
    """
    if request.idle_timeout is not None and idle_since is not None:
        idle_for = now - idle_since
        if idle_for >= request.idle_timeout:
            return (f"the scheduler has been idle for {int(idle_for)} s (idle-timeout is "
                    f"{int(request.idle_timeout)} s); shutting the cluster down")
    if request.client_heartbeat_timeout is not None and heartbeat_silence >= request.client_heartbeat_timeout:
        return (f"no client heartbeat for {int(heartbeat_silence)} s (client-heartbeat-timeout is "
                f"{int(request.client_heartbeat_timeout)} s); the client is gone, reaping the cluster")
    return None
