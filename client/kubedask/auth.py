# mypy: disallow-untyped-calls=False
# (distributed and the kubernetes config loaders have no type hints; calling them is the point here.)
"""Ways to reach the Kubernetes API server: in-cluster, kubeconfig, or explicit settings.

Unlike the classic classes, loading does not replace the kubernetes client's process-wide default
configuration: each method returns its own ``kubernetes.client.Configuration``, so two clusters with
different credentials can live in one process.

Example:
    >>> from kubedask import ClusterAuth, KubeConfig
    >>> auth = ClusterAuth.load_first([KubeConfig(context="dev")])  # doctest: +SKIP
    >>> auth.namespace  # doctest: +SKIP
    'team-a'
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import kubernetes.config
from kubernetes.client import Configuration
from kubernetes.config.config_exception import ConfigException

logger = logging.getLogger(__name__)

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class LoadedAuth:
    """The result of loading an auth method: where and how to connect, and the default namespace."""

    configuration: Configuration
    namespace: str | None
    method: ClusterAuth


class ClusterAuth:
    """Base class of the methods for configuring a connection to a Kubernetes API server.

    Example:
        >>> from kubedask import KubeConfig, KubeAuth
        >>> auth = KubeConfig(context="minikube")
        >>> auth = KubeAuth(host="https://localhost:6443", token="T")
    """

    DEFAULT: ClassVar[list[ClusterAuth]]

    def load(self) -> LoadedAuth:
        """Load this method's configuration; raise ``ConfigException`` when it does not apply."""
        raise NotImplementedError

    @staticmethod
    def load_first(auth: ClusterAuth | list[ClusterAuth] | None = None) -> LoadedAuth:
        """Load the first method in ``auth`` that works (default ``[InCluster(), KubeConfig()]``).

        Raises:
            ConfigException: none of the methods applied; the message lists why each failed.

        Example:
            >>> ClusterAuth.load_first([InCluster(), KubeConfig("~/.kube/dev")])  # doctest: +SKIP
        """
        methods = select_methods(auth)
        failures = []
        for method in methods:
            try:
                return method.load()
            except ConfigException as e:
                logger.debug("Kubernetes auth %r does not apply: %s", method, e)
                failures.append(f"{method!r}: {e}")
        raise ConfigException("no Kubernetes configuration could be loaded; tried " + "; ".join(failures))


def select_methods(auth: ClusterAuth | list[ClusterAuth] | None) -> list[ClusterAuth]:
    """Normalize the ``auth`` argument of KubeCluster / ``load_first`` to a non-empty list."""
    if auth is None:
        return list(ClusterAuth.DEFAULT)
    if isinstance(auth, ClusterAuth):
        return [auth]
    if isinstance(auth, list | tuple):
        if not auth:
            raise ConfigException("no authorization methods were provided")
        for method in auth:
            if not isinstance(method, ClusterAuth):
                raise ValueError(f"auth methods must be ClusterAuth instances, not {type(method).__name__}")
        return list(auth)
    raise ValueError(
        "invalid authorization method: pass a ClusterAuth (InCluster(), KubeConfig(), KubeAuth(...)) "
        "or a list of them"
    )


class InCluster(ClusterAuth):
    """Use the service account of the pod this process runs in.

    Example:
        >>> KubeCluster(pod_spec, auth=InCluster())  # doctest: +SKIP
    """

    def load(self) -> LoadedAuth:
        configuration = Configuration()
        kubernetes.config.load_incluster_config(client_configuration=configuration)
        namespace = None
        if SERVICE_ACCOUNT_NAMESPACE.exists():
            namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
        return LoadedAuth(configuration, namespace, self)

    def __repr__(self) -> str:
        return "InCluster()"


class KubeConfig(ClusterAuth):
    """Use a kubeconfig file.

    Parameters:
        config_file: path of the kubeconfig; defaults to ``$KUBECONFIG`` or ``~/.kube/config``.
        context: the context to use; defaults to the file's ``current-context``.
        persist_config: whether refreshed credentials are written back to the file.

    Example:
        >>> KubeCluster(pod_spec, auth=KubeConfig(context="dev"))  # doctest: +SKIP
    """

    def __init__(
        self, config_file: str | None = None, context: str | None = None, persist_config: bool = True
    ) -> None:
        self.config_file = config_file
        self.context = context
        self.persist_config = persist_config

    def _path(self) -> str:
        if self.config_file is not None:
            return os.path.expanduser(self.config_file)
        # $KUBECONFIG may list several files; the kubernetes client merges them.
        return os.environ.get("KUBECONFIG", os.path.expanduser("~/.kube/config"))

    def load(self) -> LoadedAuth:
        path = self._path()
        configuration = Configuration()
        kubernetes.config.load_kube_config(
            config_file=path,
            context=self.context,
            client_configuration=configuration,
            persist_config=self.persist_config,
        )
        namespace = None
        try:
            contexts, active = kubernetes.config.list_kube_config_contexts(config_file=path)
            if self.context:
                active = next((c for c in contexts if c["name"] == self.context), active)
            chosen = active
            namespace = (chosen or {}).get("context", {}).get("namespace")
        except (ConfigException, KeyError, StopIteration):
            pass
        return LoadedAuth(configuration, namespace, self)

    def __repr__(self) -> str:
        return f"KubeConfig(config_file={self.config_file!r}, context={self.context!r})"


class KubeAuth(ClusterAuth):
    """Configure the connection explicitly.

    Parameters:
        host: the API server URL, e.g. ``https://10.0.0.1:6443``.
        namespace: the default namespace for clusters created with this auth.
        token: a bearer token (e.g. a service account token).
        **kwargs: attributes of ``kubernetes.client.Configuration``, e.g. ``ssl_ca_cert``, ``cert_file``,
            ``key_file``, ``verify_ssl``, ``proxy``.

    Example:
        >>> auth = KubeAuth("https://127.0.0.1:6443", ssl_ca_cert="ca.crt", token="T")
    """

    def __init__(
        self, host: str, namespace: str | None = None, token: str | None = None, **kwargs: Any
    ) -> None:
        self.host = host
        self.namespace = namespace
        self.token = token
        self.kwargs = kwargs
        # Fail on a misspelt setting now rather than at the first request.
        unknown = [k for k in kwargs if not hasattr(Configuration(), k)]
        if unknown:
            raise ValueError(f"KubeAuth: unknown kubernetes.client.Configuration settings {unknown}")

    def load(self) -> LoadedAuth:
        configuration = Configuration(host=self.host)
        for key, value in self.kwargs.items():
            setattr(configuration, key, value)
        if self.token:
            # The generated client looks the bearer token up under this key (see auth_settings()).
            configuration.api_key["BearerToken"] = f"Bearer {self.token}"
        return LoadedAuth(configuration, self.namespace, self)

    def __repr__(self) -> str:
        return f"KubeAuth(host={self.host!r})"


ClusterAuth.DEFAULT = [InCluster(), KubeConfig()]
