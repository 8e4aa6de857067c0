"""The restricted profile's secure defaults, filled in where a template is silent.

A template that says nothing about users, seccomp, privilege escalation or capabilities (the seed's
worker-spec.yml, every ``make_pod_spec`` pod) gets the values PSS restricted requires, so it runs
unchanged; a template that says otherwise is left as written and the checks in :mod:`.pss` refuse it.
"""

from __future__ import annotations

import copy
from typing import Any

from .document import Rules
from .findings import containers, items, mapping

#: The user a silent template runs as: Dask images default to root, which runAsNonRoot refuses to start.
DEFAULT_RUN_AS_USER = 1000
# The API server refuses allowPrivilegeEscalation: false next to these (they imply escalation).
_ESCALATING = ("SYS_ADMIN", "CAP_SYS_ADMIN")


def fill_defaults(spec: dict[str, Any], rules: Rules) -> dict[str, Any]:
    """A copy of ``spec`` with restricted's defaults wherever it is silent (``spec`` is not changed)."""
    spec = copy.deepcopy(spec)
    pod = _context(spec)
    if pod is not None:
        if not rules.exempt("runAsNonRoot"):
            pod.setdefault("runAsNonRoot", True)
            if not rules.exempt("runAsUser"):
                pod.setdefault("runAsUser", DEFAULT_RUN_AS_USER)
        if not rules.exempt("seccomp"):
            pod.setdefault("seccompProfile", {"type": "RuntimeDefault"})
    for _path, container in containers(spec):
        context = _context(container)
        if context is None:
            continue
        capabilities = context.get("capabilities")
        if not rules.exempt("capabilities") and capabilities is None:
            context["capabilities"] = capabilities = {"drop": ["ALL"]}
        elif isinstance(capabilities, dict) and not rules.exempt("capabilities"):
            capabilities.setdefault("drop", ["ALL"])
        added = [str(c).upper() for c in items(mapping(capabilities).get("add"))]
        escalates = context.get("privileged") is True or any(c in _ESCALATING for c in added)
        if not rules.exempt("privilegeEscalation") and not escalates:
            context.setdefault("allowPrivilegeEscalation", False)
    return spec


def _context(owner: dict[str, Any]) -> dict[str, Any] | None:
    """``owner["securityContext"]``, created if absent; None if it holds something other than a mapping
    (the API server refuses that pod, so there is nothing to fill)."""
    if owner.get("securityContext") is None:
        owner["securityContext"] = {}
    context = owner["securityContext"]
    return context if isinstance(context, dict) else None
