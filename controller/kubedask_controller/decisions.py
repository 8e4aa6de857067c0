"""Adaptive scaling, idle and heartbeat decisions between passes. Pure: time comes in as an argument."""

from __future__ import annotations

import dataclasses

from kubedask.spec import AdaptSpec, ClusterRequest


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
