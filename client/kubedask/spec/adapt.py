"""Adaptive scaling bounds: the ``adapt`` key (the default group) and ``adapt.GROUP`` (a named group).

Both take the same mapping (JSON or YAML): ``minimum``, ``maximum`` (required), ``interval`` and
``cooldown`` in seconds. How the scheduler's one adaptive target is shared between groups is the
controller's business (``kubedask_controller.decisions.share_target``).

Example::

    >>> parse_adapt('{"minimum": 1, "maximum": 10}', "adapt.gpu").maximum
    10
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import RequestError, from_validation_error
from .safe_yaml import safe_load_yaml
from .values import MAX_WORKERS

__all__ = ["AdaptSpec", "parse_adapt"]

_FIELDS = ("minimum", "maximum", "interval", "cooldown")


class AdaptSpec(BaseModel):
    """Controller-side adaptive scaling bounds of one worker group."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    minimum: int = Field(ge=0, le=MAX_WORKERS)
    maximum: int = Field(ge=0, le=MAX_WORKERS)
    #: Seconds between looks at the scheduler's adaptive target.
    interval: float = Field(default=5.0, gt=0, le=3600)
    #: Seconds to wait after a scale-down before scaling down again (scale-ups are never delayed).
    cooldown: float = Field(default=30.0, ge=0, le=86400)


def parse_adapt(raw: str, key: str) -> AdaptSpec:
    """The bounds in ``raw``, the value of request key ``key``; :class:`RequestError` naming ``key``."""
    # JSON is a subset of YAML, so '{"minimum": 1, "maximum": 10}' and 'minimum: 1' both work.
    value = safe_load_yaml(raw, key, max_bytes=4096)
    if not isinstance(value, dict):
        raise RequestError(
            f"key {key!r} has value {raw!r}; expected a mapping such as '{{\"minimum\": 1, \"maximum\": 10}}'.",
            key=key)
    extra = sorted(set(value) - set(_FIELDS), key=str)
    if extra:
        raise RequestError(f"key {key!r} has unknown field {extra[0]!r}; allowed fields: {', '.join(_FIELDS)}.",
                           key=key)
    if "maximum" not in value:
        raise RequestError(f"key {key!r} needs a 'maximum', e.g. '{{\"minimum\": 1, \"maximum\": 10}}'.", key=key)
    fields: dict[str, Any] = {"minimum": 0, **value}
    for field in _FIELDS:
        v = fields.get(field)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise RequestError(f"key {key!r}: field {field!r} has value {v!r}; it must be a number.", key=key)
    for field in ("minimum", "maximum"):
        v = fields[field]
        if v != int(v) or not 0 <= v <= MAX_WORKERS:
            raise RequestError(f"key {key!r}: field {field!r} has value {v!r}; it must be a whole number between "
                               f"0 and {MAX_WORKERS}.", key=key)
    if fields["minimum"] > fields["maximum"]:
        raise RequestError(f"key {key!r}: 'minimum' ({fields['minimum']}) is larger than 'maximum' "
                           f"({fields['maximum']}).", key=key)
    try:
        return AdaptSpec(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise from_validation_error(exc, key) from None
