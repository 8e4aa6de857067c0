"""The plugin's commands against the in-memory API: what users read on stdout, stderr and the exit code."""

from __future__ import annotations

import json

import pytest
import yaml
from cli_fake import MemoryKube, run, running
from kubedask import spec
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError


@pytest.fixture
def kube() -> MemoryKube:
    kube = MemoryKube()
    kube.add_request("team-a", "analysis", workers=3, status=running(3, 2))
    kube.add_request("team-a", "etl", workers=1, status={"phase": "Failed", "message": "bad template"})
    kube.add_request("team-b", "gpu", workers=2, status=running(2, 2, "gpu", "team-b"))
    kube.api("team-a").configmaps["unrelated"] = {"metadata": {"name": "unrelated", "namespace": "team-a"}}
    return kube


def forbidden(message: str) -> ApiException:
    e = ApiException(status=403, reason="Forbidden")
    e.body = json.dumps({"kind": "Status", "code": 403, "reason": "Forbidden", "message": message})
    return e


# --- get ---------------------------------------------------------------------------------------------

def test_get_lists_the_namespace_with_ready_over_requested_workers(kube: MemoryKube) -> None:
    code, out, err = run(kube, "get")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "PHASE", "WORKERS", "SCHEDULER", "DASHBOARD", "AGE"]
    assert lines[1].split()[:5] == ["analysis", "Running", "2/3", "tcp://analysis-scheduler.team-a.svc.cluster.local:8786",
                                    "http://analysis-scheduler.team-a.svc.cluster.local:8787"]
    assert lines[2].split()[:5] == ["etl", "Failed", "0/0", "<none>", "<none>"]
    assert len(lines) == 3  # the unlabelled ConfigMap is not a cluster; team-b is another namespace
    assert kube.listed == ["team-a"] and kube.closed


def test_get_all_namespaces_adds_a_namespace_column(kube: MemoryKube) -> None:
    code, out, _ = run(kube, "get", "-A")
    rows = [line.split()[:4] for line in out.splitlines()]
    assert code == 0 and kube.listed == [None]
    assert rows == [["NAMESPACE", "NAME", "PHASE", "WORKERS"], ["team-a", "analysis", "Running", "2/3"],
                    ["team-a", "etl", "Failed", "0/0"], ["team-b", "gpu", "Running", "2/2"]]


def test_namespace_flag_is_honoured_before_or_after_the_subcommand(kube: MemoryKube) -> None:
    for argv in (["-n", "team-b", "get"], ["get", "--namespace", "team-b"], ["get", "--namespace=team-b"]):
        code, out, _ = run(kube, *argv)
        assert code == 0 and out.splitlines()[1].split()[0] == "gpu", argv


def test_get_all_namespaces_without_the_right_is_one_line_naming_it(kube: MemoryKube) -> None:
    kube.failures[None] = [forbidden('configmaps is forbidden: User "system:serviceaccount:team-a:alice" cannot '
                                     'list resource "configmaps" in API group "" at the cluster scope')]
    code, out, err = run(kube, "get", "-A")
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: cannot list configmaps at the cluster scope: configmaps is forbidden: ")
    assert 'cannot list resource "configmaps"' in err and "-n NAMESPACE" in err


def test_get_wide_adds_counts_adapt_and_message(kube: MemoryKube) -> None:
    _, out, _ = run(kube, "get", "-o", "wide")
    header, analysis, etl = out.splitlines()
    assert header.split()[-5:] == ["EXTERNAL", "CREATED/RUNNING", "ADAPT", "GROUPS", "MESSAGE"]
    assert analysis.split()[-4:] == ["3/2", "<none>", "<none>", "<none>"]
    assert etl.endswith("bad template")


def test_get_one_name_as_json_is_one_object_and_a_list_otherwise(kube: MemoryKube) -> None:
    _, out, _ = run(kube, "get", "analysis", "-o", "json")
    obj = json.loads(out)
    assert obj["kind"] == "DaskCluster" and obj["metadata"]["name"] == "analysis"
    assert obj["status"]["workers"] == {"requested": 3, "created": 3, "running": 2, "ready": 2}
    _, out, _ = run(kube, "get", "-o", "yaml", "-A")
    listed = yaml.safe_load(out)
    assert listed["kind"] == "List" and [i["metadata"]["name"] for i in listed["items"]] == ["analysis", "etl", "gpu"]


