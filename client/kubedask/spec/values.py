"""Scalar request values: whole numbers, choices and durations, each refused in kubedask's words.

Example::

    >>> parse_duration("5m", "idle-timeout"), format_duration(300.0)
    (300.0, '300')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

from .errors import RequestError

MAX_WORKERS = 100_000

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_Choice = TypeVar("_Choice", bound=str)


def parse_int(data: Mapping[str, str], key: str, default: int) -> int:
    """A count between 0 and :data:`MAX_WORKERS` (``default`` when the key is absent or blank)."""
    raw = data.get(key)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise RequestError(
            f"key {key!r} has value {raw!r}, which is not a whole number; use a count between 0 and "
            f"{MAX_WORKERS}, e.g. \"3\".", key=key) from None
    if not 0 <= value <= MAX_WORKERS:
        raise RequestError(
            f"key {key!r} has value {raw!r}; it must be between 0 and {MAX_WORKERS}.", key=key)
    return value


def parse_choice(data: Mapping[str, str], key: str, allowed: tuple[_Choice, ...], default: _Choice) -> _Choice:
    raw = data.get(key)
    if raw is None or not raw.strip():
        return default
    for choice in allowed:  # be lenient about case ("clusterip"), strict about the word
        if raw.strip().lower() == choice.lower():
            return choice
    raise RequestError(
        f"key {key!r} has value {raw!r}; allowed values are {', '.join(allowed)}.", key=key)


def parse_duration(raw: str, key: str) -> float:
    """Seconds from ``"300"``, ``"300s"``, ``"5m"``, ``"1.5h"`` or ``"1d"``."""
    match = _DURATION_RE.match(raw)
    if not match:
        raise RequestError(
            f"key {key!r} has value {raw!r}, which is not a duration; use seconds (\"300\") or a number "
            f"with a unit s, m, h or d (\"5m\").", key=key)
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise RequestError(f"key {key!r} has value {raw!r}; it must be more than zero seconds.", key=key)
    return seconds


def optional_duration(data: Mapping[str, str], key: str) -> float | None:
    """The duration under ``key``, or None when it is absent or blank."""
    raw = data.get(key)
    if raw is None or not raw.strip():
        return None
    return parse_duration(raw, key)


def format_duration(seconds: float | int | str) -> str:
    """The request value for a duration: whole seconds without a decimal point, a string unchanged."""
    if isinstance(seconds, str):
        return seconds
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)
