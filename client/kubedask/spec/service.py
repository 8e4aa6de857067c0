"""``scheduler-service-template``: labels, annotations and the safe spec fields of the scheduler's Service.

Cloud users need annotations (an internal load balancer), source ranges and labels on the Service; the
rest of the Service stays the controller's (above all the selector: a selector chosen by a request could
route the scheduler's address to any pod of the namespace). Parsing here checks the shape only; which
labels and annotations a request may set is the controller's policy (``allowedServiceAnnotations``,
``allowedServiceLabels``: a load balancer annotation like the one below needs an admin's allowance).
Example::

    >>> template = parse_service_template('''
    ... metadata: {annotations: {networking.gke.io/load-balancer-type: Internal}}
    ... spec: {type: LoadBalancer, loadBalancerSourceRanges: [10.0.0.0/8]}''')
    >>> template.spec["type"], template.annotations
    ('LoadBalancer', {'networking.gke.io/load-balancer-type': 'Internal'})
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .errors import RequestError
from .names import DASHBOARD_PORT, KEY_SERVICE_TEMPLATE, SCHEDULER_PORT
from .safe_yaml import safe_load_yaml

__all__ = ["SERVICE_FIELDS", "ServiceTemplate", "parse_service_template"]
#: The Service spec fields a request may set; everything else is the controller's.
SERVICE_FIELDS = ("type", "loadBalancerSourceRanges", "externalTrafficPolicy", "ports")
_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
_POLICIES = ("Cluster", "Local")


class ServiceTemplate(BaseModel):
    """What a request sets on its scheduler Service; ``port_names`` maps 8786/8787 to a port name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    #: ``type``, ``loadBalancerSourceRanges`` and ``externalTrafficPolicy`` as given.
    spec: dict[str, Any] = Field(default_factory=dict)
    port_names: dict[int, str] = Field(default_factory=dict)


def _refuse(message: str) -> RequestError:
    return RequestError(f"key {KEY_SERVICE_TEMPLATE!r}: {message}", key=KEY_SERVICE_TEMPLATE)


def _strings(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _refuse(f"{where} must be a mapping of strings to strings (quote numbers and booleans)")
    return dict(value)


def parse_service_template(text: str) -> ServiceTemplate:
    doc = safe_load_yaml(text, KEY_SERVICE_TEMPLATE)
    if not isinstance(doc, dict):
        raise _refuse("expected a mapping with 'metadata' (labels, annotations) and/or 'spec'")
    extra = sorted(set(doc) - {"apiVersion", "kind", "metadata", "spec"}, key=str)
    if extra:
        raise _refuse(f"unknown field {extra[0]!r}; a Service template has 'metadata' and 'spec'")
    metadata = doc.get("metadata") or {}
    if not isinstance(metadata, dict) or set(metadata) - {"labels", "annotations"}:
        raise _refuse("metadata may hold only 'labels' and 'annotations' (the name and namespace are the "
                      "controller's)")
    spec = doc.get("spec") or {}
    if not isinstance(spec, dict):
        raise _refuse("spec must be a mapping")
    if "selector" in spec:
        raise _refuse("spec.selector cannot be set: the Service always selects the cluster's scheduler pod (a "
                      "selector chosen here could send the scheduler's address to any pod); remove it")
    unknown = sorted(set(spec) - set(SERVICE_FIELDS), key=str)
    if unknown:
        raise _refuse(f"spec.{unknown[0]} cannot be set; the fields a request may set are {', '.join(SERVICE_FIELDS)}")
    if "type" in spec and spec["type"] not in _TYPES:
        raise _refuse(f"spec.type is {spec['type']!r}; expected one of {', '.join(_TYPES)}")
    if "externalTrafficPolicy" in spec and spec["externalTrafficPolicy"] not in _POLICIES:
        raise _refuse(f"spec.externalTrafficPolicy is {spec['externalTrafficPolicy']!r}; expected Cluster or Local")
    ranges = spec.get("loadBalancerSourceRanges")
    if ranges is not None and (not isinstance(ranges, list) or not all(isinstance(r, str) for r in ranges)):
        raise _refuse("spec.loadBalancerSourceRanges must be a list of CIDRs such as ['10.0.0.0/8']")
    return ServiceTemplate(labels=_strings(metadata.get("labels"), "metadata.labels"),
                           annotations=_strings(metadata.get("annotations"), "metadata.annotations"),
                           spec={k: v for k, v in spec.items() if k != "ports"},
                           port_names=_port_names(spec.get("ports")))


def _port_names(ports: Any) -> dict[int, str]:
    if ports is None:
        return {}
    if not isinstance(ports, list):
        raise _refuse("spec.ports must be a list such as [{port: 8786, name: tcp-comm}]")
    names: dict[int, str] = {}
    for port in ports:
        if not isinstance(port, dict) or set(port) != {"port", "name"} or not isinstance(port["name"], str):
            raise _refuse(f"spec.ports entry {port!r}: only a port's name can be set, as {{port: 8786, name: NAME}}")
        if port["port"] not in (SCHEDULER_PORT, DASHBOARD_PORT):
            raise _refuse(f"spec.ports: port {port['port']!r} is not one of the scheduler's ports "
                          f"{SCHEDULER_PORT} and {DASHBOARD_PORT}")
        names[int(port["port"])] = port["name"]
    if len(set(names.values())) != len(names):
        raise _refuse("spec.ports: the two ports need different names")
    return names
