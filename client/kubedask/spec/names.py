"""Every name kubedask gives or reads: labels, annotations, request keys, ports, and derived object names.

The client writes requests and reads their status, the controller watches requests and creates the
objects named here; both import these constants and functions, so a name is spelled in one place.

Example::

    >>> scheduler_name("analysis"), worker_name("analysis", "x7k2p"), job_name("analysis")
    ('analysis-scheduler', 'analysis-worker-x7k2p', 'analysis-job')
"""

from __future__ import annotations

import re

from .errors import RequestError

REQUEST_LABEL = "kubedask.io/request"
REQUEST_LABEL_VALUE = "cluster"
#: The label selector of request ConfigMaps; the client lists with it and the controller watches with it.
REQUEST_SELECTOR = f"{REQUEST_LABEL}={REQUEST_LABEL_VALUE}"
PHASE_LABEL = "kubedask.io/phase"
STATUS_ANNOTATION = "kubedask.io/status"
HEARTBEAT_ANNOTATION = "kubedask.io/heartbeat"
#: Label on every object the controller creates; the controller watches only objects carrying it.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "kubedask"
CLUSTER_NAME_LABEL = "dask.org/cluster-name"
COMPONENT_LABEL = "dask.org/component"
#: The ``dask.org/component`` label value of a batch job's pod (beside ``scheduler`` and ``worker``).
JOB_COMPONENT = "job"
#: Label on every worker pod naming its worker group (as the Dask operator labels them).
WORKER_GROUP_LABEL = "dask.org/workergroup-name"
#: Request labels under this prefix are copied to every object of the cluster (no other request label is).
PROPAGATED_LABEL_PREFIX = "user.kubedask.io/"
#: The group of the unsuffixed ``workers`` / ``worker-template`` keys.
DEFAULT_GROUP = "default"

KEY_WORKERS = "workers"
KEY_WORKER_TEMPLATE = "worker-template"
KEY_SCHEDULER_TEMPLATE = "scheduler-template"
KEY_SERVICE_TYPE = "scheduler-service-type"
#: Labels, annotations and the safe spec fields of the scheduler Service (see :mod:`.service`).
KEY_SERVICE_TEMPLATE = "scheduler-service-template"
KEY_ADAPT = "adapt"
#: ``rolling`` (default): a changed worker template replaces running workers; ``new-workers-only``: it does not.
KEY_UPDATE_STRATEGY = "update-strategy"
#: During a rolling update, how many workers more than asked for a group may run at a time (default 1).
KEY_MAX_SURGE = "max-surge"
KEY_IDLE_TIMEOUT = "idle-timeout"
KEY_DEPLOY_MODE = "deploy-mode"
KEY_SCHEDULER_ADDRESS = "scheduler-address"
KEY_HEARTBEAT_TIMEOUT = "client-heartbeat-timeout"
#: A batch job: a pod the controller runs against the cluster once its scheduler is ready; the cluster
#: goes when it ends, the request stays with phase Succeeded or Failed (see docs/jobs.md).
KEY_JOB_TEMPLATE = "job-template"
#: How long a finished job's request is kept before the controller deletes it.
KEY_JOB_TTL = "job-ttl"
ALL_KEYS = (
    KEY_WORKERS, KEY_WORKER_TEMPLATE, KEY_SCHEDULER_TEMPLATE, KEY_SERVICE_TYPE, KEY_ADAPT,
    KEY_IDLE_TIMEOUT, KEY_DEPLOY_MODE, KEY_SCHEDULER_ADDRESS, KEY_HEARTBEAT_TIMEOUT, KEY_JOB_TEMPLATE, KEY_JOB_TTL,
    KEY_SERVICE_TEMPLATE, KEY_UPDATE_STRATEGY, KEY_MAX_SURGE,
)

#: Keys that may carry a ``.GROUP`` suffix for a named worker group (``workers.gpu``, ``worker-template.gpu``).
GROUP_KEYS = (KEY_WORKERS, KEY_WORKER_TEMPLATE)

SCHEDULER_PORT = 8786
DASHBOARD_PORT = 8787

#: A request name becomes ``NAME-scheduler`` (a Service name: DNS-1035 label, at most 63 characters) and
#: ``NAME-worker-xxxxx`` (a pod name that also serves as the pod's hostname, kept within 63 characters).
MAX_NAME_LENGTH = 47

_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def scheduler_name(cluster: str) -> str:
    """The scheduler's pod, Service and PodDisruptionBudget name: ``NAME-scheduler``."""
    return f"{cluster}-scheduler"


def worker_name(cluster: str, suffix: str) -> str:
    """A worker pod's name, which is also its Dask worker name: ``NAME-worker-SUFFIX``.

    ``worker_name(cluster, "")`` is the prefix every worker pod name of the cluster starts with.
    """
    return f"{cluster}-worker-{suffix}"


def group_worker_name(cluster: str, group: str, suffix: str) -> str:
    """A worker pod's name in ``group``: ``NAME-worker-SUFFIX`` for the default group,
    ``NAME-worker-GROUP-SUFFIX`` for a named one, so the group shows in ``kubectl get pods``."""
    return worker_name(cluster, suffix if group == DEFAULT_GROUP else f"{group}-{suffix}")


def job_name(cluster: str) -> str:
    """A batch job's pod name: ``NAME-job``."""
    return f"{cluster}-job"


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a cluster name (a sentence for the user), or None when it can."""
    if len(name) > MAX_NAME_LENGTH:
        return (f"it is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed because "
                f"'-scheduler' and '-worker-xxxxx' are appended to it for the Dask pods")
    if not _NAME_RE.match(name):
        return ("use lower-case letters, digits and '-', starting with a letter and ending with a letter "
                "or digit")
    return None


def is_valid_name(name: str) -> bool:
    """Whether ``name`` can be a cluster name (see :func:`validate_name`)."""
    return name_problem(name) is None


def validate_name(name: str) -> None:
    """Refuse names that cannot become ``NAME-scheduler`` Services and ``NAME-worker-xxxxx`` pods."""
    problem = name_problem(name)
    if problem is not None:
        raise RequestError(f"the ConfigMap name {name!r} is not usable as a Dask cluster name: {problem}. "
                           f"Rename the request.", key="metadata.name")
