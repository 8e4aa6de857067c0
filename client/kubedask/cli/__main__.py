"""``python -m kubedask.cli ...`` runs the plugin without the console script (same as ``kubectl-dask``)."""

from .main import entry

entry()
