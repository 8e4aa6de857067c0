# mypy: disallow-untyped-calls=False
# (the kubernetes client has no type hints; calling it is the point here.)
"""What every subcommand works with: the API, the namespace to act in, the output streams, and the
translation of API failures into the one-line errors kubectl users expect.

Reading requests across namespaces is the one thing the client's per-namespace
:class:`~kubedask.kube.Api` does not do, so :class:`ClusterKube` adds it beside one ``Api`` per namespace.

Example:
    >>> explain_api_error("list configmaps at the cluster scope", ApiException(status=403, reason="Forbidden"))
    CliError('cannot list configmaps at the cluster scope: Forbidden (HTTP 403); list one namespace with -n NAMESPACE')
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from kubernetes import client
from kubernetes.client import Configuration
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError

from .. import spec
from ..auth import ClusterAuth, InCluster, KubeConfig, LoadedAuth
from ..kube import Api, KubeApi, Manifest


class CliError(Exception):
    """A failure the user must see: printed as one line on stderr, exit code 1."""

    def __repr__(self) -> str:
        return f"CliError({str(self)!r})"


class ClusterKube(Protocol):
    """The CLI's view of the API: request listing in one or all namespaces, and an ``Api`` per namespace."""

    configuration: Configuration | None

    def api(self, namespace: str) -> Api: ...
    async def list_requests(self, namespace: str | None) -> list[Manifest]: ...
    def close(self) -> None: ...


class KubeClusterApi:
    """The real :class:`ClusterKube` over one loaded configuration."""

    def __init__(self, configuration: Configuration) -> None:
        self.configuration: Configuration | None = configuration
        self._apis: dict[str, KubeApi] = {}
        self._client = client.ApiClient(configuration)
        self._core = client.CoreV1Api(self._client)

    def api(self, namespace: str) -> Api:
        if namespace not in self._apis:
            assert self.configuration is not None
            self._apis[namespace] = KubeApi(self.configuration, namespace)
        return self._apis[namespace]

    async def list_requests(self, namespace: str | None) -> list[Manifest]:
        """Request ConfigMaps (server-side label selector) of ``namespace``, or of all namespaces if None."""
        if namespace is None:
            call: Callable[..., Any] = self._core.list_config_map_for_all_namespaces
            args: tuple[Any, ...] = ()
        else:
            call, args = self._core.list_namespaced_config_map, (namespace,)
        response = await asyncio.to_thread(
            call, *args, label_selector=spec.REQUEST_SELECTOR, _preload_content=False)
        items: list[Manifest] = json.loads(response.data).get("items") or []
        return items

    def close(self) -> None:
        for api in self._apis.values():
            api.close()
        self._client.close()


def load_auth(kubeconfig: str | None, context: str | None) -> LoadedAuth:
    """Like kubectl: ``--kubeconfig``/``--context`` if given, else ``$KUBECONFIG`` or ``~/.kube/config``,
    else the pod's service account. Credentials are never written back to the user's file."""
    methods: list[ClusterAuth] = [KubeConfig(kubeconfig, context, persist_config=False)]
    if kubeconfig is None and context is None:
        methods.append(InCluster())
    try:
        return ClusterAuth.load_first(methods)
    except ConfigException as e:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise CliError(f"cannot load the Kubernetes configuration ({where}): {one_line(str(e))}") from None


def one_line(text: str) -> str:
    return " ".join(text.split())


def api_message(e: ApiException) -> str:
    """The API server's own sentence (``Status.message``) when it sent one, else the HTTP reason."""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        message = json.loads(e.body or "").get("message")
        if message:
            return one_line(str(message))
    return f"{e.reason or 'error'} (HTTP {e.status})"


def explain_api_error(what: str, e: ApiException) -> CliError:
    """``cannot WHAT: <the server's reason>`` plus what to do, for the common refusals."""
    message = f"cannot {what}: {api_message(e)}"
    if e.status == 401:
        message += "; the credentials were refused: renew them (e.g. a new token) or pick another --context"
    elif e.status == 403 and "cluster scope" in what:
        message += "; list one namespace with -n NAMESPACE"
    elif e.status == 403:
        message += "; ask an admin to bind you the kubedask-user role in that namespace"
    return CliError(message)


@dataclass
class Context:
    """One invocation: the API, where to act, how to print."""

    kube: ClusterKube
    namespace: str
    all_namespaces: bool = False
    output: str | None = None
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    colour: bool = False

    def api(self, namespace: str | None = None) -> Api:
        return self.kube.api(namespace or self.namespace)

    def print(self, text: str = "") -> None:
        print(text, file=self.out)

    @contextlib.asynccontextmanager
    async def calling(self, what: str) -> AsyncIterator[None]:
        """Turn API and network failures inside the block into one-line :class:`CliError`\\ s."""
        try:
            yield
        except ApiException as e:
            raise explain_api_error(what, e) from None
        except (HTTPError, OSError) as e:
            host = self.kube.configuration.host if self.kube.configuration is not None else "the API server"
            raise CliError(f"cannot {what}: the Kubernetes API server at {host} did not answer: "
                           f"{one_line(str(e))}") from None

    async def request(self, name: str, namespace: str | None = None) -> Manifest:
        """The request ConfigMap ``name``; a one-line error when there is none (or it is not a request)."""
        ns = namespace or self.namespace
        async with self.calling(f"read configmap {name!r} in namespace {ns!r}"):
            request = await self.api(ns).read_configmap(name)
        labels = ((request or {}).get("metadata") or {}).get("labels") or {}
        if request is None or labels.get(spec.REQUEST_LABEL) != spec.REQUEST_LABEL_VALUE:
            raise CliError(f"no kubedask cluster named {name!r} in namespace {ns!r}; "
                           f"`kubectl dask get -n {ns}` lists the clusters there")
        return request
