"""Whether the policy admits a request, and as what (``policy.admit``), remembered per request data and
namespace usage: the controller asks it of every older request of a namespace whenever a younger one makes
a pass, since namespace caps count what the older admitted requests hold first."""

from __future__ import annotations

from collections.abc import Mapping

from kubedask.spec import ClusterRequest, RequestError, parse_request

from .policy import NamespaceUsage, Policy, admit


class Admission:
    def __init__(self, name: str, namespace: str, policy: Policy) -> None:
        self.name, self.namespace, self.policy = name, namespace, policy
        self._last: tuple[tuple[str, NamespaceUsage], ClusterRequest | RequestError] | None = None

    def of(self, data: Mapping[str, str], fingerprint: str, usage: NamespaceUsage) -> ClusterRequest | RequestError:
        """The request to run, or why it may not run; ``fingerprint`` identifies ``data``."""
        key = (fingerprint, usage)
        if self._last is None or self._last[0] != key:
            try:
                result: ClusterRequest | RequestError = admit(parse_request(self.name, data), self.policy,
                                                              self.namespace, usage)
            except RequestError as exc:
                result = exc
            self._last = (key, result)
        return self._last[1]
