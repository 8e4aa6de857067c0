"""Kubeconfigs for limited identities: a ServiceAccount's token from the TokenRequest API."""

from __future__ import annotations

from pathlib import Path

from devcluster.cluster import Cluster


def service_account_kubeconfig(
    cluster: Cluster, namespace: str, name: str, path: Path | None = None, duration: str = "2h"
) -> Path:
    """Create the ServiceAccount if missing and write a kubeconfig that acts as it.

    Example::

        path = service_account_kubeconfig(cluster, "team-a", "alice")
        # KUBECONFIG=path kubectl auth can-i create pods  ->  no (unless RBAC grants it)
    """
    existing = cluster.kubectl("get", "serviceaccount", "-n", namespace, "--ignore-not-found", "-o", "name", name)
    if not existing.strip():
        cluster.kubectl("create", "serviceaccount", "-n", namespace, name)
    token = cluster.kubectl("create", "token", "-n", namespace, name, f"--duration={duration}").strip()
    path = path or cluster.dir / "users" / f"{namespace}.{name}.kubeconfig"
    return cluster.write_kubeconfig(path, f"system:serviceaccount:{namespace}:{name}", {"token": token}, namespace)
