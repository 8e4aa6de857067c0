"""Worker groups: ``workers.GROUP``, ``worker-template.GROUP`` and ``adapt.GROUP`` beside the unsuffixed keys.

The unsuffixed ``workers`` / ``worker-template`` / ``adapt`` are the group ``default``; each suffixed pair adds
a named group with its own pods (``NAME-worker-GROUP-xxxxx``, labelled ``dask.org/workergroup-name=GROUP``).
The keys stay flat so that ``kubectl patch cm NAME -p '{"data":{"workers.gpu":"3"}}'`` scales one group.
``adapt.GROUP`` (the same mapping as ``adapt``) makes a named group adaptive; its ``workers.GROUP`` then
defaults to the minimum, as ``workers`` does for ``adapt``.

Example::

    >>> data = {"worker-template.gpu": "containers: [{name: w, image: dask}]", "workers.gpu": "2"}
    >>> [(g.name, g.workers) for g in parse_groups("demo", data)]
    [('gpu', 2)]
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

from .adapt import AdaptSpec, parse_adapt
from .errors import RequestError
from .names import DEFAULT_GROUP, GROUP_KEYS, KEY_ADAPT, KEY_WORKER_TEMPLATE, KEY_WORKERS
from .template import PodTemplate, parse_template
from .values import parse_int

__all__ = ["MAX_GROUP_LENGTH", "SUFFIXED_KEYS", "WorkerGroup", "group_key", "group_problem", "is_group_key",
           "parse_groups", "split_group_key"]

#: Keys that may carry a ``.GROUP`` suffix: the group keys, and ``adapt`` (a named group's adaptive bounds).
SUFFIXED_KEYS = (*GROUP_KEYS, KEY_ADAPT)

#: Group names are short DNS labels: they become part of pod names (hostnames of at most 63 characters).
MAX_GROUP_LENGTH = 20
_GROUP_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
#: ``NAME-worker-`` + ``GROUP-`` + a 5-character suffix must fit a 63-character hostname.
_POD_NAME_BUDGET = 63 - len("-worker-") - len("-") - 5


class WorkerGroup(BaseModel):
    """A named worker group of a request (the default group is the request's own ``workers`` and
    ``worker_template``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    workers: int
    template: PodTemplate
    #: ``adapt.GROUP``: the group follows the scheduler's adaptive target within these bounds.
    adapt: AdaptSpec | None = None


def group_key(key: str, group: str) -> str:
    """The request key of ``key`` for ``group``: ``workers`` for the default group, ``workers.gpu`` else."""
    return key if group == DEFAULT_GROUP else f"{key}.{group}"


def split_group_key(key: str) -> tuple[str, str] | None:
    """``("workers", "gpu")`` for ``workers.gpu`` (``adapt.gpu`` too); None for a key that is not a group key."""
    base, dot, group = key.partition(".")
    return (base, group) if dot and base in SUFFIXED_KEYS else None


def is_group_key(key: str) -> bool:
    return split_group_key(key) is not None


def group_problem(cluster: str, group: str) -> str | None:
    """Why ``group`` cannot name a worker group of cluster ``cluster``, or None."""
    if group == DEFAULT_GROUP:
        return (f"the group {DEFAULT_GROUP!r} is the unsuffixed keys {KEY_WORKERS!r} and {KEY_WORKER_TEMPLATE!r}; "
                "use those")
    if not _GROUP_RE.match(group):
        return ("a group name uses lower-case letters, digits and '-', starting with a letter and ending with a "
                "letter or digit")
    longest = min(MAX_GROUP_LENGTH, _POD_NAME_BUDGET - len(cluster))
    if len(group) > longest:
        return (f"the group name is {len(group)} characters long; at most {longest} fit here (worker pods are "
                f"named {cluster}-worker-GROUP-xxxxx, at most 63 characters, and group names at most "
                f"{MAX_GROUP_LENGTH})")
    return None


def parse_groups(cluster: str, data: Mapping[str, str]) -> tuple[WorkerGroup, ...]:
    """The named worker groups in ``data``, sorted by name; :class:`RequestError` for a bad group key."""
    found: dict[str, dict[str, str]] = {}
    for key in sorted(data):
        split = split_group_key(key)
        if split is None:
            continue
        base, group = split
        problem = group_problem(cluster, group)
        if problem:
            raise RequestError(f"key {key!r} names worker group {group!r}, which is not usable: {problem}.",
                               key=key)
        found.setdefault(group, {})[base] = key
    groups = []
    for group, keys in sorted(found.items()):
        if KEY_WORKER_TEMPLATE not in keys:
            given = next(iter(keys.values()))
            raise RequestError(
                f"key {given!r} is set but {group_key(KEY_WORKER_TEMPLATE, group)!r} is missing: add "
                f"a Pod manifest or bare pod spec for the {group!r} group's workers, or remove {given!r}.",
                key=given)
        template_key = keys[KEY_WORKER_TEMPLATE]
        adapt_key = keys.get(KEY_ADAPT)
        adapt = parse_adapt(data[adapt_key], adapt_key) if adapt_key and data[adapt_key].strip() else None
        groups.append(WorkerGroup(
            name=group, workers=parse_int(data, group_key(KEY_WORKERS, group), default=adapt.minimum if adapt else 0),
            template=parse_template(data[template_key], key=template_key), adapt=adapt))
    return tuple(groups)
