"""What a request may ask for: the controller creates pods on users' behalf, so it is a deputy.

A user who may only write ConfigMaps must gain through the controller nothing a pod creator has: the
default refuses everything Pod Security "baseline" refuses, in every template a request carries, plus
the deputy rules (Secrets, service accounts, volume types, node placement, classes, caps, and the
labels and annotations of pods and of the scheduler Service that other cluster components act on). Admins
loosen it in a policy file (``--policy FILE``, the Helm ``policy:`` values), globally or per namespace::

    profile: restricted
    allowedTolerations: [k8s.dask.org/dedicated, nvidia.com/gpu]
    namespaces:
      team-a: {allowedSecrets: [s3-creds]}

Example::

    >>> from kubedask.spec import parse_request
    >>> request = parse_request("demo", {"worker-template": "containers: [{name: w, image: dask}]"})
    >>> admitted = admit(request, Policy(profile="restricted"), "team-a")
    >>> admitted.worker_template.spec["securityContext"]["runAsNonRoot"]
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from kubedask.spec import (
    DEFAULT_GROUP,
    KEY_ADAPT,
    KEY_SERVICE_TEMPLATE,
    KEY_WORKER_TEMPLATE,
    KEY_WORKERS,
    AdaptSpec,
    ClusterRequest,
    PodTemplate,
    RequestError,
    group_key,
)

from . import deputy, metadata, pss, service
from .document import Policy, Rules, key_of, load_policy
from .findings import Refusal, show
from .restricted import fill_defaults

__all__ = ["NamespaceUsage", "Policy", "PolicyViolation", "Rules", "admit", "load_policy", "worker_claim"]

#: How many refusals one message lists; the rest are counted (the status annotation stays short).
_MAX_LISTED = 8


class PolicyViolation(RequestError):
    """A request asks for something the policy refuses; ``str()`` names the field, value and policy key."""


@dataclasses.dataclass(frozen=True)
class NamespaceUsage:
    """What other, older, admitted requests of the same namespace already hold."""

    clusters: int = 0
    workers: int = 0


def worker_claim(request: ClusterRequest) -> int:
    """The most workers a request may run: per group (the default one and each named one) its worker count or
    its adapt maximum (``adapt``, ``adapt.GROUP``), whichever is larger, summed."""
    return sum(max(workers, adapt.maximum if adapt else 0) for _, workers, adapt in _groups(request))


def _groups(request: ClusterRequest) -> Iterator[tuple[str, int, AdaptSpec | None]]:
    yield DEFAULT_GROUP, request.workers, request.adapt
    for group in request.worker_groups:
        yield group.name, group.workers, group.adapt


def _claim_key(request: ClusterRequest) -> str:
    """The key a refused claim is reported under: the first adapt key whose maximum raises it, else workers."""
    for group, workers, adapt in _groups(request):
        if adapt is not None and adapt.maximum > workers:
            return group_key(KEY_ADAPT, group)
    return KEY_WORKERS


def templates(request: ClusterRequest) -> Iterator[tuple[str, PodTemplate]]:
    """``("worker-template", template)`` for every pod template the request carries, found by type so a
    template key added to the schema later is checked without a change here; each named worker group's
    as ``("worker-template.GROUP", template)``."""
    for field, value in request:
        if isinstance(value, PodTemplate):
            yield field.replace("_", "-"), value
    for group in request.worker_groups:
        yield group_key(KEY_WORKER_TEMPLATE, group.name), group.template


def admit(request: ClusterRequest, policy: Policy, namespace: str,
          usage: NamespaceUsage = NamespaceUsage()) -> ClusterRequest:
    """The request to run, with the profile's secure defaults filled into its templates; or
    :class:`PolicyViolation` listing everything the policy refuses."""
    rules = policy.for_namespace(namespace)
    found = list(_request_refusals(request, rules, usage))
    admitted: dict[str, PodTemplate] = {}
    for key, template in templates(request):
        if template.namespace is not None:
            # Not configurable: a template can never place pods in another namespace.
            raise PolicyViolation(
                f"policy violation in {key}: metadata.namespace is {show(template.namespace)}: pods are always "
                f"created in the request's own namespace; remove the field", key=key)
        spec = fill_defaults(template.spec, rules) if rules.profile == "restricted" else template.spec
        found += [(key, r) for r in (*pss.check(spec, template.annotations, rules), *deputy.check(spec, rules),
                                     *metadata.check(template, rules))]
        admitted[key] = template.model_copy(update={"spec": spec})
    if found:
        (where, first), rest = found[0], found[1:]
        message = first.message(where, namespace)
        if rest:
            also = [r.brief(w) for w, r in rest[:_MAX_LISTED]]
            more = f" and {len(rest) - _MAX_LISTED} more" if len(rest) > _MAX_LISTED else ""
            message += f". Also refused: {'; '.join(also)}{more}"
        raise PolicyViolation(message, key=where)
    groups = tuple(g.model_copy(update={"template": admitted.pop(group_key(KEY_WORKER_TEMPLATE, g.name))})
                   for g in request.worker_groups)
    return request.model_copy(update={**{k.replace("-", "_"): t for k, t in admitted.items()},
                                      "worker_groups": groups})


def _request_refusals(request: ClusterRequest, rules: Rules, usage: NamespaceUsage
                      ) -> Iterator[tuple[str, Refusal]]:
    claim = worker_claim(request)
    which = _claim_key(request)
    if claim > rules.max_workers:
        yield which, Refusal(which, claim, f"at most {rules.max_workers} workers per cluster are allowed",
                             key_of("max_workers"), "raise", fix="Ask for fewer")
    if usage.clusters + 1 > rules.max_clusters_per_namespace:
        yield "metadata.name", Refusal(
            "the number of clusters in this namespace", usage.clusters + 1,
            f"at most {rules.max_clusters_per_namespace} clusters per namespace are allowed",
            key_of("max_clusters_per_namespace"), "raise", fix="Delete another cluster of this namespace")
    if usage.workers + claim > rules.max_workers_per_namespace:
        yield which, Refusal(
            which, claim, f"this namespace's other clusters hold {usage.workers} workers, and at most "
            f"{rules.max_workers_per_namespace} are allowed in total", key_of("max_workers_per_namespace"), "raise",
            fix="Ask for fewer, or scale down another cluster of this namespace")
    for group, _, adapt in _groups(request):
        if adapt is not None and adapt.interval < rules.min_adapt_interval:
            key = group_key(KEY_ADAPT, group)
            yield key, Refusal(f"{key}.interval", adapt.interval,
                               f"adapt may look at the scheduler at most every {rules.min_adapt_interval:g}s",
                               key_of("min_adapt_interval"), "lower")
    service_type = request.scheduler_service_type
    if request.deploy_mode == "remote" and service_type not in rules.allowed_service_types:
        yield "scheduler-service-type", Refusal(
            "scheduler-service-type", service_type, "a scheduler Service of this type is reachable from outside "
            "the cluster, and a Dask scheduler runs any code sent to it", key_of("allowed_service_types"),
            f"add {show(service_type)} to")
    if request.deploy_mode == "remote" and request.scheduler_service is not None:
        # Controllers outside the namespace act on the Service's metadata (DNS names, load balancers).
        yield from ((KEY_SERVICE_TEMPLATE, r) for r in service.check(request.scheduler_service, rules))