def test_unknown_name_exits_1_with_one_line(kube: MemoryKube) -> None:
    for command in (["get"], ["describe"], ["scale"], ["logs"], ["dashboard"]):
        extra = ["2"] if command == ["scale"] else []
        code, out, err = run(kube, *command, "nope", *extra)
        assert code == 1 and out == "", command
        assert err == ("error: no kubedask cluster named 'nope' in namespace 'team-a'; "
                       "`kubectl dask get -n team-a` lists the clusters there\n"), command


def test_a_configmap_that_is_not_a_request_is_not_a_cluster(kube: MemoryKube) -> None:
    code, _, err = run(kube, "describe", "unrelated")
    assert code == 1 and "no kubedask cluster named 'unrelated'" in err


def test_empty_namespace_says_so_on_stderr_and_prints_an_empty_list_as_json(kube: MemoryKube) -> None:
    code, out, err = run(kube, "get", "-n", "empty")
    assert (code, out) == (0, "") and err == "No kubedask clusters found in namespace 'empty'.\n"
    code, out, _ = run(kube, "get", "-n", "empty", "-o", "json")
    assert code == 0 and json.loads(out)["items"] == []


def test_name_with_all_namespaces_is_refused(kube: MemoryKube) -> None:
    code, _, err = run(kube, "get", "analysis", "-A")
    assert code == 1 and "cannot be combined with -A" in err


def test_all_namespaces_is_refused_where_a_namespace_is_needed(kube: MemoryKube) -> None:
    for command in (["describe", "analysis"], ["scale", "analysis", "2"], ["logs", "analysis"]):
        code, _, err = run(kube, *command, "-A")
        assert code == 1 and "-A/--all-namespaces only applies to get" in err, command
    assert kube.api("team-a").patches == []


def test_unreachable_api_server_is_one_line(kube: MemoryKube) -> None:
    kube.failures["team-a"] = [MaxRetryError(None, "/api/v1", "Connection refused")]  # type: ignore[arg-type]
    code, _, err = run(kube, "get")
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("error: cannot list configmaps in namespace 'team-a': the Kubernetes API server")


def test_usage_errors_exit_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    kube = MemoryKube()
    for argv in (["frobnicate"], ["get", "-o", "table"], ["scale", "analysis", "many"],
                 ["logs", "x", "--job", "--scheduler"]):
        with pytest.raises(SystemExit) as exit_info:
            run(kube, *argv)
        assert exit_info.value.code == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, (argv, err)


# --- scale -------------------------------------------------------------------------------------------

def test_scale_writes_the_worker_count_and_turns_adapt_off(kube: MemoryKube) -> None:
    kube.api("team-a").configmaps["analysis"]["data"][spec.KEY_ADAPT] = '{"minimum": 1, "maximum": 5}'
    code, out, _ = run(kube, "scale", "analysis", "7")
    data = kube.api("team-a").configmaps["analysis"]["data"]
    assert code == 0 and data[spec.KEY_WORKERS] == "7" and spec.KEY_ADAPT not in data
    assert out == "daskcluster team-a/analysis scaled to 7 workers (adaptive scaling turned off)\n"


def test_scale_accepts_kubectls_replicas_flag_and_refuses_negative_counts(kube: MemoryKube) -> None:
    assert run(kube, "scale", "analysis", "--replicas", "0")[0] == 0
    assert kube.api("team-a").configmaps["analysis"]["data"][spec.KEY_WORKERS] == "0"
    code, _, err = run(kube, "scale", "analysis", "--", "-1")
    assert code == 1 and "cannot scale to -1 workers" in err
    code, _, err = run(kube, "scale", "analysis")
    assert code == 1 and "give the number of workers" in err
    assert kube.api("team-a").patches == [{"data": {"workers": "0", "adapt": None}}]


def test_scale_group_default_is_the_workers_key_and_an_unknown_group_is_one_line(kube: MemoryKube) -> None:
    assert run(kube, "scale", "analysis", "4", "--group", "default")[0] == 0
    assert kube.api("team-a").configmaps["analysis"]["data"][spec.KEY_WORKERS] == "4"
    code, out, err = run(kube, "scale", "analysis", "9", "--group", "gpu")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "has no worker group 'gpu'" in err and "'default'" in err
    assert kube.api("team-a").configmaps["analysis"]["data"][spec.KEY_WORKERS] == "4"


