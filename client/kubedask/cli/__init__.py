"""The ``kubectl dask`` plugin: ``get``, ``describe``, ``scale``, ``logs`` and ``dashboard`` for kubedask
clusters, reading the request ConfigMaps and the status the controller writes on them.

Installed with the package as the ``kubectl-dask`` console script, which kubectl finds on ``PATH``.
Each subcommand is one module; :mod:`.context` holds the API access and error translation, :mod:`.view`
and :mod:`.output` the pure formatting.

Example::

    $ kubectl dask get -A
    $ kubectl dask scale analysis 5 -n team-a
"""

from __future__ import annotations

from .context import CliError
from .main import main

__all__ = ["CliError", "main"]
