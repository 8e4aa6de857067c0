"""Printing like kubectl: aligned columns, ``-o json|yaml``, colour only on a terminal.

Example:
    >>> print(table(["NAME", "PHASE"], [["analysis", "Running"], ["etl", "Failed"]]))
    NAME       PHASE
    analysis   Running
    etl        Failed
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, TextIO

import yaml

#: Phases worth a glance, coloured on terminals (never when piped: scripts parse the output).
PHASE_COLOURS = {"Running": "32", "Pending": "33", "Scaling": "33", "Failed": "31", "Terminating": "35"}
OUTPUT_FORMATS = ("wide", "json", "yaml")


def use_colour(stream: TextIO) -> bool:
    """Colour only for a terminal, and never when ``NO_COLOR`` is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, phase: str, colour: bool) -> str:
    code = PHASE_COLOURS.get(phase)
    return f"\x1b[{code}m{text}\x1b[0m" if colour and code else text


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], colour_column: int | None = None,
          colour: bool = False, indent: str = "") -> str:
    """Columns three spaces apart, as kubectl prints them; the last column is not padded."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = []
    for index, row in enumerate([list(headers), *[list(r) for r in rows]]):
        cells = []
        for i, cell in enumerate(row):
            text = str(cell) if i == len(row) - 1 else str(cell).ljust(widths[i])
            if index > 0 and i == colour_column:
                text = paint(text, str(cell), colour)
            cells.append(text)
        lines.append(indent + "   ".join(cells).rstrip())
    return "\n".join(lines)


def dump(obj: Any, fmt: str) -> str:
    """``obj`` as kubectl's ``-o json`` (indented, keys in order) or ``-o yaml``."""
    if fmt == "json":
        return json.dumps(obj, indent=4)
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False).rstrip("\n")


def as_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Several objects the way kubectl prints them: one ``List``."""
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}
