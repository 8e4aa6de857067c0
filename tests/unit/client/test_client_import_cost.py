"""A fresh ``from kubedask import KubeCluster`` leaves out what a cold start may never need: aiohttp (only a
port-forward uses it) and the kubernetes client's V1Pod models (only a V1Pod template does)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import kubedask

PROBE = """
import json, sys
from kubedask import KubeCluster
loaded = lambda: {m: m in sys.modules for m in ("aiohttp", "kubernetes.client.models.v1_pod")}
before = loaded()
from kubedask import make_pod_spec
make_pod_spec(image="x")
print(json.dumps([before, loaded()]))
"""


def test_importing_kubecluster_loads_neither_aiohttp_nor_the_pod_models() -> None:
    # The package as this run imports it, whatever the pytest configuration put on sys.path.
    env = {**os.environ, "PYTHONPATH": str(Path(kubedask.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                         env=env).stdout
    before, after = json.loads(out.splitlines()[-1])
    assert before == {"aiohttp": False, "kubernetes.client.models.v1_pod": False}
    # make_pod_spec returns a V1Pod, as the classic function did: it loads the models itself.
    assert after == {"aiohttp": False, "kubernetes.client.models.v1_pod": True}
