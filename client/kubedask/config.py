"""Dask configuration defaults for kubedask (the classic ``kubernetes.*`` keys).

Importing :mod:`kubedask` registers ``kubernetes.yaml`` as defaults, so user files, ``dask.config.set``
and ``DASK_KUBERNETES__...`` environment variables all override them the usual Dask way.

Example:
    >>> import dask.config, kubedask.config
    >>> dask.config.get("kubernetes.scheduler-service-type")
    'ClusterIP'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.config
import yaml

DEFAULTS_FILE = Path(__file__).with_name("kubernetes.yaml")


def _load_defaults() -> dict[str, Any]:
    with DEFAULTS_FILE.open() as f:
        defaults: dict[str, Any] = yaml.safe_load(f)
    return defaults


# Not dask.config.ensure_file: writing into the user's ~/.config/dask on import is a side effect the
# defaults don't need, and it would freeze today's defaults into a file that later versions can't update.
dask.config.update_defaults(_load_defaults())


def get(key: str, override: Any = None) -> Any:
    """Return ``kubernetes.<key>``, unless ``override`` is given (not None).

    Example:
        >>> get("count.max", override=5)
        5
    """
    return dask.config.get(f"kubernetes.{key}", override_with=override)
