"""The kubedask controller: reconciles Dask clusters from labelled request ConfigMaps.

Run it with ``python -m kubedask_controller`` (see ``--help``) or ``kopf run -m kubedask_controller``.
Importing the package registers its Kopf handlers.
"""

from . import handlers as handlers

__all__ = ["handlers"]
