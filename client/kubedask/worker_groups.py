"""Named worker groups from Python: ``add_worker_group``, ``scale(n, worker_group=...)``,
``adapt(..., worker_group=...)``, ``delete_worker_group``.

A group is flat keys of the request, ``workers.GROUP`` and ``worker-template.GROUP`` (and ``adapt.GROUP`` when
it is adaptive); the controller runs its pods beside the default group's (see docs/worker-groups.md). The
functions here build those keys; the :class:`WorkerGroupsMixin` gives :class:`~kubedask.KubeCluster` its methods.

Example:
    >>> data = group_data("analysis", "gpu", {"spec": {"containers": [{"image": "i"}]}}, n_workers=2)
    >>> sorted(data), data["workers.gpu"]
    (['worker-template.gpu', 'workers.gpu'], '2')
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from html import escape
from typing import TYPE_CHECKING, Any

from . import spec
from .templates import PodTemplate, add_env, load_pod_template

if TYPE_CHECKING:
    from .session import Session

#: ``worker_groups=`` of ``KubeCluster``: group name -> pod template, or (pod template, n_workers).
GroupsArgument = Mapping[str, "PodTemplate | tuple[PodTemplate, int]"]


def check_group_name(cluster: str, group: str) -> None:
    """Refuse a group name the request could not carry (a ValueError saying why)."""
    problem = spec.group_problem(cluster, group)
    if problem:
        raise ValueError(f"cannot use {group!r} as a worker group name of cluster {cluster!r}: {problem}")


def group_data(cluster: str, group: str, pod_template: PodTemplate, n_workers: int = 0,
               env: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The request keys of a worker group: ``workers.GROUP`` and ``worker-template.GROUP``."""
    check_group_name(cluster, group)
    if int(n_workers) < 0:
        raise ValueError(f"cannot give worker group {group!r} {n_workers} workers")
    template = load_pod_template(pod_template)
    if template is None:
        raise ValueError(f"worker group {group!r} needs a pod template (make_pod_spec(...), a dict or a YAML path)")
    return {spec.group_key(spec.KEY_WORKERS, group): str(int(n_workers)),
            spec.group_key(spec.KEY_WORKER_TEMPLATE, group): spec.dump_template(add_env(template, env or {}))}


def group_counts(data: Mapping[str, str]) -> dict[str, int]:
    """Workers asked for per group in a request's data, ``default`` first (unreadable counts show as 0)."""
    counts = {spec.DEFAULT_GROUP: _count(data.get(spec.KEY_WORKERS))}
    for key in sorted(data):
        split = spec.split_group_key(key)
        if split is not None and split[0] == spec.KEY_WORKER_TEMPLATE:
            counts[split[1]] = _count(data.get(spec.group_key(spec.KEY_WORKERS, split[1])))
    return counts


def _count(raw: str | None) -> int:
    try:
        return int(raw or 0)
    except ValueError:
        return 0


