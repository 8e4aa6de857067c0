"""KubeCluster's settings: each explicit argument, else its classic ``kubernetes.*`` Dask config key.

Example:
    >>> options = ClusterOptions.resolve(name="analysis", deploy_mode="local",
    ...                                  pod_template={"spec": {"containers": [{"image": "i"}]}})
    >>> options.name, options.deploy_mode
    ('analysis', 'local')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import config as kconfig
from .naming import render_name, validate_name
from .templates import PodTemplate, load_pod_template, template_from_config


@dataclass(frozen=True)
class ClusterOptions:
    """The resolved settings of one KubeCluster (see :class:`~kubedask.KubeCluster` for their meaning)."""

    #: The request's name: given, or rendered from the name template.
    name: str
    worker_template: dict[str, Any] | None
    scheduler_template: dict[str, Any] | None
    namespace: str | None
    env: dict[str, Any]
    host: str | None
    port: int
    interface: str | None
    protocol: str
    dashboard_address: str | None
    n_workers: int
    idle_timeout: str | float | None
    deploy_mode: str
    service_type: str | None
    service_wait_timeout: float
    dns_retries: int
    controller_timeout: float
    heartbeat_timeout: float
    close_timeout: float
    apply_default_affinity: str
    #: Named worker groups: group name -> (Pod manifest, workers).
    worker_groups: dict[str, tuple[dict[str, Any], int]] = field(default_factory=dict)

    @classmethod
    def resolve(
        cls,
        *,
        name: str | None = None,
        attach: bool = False,
        pod_template: PodTemplate | None = None,
        scheduler_pod_template: PodTemplate | None = None,
        namespace: str | None = None,
        env: Any = None,
        host: str | None = None,
        port: int | None = None,
        interface: str | None = None,
        protocol: str | None = None,
        dashboard_address: str | None = None,
        n_workers: int | None = None,
        idle_timeout: str | float | None = None,
        deploy_mode: str | None = None,
        scheduler_service_type: str | None = None,
        scheduler_service_wait_timeout: float | None = None,
        scheduler_service_name_resolution_retries: int | None = None,
        controller_timeout: float | None = None,
        client_heartbeat_timeout: float | None = None,
        apply_default_affinity: str = "preferred",
        worker_groups: Mapping[str, Any] | None = None,
    ) -> ClusterOptions:
        """Fill every setting from its argument or the Dask config; refuse values that cannot work.

        ``attach`` (``from_name``) needs the exact name of an existing cluster and no template.
        """
        worker = template_from_config(pod_template, "worker")
        if worker is None and not attach:
            raise ValueError(
                "Worker pod specification not provided: pass a pod template (make_pod_spec(...), a dict or a "
                "YAML path) or set kubernetes.worker-template / kubernetes.worker-template-path"
            )
        if attach:
            if name is None:
                raise ValueError("from_name needs the name of an existing cluster")
            validate_name(name)
        else:
            name = render_name(name if name is not None else (kconfig.get("worker-name") or kconfig.get("name")))
        options = cls(
            name=name,
            worker_template=worker,
            scheduler_template=template_from_config(scheduler_pod_template, "scheduler"),
            namespace=kconfig.get("namespace", namespace),
            env=dict(kconfig.get("env", env) or {}),
            host=kconfig.get("host", host),
            port=int(kconfig.get("port", port) or 0),
            interface=kconfig.get("interface", interface),
            protocol=kconfig.get("protocol", protocol),
            dashboard_address=kconfig.get("dashboard_address", dashboard_address),
            n_workers=int(kconfig.get("count.start", n_workers) or 0),
            idle_timeout=kconfig.get("idle-timeout", idle_timeout),
            deploy_mode=kconfig.get("deploy-mode", deploy_mode),
            service_type=kconfig.get("scheduler-service-type", scheduler_service_type),
            service_wait_timeout=float(
                kconfig.get("scheduler-service-wait-timeout", scheduler_service_wait_timeout) or 0),
            dns_retries=int(kconfig.get(
                "scheduler-service-name-resolution-retries", scheduler_service_name_resolution_retries)),
            controller_timeout=float(kconfig.get("controller-timeout", controller_timeout)),
            heartbeat_timeout=float(kconfig.get("client-heartbeat-timeout", client_heartbeat_timeout)),
            close_timeout=float(kconfig.get("close-timeout")),
            apply_default_affinity=apply_default_affinity,
            worker_groups=_groups(worker_groups),
        )
        if options.deploy_mode not in ("remote", "local"):
            raise ValueError(f"deploy_mode must be 'remote' or 'local', not {options.deploy_mode!r}")
        if apply_default_affinity not in ("preferred", "required", "none"):
            raise ValueError('apply_default_affinity must be one of "none", "preferred" or "required"')
        return options


def _groups(groups: Mapping[str, Any] | None) -> dict[str, tuple[dict[str, Any], int]]:
    """``worker_groups=`` as (Pod manifest, workers) per group: a template alone means no workers yet."""
    resolved = {}
    for group, value in (groups or {}).items():
        template, n = value if isinstance(value, tuple) else (value, 0)
        loaded = load_pod_template(template)
        if loaded is None:
            raise ValueError(f"worker group {group!r} needs a pod template (make_pod_spec(...), a dict or a path)")
        resolved[str(group)] = (loaded, int(n))
    return resolved
