"""The classic kubernetes.* Dask config keys and defaults, and how KubeCluster reads them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dask.config
import kubedask
from kubedask import config as kconfig


def test_classic_defaults() -> None:
    assert kconfig.get("name") == "dask-{user}-{uuid}"
    assert kconfig.get("count.start") == 0
    assert kconfig.get("count.max") is None
    assert kconfig.get("scheduler-service-type") == "ClusterIP"
    assert kconfig.get("deploy-mode") == "remote"
    assert kconfig.get("protocol") == "tcp://"
    assert kconfig.get("dashboard_address") == ":8787"
    assert kconfig.get("scheduler-service-wait-timeout") == 30
    assert kconfig.get("scheduler-service-name-resolution-retries") == 20
    for key in ("worker-template-path", "scheduler-template-path", "namespace", "idle-timeout", "interface"):
        assert kconfig.get(key) is None
    assert kconfig.get("worker-template") == {}
    assert kconfig.get("env") == {}


def test_explicit_values_override_config() -> None:
    with dask.config.set({"kubernetes.count.max": 3}):
        assert kconfig.get("count.max") == 3
        assert kconfig.get("count.max", override=7) == 7


def test_environment_variables_override_defaults(tmp_path: Path) -> None:
    # Dask reads DASK_* variables at import, so this needs a fresh interpreter.
    code = (
        "import kubedask, dask.config as c; "
        "print(c.get('kubernetes.worker-template-path'), c.get('kubernetes.count.max'))"
    )
    env = {
        "DASK_KUBERNETES__WORKER_TEMPLATE_PATH": "/tmp/w.yml",
        "DASK_KUBERNETES__COUNT__MAX": "5",
        "PYTHONPATH": str(Path(kubedask.__file__).parents[1]),
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["/tmp/w.yml", "5"]
