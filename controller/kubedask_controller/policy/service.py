"""``scheduler-service-template``'s labels and annotations: what other systems do with the scheduler Service.

Service annotations are orders to controllers outside the namespace: external-dns publishes the DNS name an
annotation gives (a request could point a name of the organisation at its scheduler), cloud load balancer
controllers read internal vs internet-facing, security groups and TLS certificates from them, MetalLB and
Cilium assign addresses by them. So they are allowlisted (``allowedServiceAnnotations``, by default only
``user.kubedask.io/*``). Labels select the Service into ServiceMonitors, BGP advertisements and mesh
exports; like pod labels, only ``user.kubedask.io/*`` passes by default under every profile
(``allowedServiceLabels``), and the keys below pass only when an admin names them, not by ``"*"``.
"""

from __future__ import annotations

from collections.abc import Iterator

from kubedask.spec import ServiceTemplate

from .document import Rules
from .findings import Refusal
from .metadata import OWN, RESERVED_ANNOTATIONS, refused_keys

_MESH = "the service mesh would act on it (who may reach the Service, and from which namespaces or clusters)"
_CLOUD_LB = ("the cloud's load balancer controller would follow it (internal or internet-facing, security "
             "groups, TLS certificates, addresses)")
_ADDRESSES = "the load balancer would give the Service the address, pool or shared IP the annotation names"

#: Service label keys refused unless an allowlist entry names them, with why.
SENSITIVE_SERVICE_LABELS: dict[str, str] = {
    "mirror.linkerd.io/exported": "Linkerd multicluster would export the Service to every linked cluster",
    "istio.io/use-waypoint": _MESH,
    "service.kubernetes.io/service-proxy-name": "kube-proxy would leave the Service to another proxy",
    "app.kubernetes.io/managed-by": OWN,
    "kubedask.io/*": OWN,
    "dask.org/*": OWN,
}
# Why a known annotation is refused; others get the general reason.
_ANNOTATION_WHY = (
    ("external-dns.alpha.kubernetes.io/", "external-dns would publish the DNS name it gives (in any zone "
                                          "external-dns manages) pointing at the scheduler"),
    ("service.beta.kubernetes.io/", _CLOUD_LB), ("service.kubernetes.io/", _CLOUD_LB),
    ("networking.gke.io/", _CLOUD_LB), ("cloud.google.com/", _CLOUD_LB), ("loadbalancer.openstack.org/", _CLOUD_LB),
    ("metallb.universe.tf/", _ADDRESSES), ("metallb.io/", _ADDRESSES), ("lbipam.cilium.io/", _ADDRESSES),
    ("io.cilium/", _ADDRESSES), ("service.cilium.io/", _MESH),
    ("networking.istio.io/", _MESH), ("linkerd.io/", _MESH), ("config.linkerd.io/", _MESH),
)
_ANNOTATIONS = ("controllers outside the namespace act on Service annotations (DNS names, cloud load balancers, "
                "address pools), and this one is not known to grant nothing")
_LABELS = "labels select the Service into monitors, route advertisements and mesh exports, and this key is not allowed"


def check(template: ServiceTemplate, rules: Rules) -> Iterator[Refusal]:
    yield from refused_keys("annotations", template.annotations, rules.allowed_service_annotations,
                            "allowed_service_annotations", RESERVED_ANNOTATIONS, _ANNOTATION_WHY, _ANNOTATIONS)
    yield from refused_keys("labels", template.labels, rules.allowed_service_labels, "allowed_service_labels",
                            SENSITIVE_SERVICE_LABELS, (), _LABELS, renamable=True)
