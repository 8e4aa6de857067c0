"""What exists for one request, read from the API server and sorted by :func:`observe.observe`.

The pods are a consistent LIST by the cluster's label (not the possibly-stale watch cache), the Service
and PDB are read by name; what this process did that the LIST may not show yet comes from the
:class:`Expectations` overlay, which the pod watch (:meth:`seen`) settles. Workers the scheduler retired
are marked so that they are deleted, never replaced.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kubedask.spec import ClusterRequest, scheduler_name

from . import builders
from .api import ClusterApi
from .expectations import Expectations
from .observe import Observation, observe, owned_by
from .retirement import Retirement

Body = dict[str, Any]


class Observer:
    def __init__(self, kube: ClusterApi, namespace: str, name: str, uid: str | None,
                 expectations: Expectations, retirement: Retirement) -> None:
        self.kube, self.namespace, self.name, self.uid = kube, namespace, name, uid
        self.expectations, self.retirement = expectations, retirement

    def seen(self, event_type: str | None, pod: Body) -> None:
        """A pod event from the watch: settles what this process expects of its own pods."""
        if owned_by(pod, self.uid):
            deleting = event_type == "DELETED" or bool(pod["metadata"].get("deletionTimestamp"))
            self.expectations.seen(pod["metadata"]["name"], deleting)

    async def observe(self, request: ClusterRequest) -> Observation:
        pods = await self.kube.list_pods(self.namespace, builders.selector_string(self.name))
        service = pdb = None
        if request.deploy_mode == "remote":
            service, pdb = await asyncio.gather(self.kube.get_service(self.namespace, scheduler_name(self.name)),
                                                self.kube.get_pdb(self.namespace, scheduler_name(self.name)))
        self.retirement.forget_gone(p["metadata"]["name"] for p in pods)
        return observe(self.name, self.uid, pods, self.expectations, service, pdb,
                       retired=frozenset(self.retirement.retired), retiring=self.retirement.in_flight)