class WorkerGroupsMixin:
    """The worker group methods of :class:`~kubedask.KubeCluster`."""

    if TYPE_CHECKING:  # provided by KubeCluster (and distributed's Cluster)
        _session: Session
        request_name: str
        _request_change: Callable[[Coroutine[Any, Any, None]], Any]
        sync: Callable[..., Any]

    def add_worker_group(self, name: str, pod_template: PodTemplate, n_workers: int = 0) -> Any:
        """Add (or replace) worker group ``name``: its workers run ``pod_template`` (``make_pod_spec(...)``, a
        dict or a YAML path) beside the default group's, in pods named ``CLUSTER-worker-NAME-xxxxx``.

        Example:
            >>> gpu = make_pod_spec(image="ghcr.io/dask/dask:latest", extra_container_config={
            ...     "args": ["dask", "worker", "--resources", "GPU=1"]})  # doctest: +SKIP
            >>> cluster.add_worker_group("gpu", gpu, n_workers=1)  # doctest: +SKIP
        """
        data = group_data(self.request_name, name, pod_template, n_workers, self._session.options.env)
        return self._request_change(self._session.requests().patch({"data": data}))

    def delete_worker_group(self, name: str) -> Any:
        """Remove worker group ``name``: the controller scales it to 0 and its pods go.

        Example:
            >>> cluster.delete_worker_group("gpu")  # doctest: +SKIP
        """
        check_group_name(self.request_name, name)
        keys = {spec.group_key(key, name): None for key in (spec.KEY_WORKERS, spec.KEY_WORKER_TEMPLATE, spec.KEY_ADAPT)}
        return self._request_change(self._delete_group(name, keys))

    async def _delete_group(self, name: str, keys: Mapping[str, None]) -> None:
        requests = self._session.requests()
        if name not in group_counts((await requests.read()).get("data") or {}):
            raise ValueError(f"cluster {self.request_name!r} has no worker group {name!r}")
        await requests.patch({"data": dict(keys)})

    async def _scale_group(self, name: str, n: int) -> None:
        """``scale(n, worker_group=name)``: ``n`` workers of the group, and its adaptivity off."""
        await self._known_group(name)
        await self._session.requests().set_workers(n, name)

    async def _adapt_group(self, name: str, adapt: Mapping[str, Any]) -> None:
        """``adapt(..., worker_group=name)``: the group's ``adapt.GROUP`` key (see :func:`adapt_group`)."""
        await self._known_group(name)
        await self._session.requests().set_adapt(adapt, name)

    def adapt_group(self, name: str, adapt: Mapping[str, Any]) -> Any:
        """Let the controller scale group ``name`` within ``adapt`` (``{"minimum": 0, "maximum": 4}``, as
        :func:`~kubedask.request_io.adapt_settings` builds it); ``cluster.adapt(..., worker_group=name)``
        calls this. The scheduler's adaptive target is one number for the whole cluster: the controller gives
        an adaptive group what the fixed-size groups and the adaptive groups before it (the default group
        first, then by name) do not cover, within the group's own bounds.

        Example:
            >>> cluster.adapt(minimum=0, maximum=4, worker_group="gpu")  # doctest: +SKIP
        """
        if name == spec.DEFAULT_GROUP:
            return self._request_change(self._session.requests().set_adapt(adapt))
        check_group_name(self.request_name, name)
        return self._request_change(self._adapt_group(name, adapt))

    async def _known_group(self, name: str) -> None:
        known = group_counts((await self._session.requests().read()).get("data") or {})
        if name not in known:
            raise ValueError(f"cluster {self.request_name!r} has no worker group {name!r}; its groups are "
                             f"{', '.join(map(repr, known))}; add one with add_worker_group({name!r}, pod_template)")

    def worker_groups(self) -> Any:
        """Workers asked for per group, as the request says now (``default`` first).

        Example:
            >>> cluster.worker_groups()  # doctest: +SKIP
            {'default': 2, 'gpu': 1}
        """
        return self.sync(self._read_groups)

    async def _read_groups(self) -> dict[str, int]:
        return group_counts((await self._session.requests().read()).get("data") or {})

    def _running_groups(self) -> dict[str, int]:
        """Workers connected to the scheduler per group, from their names (no API call)."""
        info: Mapping[str, Any] = getattr(self, "scheduler_info", None) or {}
        counts: dict[str, int] = {}
        for worker in (info.get("workers") or {}).values():
            group = group_of_worker(self.request_name, str(worker.get("name", "")))
            counts[group] = counts.get(group, 0) + 1
        return counts

    def __repr__(self) -> str:
        text = super().__repr__()
        groups = self._running_groups()
        if set(groups) - {spec.DEFAULT_GROUP}:
            text = f"{text[:-1]}, worker_groups={groups})" if text.endswith(")") else text
        return text

    def _repr_html_(self, cluster_status: Any = None) -> str:
        html: str = super()._repr_html_(cluster_status)  # type: ignore[misc]
        groups = self._running_groups()
        if not set(groups) - {spec.DEFAULT_GROUP}:
            return html
        rows = "".join(f"<tr><td>{escape(g)}</td><td>{n}</td></tr>" for g, n in sorted(groups.items()))
        return f"{html}<table><tr><th>Worker group</th><th>Workers</th></tr>{rows}</table>"


def group_of_worker(cluster: str, worker: str) -> str:
    """The group of a worker named by the controller: ``NAME-worker-xxxxx`` is the default group,
    ``NAME-worker-GROUP-xxxxx`` is GROUP (the suffix has no '-', so the split is unambiguous)."""
    rest = worker.removeprefix(spec.worker_name(cluster, ""))
    if rest == worker or "-" not in rest:
        return spec.DEFAULT_GROUP
    return rest.rsplit("-", 1)[0]
