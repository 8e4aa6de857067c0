"""kubedask's own error for bad requests, and the one place pydantic's errors become kubedask's words.

pydantic's messages name internal model classes and end in a pydantic URL; users of kubedask wrote a
ConfigMap key, not a model, so every :class:`pydantic.ValidationError` a model raises on request data is
translated here into a sentence naming the key, the field, the value and what is allowed.

Example::

    >>> from pydantic import BaseModel, Field, ValidationError
    >>> class Speed(BaseModel):
    ...     interval: float = Field(gt=0)
    >>> try:
    ...     Speed(interval=0)
    ... except ValidationError as exc:
    ...     print(from_validation_error(exc, "adapt"))
    key 'adapt': field 'interval' has value 0; it must be more than 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError


class RequestError(ValueError):
    """A request (or one of its keys) is invalid. ``str(err)`` is a message meant for the user."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def _plain(value: Any) -> Any:
    """``0`` for pydantic's ``0.0`` bound on a float field: users wrote whole numbers."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _allowed(kind: str, ctx: Mapping[str, Any]) -> str:
    """What the user should write instead, for one pydantic error type."""
    bounds = {
        "greater_than": ("more than", "gt"),
        "greater_than_equal": ("at least", "ge"),
        "less_than": ("less than", "lt"),
        "less_than_equal": ("at most", "le"),
    }
    if kind in bounds:
        words, name = bounds[kind]
        return f"it must be {words} {_plain(ctx.get(name))}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "it must be a whole number"
    if kind in ("float_type", "float_parsing", "finite_number"):
        return "it must be a number"
    if kind in ("bool_type", "bool_parsing"):
        return "it must be true or false"
    if kind in ("string_type", "string_unicode"):
        return "it must be a string"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "it must be a mapping"
    if kind in ("list_type", "tuple_type"):
        return "it must be a list"
    if kind == "literal_error":
        return f"allowed values are {ctx.get('expected', 'listed in the documentation')}"
    if kind in ("string_too_short", "too_short"):
        return f"it must have at least {ctx.get('min_length')} characters or entries"
    if kind in ("string_too_long", "too_long"):
        return f"it may have at most {ctx.get('max_length')} characters or entries"
    if kind == "string_pattern_mismatch":
        return f"it must match {ctx.get('pattern')!r}"
    return "it is not an allowed value"


def _describe(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()))
    kind = str(error.get("type", ""))
    field = f"field {where!r}" if where else "the value"
    if kind == "missing":
        return f"{field} is required"
    if kind == "extra_forbidden":
        return f"{field} is not a known field; remove it"
    return f"{field} has value {error.get('input')!r}; {_allowed(kind, error.get('ctx') or {})}"


def describe_validation_error(exc: ValidationError) -> str:
    """The problems of a :class:`pydantic.ValidationError` as one kubedask sentence, with no pydantic text."""
    return "; ".join(_describe(error) for error in exc.errors(include_url=False)) + "."


def from_validation_error(exc: ValidationError, key: str) -> RequestError:
    """The :class:`RequestError` to raise for a model's ``ValidationError`` on request key ``key``."""
    return RequestError(f"key {key!r}: {describe_validation_error(exc)}", key=key)
