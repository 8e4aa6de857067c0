"""Cluster discovery for dask-ctl (``dask cluster list / scale / delete``) and the JupyterLab sidebar.

dask-ctl finds clusters through the ``dask_cluster_discovery`` entry point: an async generator
``discover()`` yielding ``(name, cluster_class)``, after which it calls ``cluster_class.from_name(name)``
(with the name alone) and uses ``.scale(n)`` and ``.close()`` (its ``delete``) on the result. kubedask's
requests live in namespaces, so discovered names are ``NAMESPACE/NAME``: :class:`DiscoveredKubeCluster`
reads the namespace back from the name, and, because ``dask cluster delete`` is ``close()``, deletes the
cluster when closed.

Example:
    >>> async def names():  # doctest: +SKIP
    ...     return [name async for name, _ in discover()]
    >>> asyncio.run(names())  # doctest: +SKIP
    ['team-a/analysis', 'team-a/etl']
    >>> DiscoveredKubeCluster.from_name("team-a/analysis").scale(5)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from .auth import ClusterAuth, LoadedAuth
from .cli.context import ClusterKube, KubeClusterApi
from .cluster import KubeCluster

logger = logging.getLogger(__name__)


def qualified_name(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def split_name(name: str) -> tuple[str | None, str]:
    """``"team-a/analysis"`` -> ``("team-a", "analysis")``; a bare name keeps the default namespace (None)."""
    namespace, _, short = name.rpartition("/")
    return namespace or None, short


class DiscoveredKubeCluster(KubeCluster):
    """A kubedask cluster as dask-ctl handles it: named ``NAMESPACE/NAME``, deleted by ``close()``.

    Example:
        >>> cluster = DiscoveredKubeCluster.from_name("team-a/analysis")  # doctest: +SKIP
        >>> cluster.close()  # deletes the cluster, as `dask cluster delete team-a/analysis` means  # doctest: +SKIP
    """

    @classmethod
    def from_name(cls, name: str, namespace: str | None = None, **kwargs: Any) -> DiscoveredKubeCluster:
        found, short = split_name(name)
        cluster = super().from_name(short, namespace=namespace or found, **kwargs)
        assert isinstance(cluster, DiscoveredKubeCluster)
        # dask-ctl lists cluster.name and looks the same string up again for scale and delete.
        cluster.name = qualified_name(str(cluster.namespace), short)
        return cluster

    def close(self, timeout: float | None = None) -> Any:
        # dask-ctl has no other way to say "delete": `dask cluster delete NAME` is from_name(NAME).close().
        self.shutdown_on_close = True
        return super().close(timeout)


KubeFactory = Callable[[LoadedAuth], ClusterKube]


async def discover(kube_factory: KubeFactory | None = None) -> AsyncIterator[tuple[str, type[KubeCluster]]]:
    """Yield ``("NAMESPACE/NAME", DiscoveredKubeCluster)`` for every kubedask cluster the user can see.

    All namespaces when the user may list ConfigMaps at the cluster scope, else the namespace of their
    context (or service account). Without any Kubernetes configuration there is nothing to discover; an
    API server that refuses even the user's own namespace is an error (dask-ctl reports it).
    """
    try:
        loaded = await asyncio.to_thread(ClusterAuth.load_first)
    except ConfigException as e:
        logger.debug("kubedask discovery: no Kubernetes configuration (%s)", e)
        return
    kube = (kube_factory or (lambda auth: KubeClusterApi(auth.configuration)))(loaded)
    try:
        try:
            requests = await kube.list_requests(None)
        except ApiException as e:
            if e.status not in (401, 403):
                raise
            requests = await kube.list_requests(loaded.namespace or "default")
    finally:
        kube.close()
    for request in sorted(requests, key=lambda r: (r["metadata"].get("namespace", ""), r["metadata"]["name"])):
        metadata = request["metadata"]
        yield qualified_name(str(metadata.get("namespace") or loaded.namespace or "default"),
                             str(metadata["name"])), DiscoveredKubeCluster
