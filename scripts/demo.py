"""The demo: a local Kubernetes, the kubedask controller installed with its Helm chart, and the classic
KubeCluster quickstart run against it. Every step is cached, so a second run takes seconds.

Run it through scripts/demo.sh, which installs what is missing first.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import time
from pathlib import Path

from devcluster import build, controller_image, lifecycle

REPO = Path(__file__).resolve().parent.parent
RELEASE, CONTROLLER_NAMESPACE, USER_NAMESPACE = "kubedask", "kubedask", "default"


def step(number: int, total: int, text: str) -> None:
    print(f"\n==> [{number}/{total}] {text}", flush=True)


def main() -> int:
    started = time.monotonic()
    step(1, 4, "local Kubernetes (first run builds it from source: ~15 min; later runs: seconds)")
    cluster = lifecycle.up()
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)

    step(2, 4, "controller image, built offline and imported into the node")
    image = controller_image.ensure_in_node(cluster)
    repository, _, tag = image.tag.rpartition(":")

    step(3, 4, f"helm install: controller in namespace {CONTROLLER_NAMESPACE!r}, serving {USER_NAMESPACE!r}")
    subprocess.run(
        [
            str(build.binary("helm")), "--kubeconfig", str(cluster.kubeconfig),
            "upgrade", "--install", RELEASE, str(REPO / "helm" / "kubedask"),
            "--namespace", CONTROLLER_NAMESPACE, "--create-namespace",
            "--set", f"image.repository={repository}", "--set-string", f"image.tag={tag}",
            "--set", f"watchNamespaces={{{USER_NAMESPACE}}}",
            "--wait", "--timeout", "5m",
        ],
        check=True,
    )

    step(4, 4, "the classic quickstart (examples/quickstart.py): make_pod_spec, KubeCluster, scale, Client")
    runpy.run_path(str(REPO / "examples" / "quickstart.py"), run_name="__main__")

    print(f"\ndemo finished in {time.monotonic() - started:.0f}s. The cluster keeps running:")
    print(f"  export KUBECONFIG={cluster.kubeconfig}")
    print("  kubectl get cm -l kubedask.io/request -L kubedask.io/phase     # Dask clusters")
    print(f"  {sys.executable} -m devcluster down   # stop it all (from the repo root)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
