"""Invalid requests: phase Failed, a message naming the problem, an Event, nothing created, and the
controller stays healthy; fixing the ConfigMap recovers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from controller_harness import SIMULATED_TEMPLATE, Cluster, running_controller, wait_for
from kubedask.spec import build_request_data

GOOD = build_request_data(worker_template=SIMULATED_TEMPLATE, workers=1)
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(9))
PRIVILEGED = yaml.safe_dump({"spec": {**SIMULATED_TEMPLATE["spec"], "containers": [
    {**SIMULATED_TEMPLATE["spec"]["containers"][0], "securityContext": {"privileged": True}}]}})

# name -> (data, text the status message must contain)
CASES: dict[str, tuple[dict[str, str], str]] = {
    "malformed-yaml": ({**GOOD, "worker-template": "containers: [\n  - name: w\n image"}, "not valid YAML"),
    "negative-workers": ({**GOOD, "workers": "-3"}, "'workers' has value '-3'"),
    "non-numeric-workers": ({**GOOD, "workers": "lots"}, "'workers' has value 'lots'"),
    "no-containers": ({**GOOD, "worker-template": "kind: Pod\nspec:\n  restartPolicy: Never\n"},
                      "no containers"),
    "privileged": ({**GOOD, "worker-template": PRIVILEGED}, "policy violation"),
    "alias-bomb": ({**GOOD, "worker-template": ALIAS_BOMB}, "anchor or alias"),
    # As close to 1 MiB as a ConfigMap (1 MiB in total) can hold.
    "huge-template": ({**GOOD, "worker-template": GOOD["worker-template"] + "#" + "x" * (1024 * 1024 - 4096)},
                      "bytes; at most"),
    "a" * 48: (GOOD, "48 characters long"),
}


def test_invalid_requests_fail_clearly_create_nothing_and_recover(
        kubeconfig: str, namespace: str, api: Any, tmp_path: Path) -> None:
    cluster = Cluster(api, namespace)
    for controller in running_controller(kubeconfig, [namespace], tmp_path):
        for name, (data, _) in CASES.items():
            cluster.create_raw_request(name, data)
        for name, (_, expected) in CASES.items():
            status = cluster.wait_phase(name, "Failed")
            assert expected in status.message, (name, status.message)
            assert cluster.phase_label(name) == "Failed"
            events = wait_for(f"an InvalidRequest event on {name}", lambda n=name: [
                e for e in cluster.events(n) if e.reason == "InvalidRequest" and e.type == "Warning"])
            assert expected in events[0].message
        assert cluster.core.list_namespaced_pod(namespace).items == []
        assert cluster.core.list_namespaced_service(namespace).items == []
        assert controller.healthy()

        # Fixing the ConfigMap is all it takes.
        for name in ("negative-workers", "alias-bomb", "privileged", "huge-template"):
            cluster.patch_data(name, {"workers": "1", "worker-template": GOOD["worker-template"]})
        for name in ("negative-workers", "alias-bomb", "privileged", "huge-template"):
            status = cluster.wait_phase(name, "Running")
            assert status.workers.running == 1
        assert controller.healthy()
