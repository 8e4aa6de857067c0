"""What a check reports, and the walk over a pod spec's containers that every check shares."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

#: Every list of containers a pod spec may carry; a check that reads one reads all three.
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


@dataclasses.dataclass(frozen=True)
class Refusal:
    """One thing the policy refuses: where (a field path in the template, or a request key), the value
    found, why, and the policy key (with the change to it) that would allow it."""

    path: str
    value: Any
    why: str
    key: str
    #: The change to ``key`` an admin would make, e.g. "add 'db-admin' to" / "set true".
    change: str
    #: The Pod Security control this comes from (``podSecurityExemptions`` turns it off), if any.
    control: str | None = None
    #: What the user can do about it themselves.
    fix: str = "Remove or change it"

    def brief(self, where: str) -> str:
        return f"{where}: {self.path} is {show(self.value)} (policy key {self.key})"

    def message(self, where: str, namespace: str) -> str:
        # Where the admin makes the change too: users rarely know how their controller was installed.
        return (f"policy violation in {where}: {self.path} is {show(self.value)}: {self.why}. {self.fix}, or "
                f"ask an admin to {self.change} policy key {self.key} (in the policy ConfigMap, Helm value "
                f"policy.{self.key}; for namespace {namespace} only: namespaces.{namespace}.{self.key})")


def add_to(key: str, item: Any) -> tuple[str, str]:
    return key, f"add {show(item)} to"


def enable(key: str) -> tuple[str, str]:
    return key, "set true"


def show(value: Any) -> str:
    """A value as the user wrote it (JSON-ish), cut short: it ends up in a status annotation."""
    try:
        text = json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):  # pragma: no cover - template values come from YAML
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def mapping(value: Any) -> dict[str, Any]:
    """``value`` if it is a mapping, else empty: a wrongly typed field is the API server's to refuse, and
    a value of the wrong type cannot grant anything (the pod is never admitted)."""
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``("spec.containers[0]", container)`` for every container in every list."""
    for group in CONTAINER_LISTS:
        for i, container in enumerate(items(spec.get(group))):
            if isinstance(container, dict):
                yield f"spec.{group}[{i}]", container


def security_contexts(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The pod's securityContext, then each container's, with their paths."""
    yield "spec.securityContext", mapping(spec.get("securityContext"))
    for path, container in containers(spec):
        yield f"{path}.securityContext", mapping(container.get("securityContext"))


def volume_sources(spec: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """``(path, type, source)`` for each pod volume's source field (``emptyDir``, ``hostPath``, ...)."""
    for i, volume in enumerate(items(spec.get("volumes"))):
        for field, source in mapping(volume).items():
            if field != "name":
                yield f"spec.volumes[{i}].{field}", field, source