def test_scale_group_patches_only_that_groups_count_and_keeps_adapt() -> None:
    kube = MemoryKube()
    kube.add_request("team-a", "mixed", workers=2, data={
        "worker-template.gpu": "containers: [{name: w, image: i}]", "workers.gpu": "1", "adapt": '{"maximum": 5}'})
    code, out, _ = run(kube, "scale", "mixed", "3", "--group", "gpu")
    assert code == 0 and out == "daskcluster team-a/mixed scaled to 3 workers in group gpu\n"
    # The default group's adapt stays; the gpu group's own adaptivity (adapt.gpu), if any, goes.
    assert kube.api("team-a").patches == [{"data": {"workers.gpu": "3", "adapt.gpu": None}}]
    code, _, err = run(kube, "scale", "mixed", "3", "--group", "tpu")
    assert code == 1 and "its groups are 'default', 'gpu'" in err


def test_get_wide_shows_counts_per_group() -> None:
    kube = MemoryKube()
    status = running(3, 3, "mixed")
    status["workerGroups"] = {"default": {"requested": 2, "ready": 2}, "gpu": {"requested": 1, "ready": 1}}
    kube.add_request("team-a", "mixed", workers=2, status=status)
    _, out, _ = run(kube, "get", "-o", "wide")
    assert "default:2/2,gpu:1/1" in out.splitlines()[1]
    _, out, _ = run(kube, "get", "mixed", "-o", "json")
    assert json.loads(out)["status"]["workerGroups"]["gpu"]["ready"] == 1


def test_scale_refused_by_rbac_names_the_verb_and_the_role(kube: MemoryKube) -> None:
    kube.api("team-a").failures["patch_configmap"] = [forbidden('configmaps "analysis" is forbidden: cannot patch')]
    code, _, err = run(kube, "scale", "analysis", "2")
    assert code == 1 and err.startswith("error: cannot patch configmap 'analysis' in namespace 'team-a': ")
    assert "kubedask-user" in err and err.count("\n") == 1


# --- describe ----------------------------------------------------------------------------------------

def test_describe_shows_state_conditions_pods_and_recent_events(kube: MemoryKube) -> None:
    kube.add_pod("team-a", "analysis-scheduler", "analysis", "scheduler",
                 containerStatuses=[{"ready": True, "restartCount": 0}])
    kube.add_pod("team-a", "analysis-worker-abcde", "analysis", "worker",
                 containerStatuses=[{"ready": False, "restartCount": 2,
                                     "state": {"waiting": {"reason": "CrashLoopBackOff"}}}])
    kube.add_pod("team-a", "etl-worker-zzzzz", "etl", "worker")
    kube.api("team-a").events = [
        {"involvedObject": {"kind": "ConfigMap", "name": "analysis"}, "type": "Normal", "reason": f"Created{i}",
         "message": f"event {i}", "lastTimestamp": f"2026-01-01T00:00:{i:02d}Z", "source": {"component": "kubedask"}}
        for i in range(12)]
    code, out, _ = run(kube, "describe", "analysis")
    assert code == 0
    assert "Phase:" in out and "Running" in out
    assert "Workers:      2 ready / 3 requested (3 created, 2 running)" in out
    conditions = out.split("Conditions:")[1].split("Pods:")[0]
    pods, events = out.split("Pods:")[1].split("Events:")

    assert "SchedulerReady" in conditions and "the scheduler answers" in conditions
    assert "analysis-scheduler" in pods and "1/1" in pods
    assert "CrashLoopBackOff" in pods and "etl-worker" not in pods
    assert "Created11" in events and "Created1 " not in events and events.count("kubedask") == 10


def test_describe_before_any_status_says_no_controller_acted(kube: MemoryKube) -> None:
    kube.add_request("team-a", "fresh", workers=2)
    code, out, _ = run(kube, "describe", "fresh")
    assert code == 0 and "no status yet: no kubedask controller has acted" in out
    assert "2 requested" in out and out.count("<none>") >= 3
