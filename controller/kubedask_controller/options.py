"""Runtime options, from command-line flags (``python -m kubedask_controller``) or the environment
(``kopf run -m kubedask_controller``, the Helm chart). One dataclass so both entry points agree."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from typing import Any

from .leader import timing_error


@dataclasses.dataclass(frozen=True)
class Options:
    policy_file: str | None = None
    health_port: int | None = 8080
    metrics_port: int | None = 9090
    bind_host: str = "0.0.0.0"
    leader_election: bool = True
    lease_namespace: str = "default"
    lease_name: str = "kubedask-controller"
    resync_interval: float = 300.0
    #: Where the controller itself runs (its policy and Lease live there); never served.
    own_namespace: str | None = None
    #: Leader election (``leader.py``): a standby takes over after seeing the Lease unchanged this long...
    lease_duration: float = 30.0
    #: ...the holder stops acting this long after its last successful renewal was sent...
    lease_renew_deadline: float = 25.0
    #: ...renews this often at rest (15 s: 4 writes a minute)...
    lease_renew_period: float = 15.0
    #: ...and retries a failed renewal (a standby reads the Lease) this often.
    lease_retry_period: float = 2.0

    def __post_init__(self) -> None:
        error = timing_error(self.lease_duration, self.lease_renew_deadline, self.lease_renew_period,
                             self.lease_retry_period)
        if error:
            raise ValueError(f"{error} (KUBEDASK_LEASE_DURATION, KUBEDASK_LEASE_RENEW_DEADLINE, "
                             f"KUBEDASK_LEASE_RENEW_PERIOD, KUBEDASK_LEASE_RETRY_PERIOD)")

    @property
    def lease_timing(self) -> dict[str, Any]:
        """The :class:`leader.LeaderElector` keywords for these durations."""
        return {"lease_duration": self.lease_duration, "renew_deadline": self.lease_renew_deadline,
                "renew_period": self.lease_renew_period, "retry_period": self.lease_retry_period}

    def served_namespace_error(self, namespaces: Iterable[str]) -> str | None:
        """Why serving ``namespaces`` is refused, if it is: users of a served namespace may write
        ConfigMaps there, and in the controller's own namespace that would reach its policy and Lease."""
        if self.own_namespace and self.own_namespace in namespaces:
            return (f"namespace {self.own_namespace!r} is the controller's own (its policy and Lease live there) "
                    f"and cannot be served: remove it from the served namespaces and let users create requests "
                    f"in a namespace of their own")
        return None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Options:
        env = os.environ if environ is None else environ

        def port(name: str, default: int | None) -> int | None:
            raw = env.get(name)
            if raw is None:
                return default
            return int(raw) if raw.strip() and raw.strip() != "0" else None

        own_namespace = env.get("POD_NAMESPACE") or None
        return cls(
            own_namespace=own_namespace,
            policy_file=env.get("KUBEDASK_POLICY_FILE") or None,
            health_port=port("KUBEDASK_HEALTH_PORT", 8080),
            metrics_port=port("KUBEDASK_METRICS_PORT", 9090),
            bind_host=env.get("KUBEDASK_BIND_HOST", "0.0.0.0"),
            leader_election=env.get("KUBEDASK_LEADER_ELECTION", "true").lower() not in ("0", "false", "no"),
            lease_namespace=env.get("KUBEDASK_LEASE_NAMESPACE") or own_namespace or "default",
            lease_name=env.get("KUBEDASK_LEASE_NAME", "kubedask-controller"),
            resync_interval=float(env.get("KUBEDASK_RESYNC_INTERVAL", "300")),
            lease_duration=float(env.get("KUBEDASK_LEASE_DURATION") or cls.lease_duration),
            lease_renew_deadline=float(env.get("KUBEDASK_LEASE_RENEW_DEADLINE") or cls.lease_renew_deadline),
            lease_renew_period=float(env.get("KUBEDASK_LEASE_RENEW_PERIOD") or cls.lease_renew_period),
            lease_retry_period=float(env.get("KUBEDASK_LEASE_RETRY_PERIOD") or cls.lease_retry_period),
        )
