"""Whether the policy admits a request, and as what (``policy.admit``), carrying its ConfigMap's propagated
labels (``labelling.labelled``), remembered per request data, labels and namespace usage: the controller asks
it of every older request of a namespace whenever a younger one makes a pass, since namespace caps count what
the older admitted requests hold first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubedask.spec import ClusterRequest, RequestError, parse_request

from .labelling import labelled, propagated_labels
from .policy import NamespaceUsage, Policy, admit

_Key = tuple[str, tuple[tuple[str, str], ...], NamespaceUsage]


class Admission:
    def __init__(self, name: str, namespace: str, policy: Policy) -> None:
        self.name, self.namespace, self.policy = name, namespace, policy
        self._last: tuple[_Key, ClusterRequest | RequestError] | None = None

    def of(self, data: Mapping[str, str], fingerprint: str, configmap_labels: Mapping[str, Any] | None,
           usage: NamespaceUsage) -> ClusterRequest | RequestError:
        """The request to run, labelled from ``configmap_labels``, or why it may not run; ``fingerprint``
        identifies ``data``."""
        # Labels are in the key: an edit of them alone must reach the next pass (the Service is patched).
        found = propagated_labels(configmap_labels)
        key = (fingerprint, tuple(found.items()), usage)
        if self._last is None or self._last[0] != key:
            try:
                result: ClusterRequest | RequestError = labelled(
                    admit(parse_request(self.name, data), self.policy, self.namespace, usage), found)
            except RequestError as exc:
                result = exc
            self._last = (key, result)
        return self._last[1]
