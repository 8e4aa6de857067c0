"""Runtime options: the controller's own namespace is never served, and hosts the Lease by default."""

from __future__ import annotations

import kopf
import pytest
from kubedask.spec import REQUEST_SELECTOR
from kubedask_controller import handlers
from kubedask_controller.__main__ import parse_args
from kubedask_controller.options import Options


def test_own_namespace_comes_from_the_downward_api_and_hosts_the_lease() -> None:
    options = Options.from_env({"POD_NAMESPACE": "kubedask-system"})
    assert options.own_namespace == "kubedask-system" and options.lease_namespace == "kubedask-system"
    assert Options.from_env({}).lease_namespace == "default"


def test_own_namespace_flag_sets_the_lease_namespace_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    monkeypatch.delenv("KUBEDASK_LEASE_NAMESPACE", raising=False)
    _, options = parse_args(["-n", "team-a", "--own-namespace", "kubedask-system"])
    assert (options.own_namespace, options.lease_namespace) == ("kubedask-system", "kubedask-system")
    _, options = parse_args(["-n", "team-a", "--own-namespace", "kubedask-system", "--lease-namespace", "x"])
    assert options.lease_namespace == "x"


def test_serving_the_own_namespace_is_a_startup_error(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "kubedask-system")
    with pytest.raises(SystemExit):
        parse_args(["-n", "team-a", "-n", "kubedask-system"])
    assert "'kubedask-system' is the controller's own" in capsys.readouterr().err
    _, options = parse_args(["-A"])  # all namespaces: the own one is skipped request by request
    assert options.own_namespace == "kubedask-system"


def test_requests_are_watched_with_the_clients_exact_label() -> None:
    settings = kopf.OperatorSettings()
    handlers.configure(settings)
    assert settings.watching.label_selectors["v1", "configmaps"] == REQUEST_SELECTOR
    assert settings.scanning.disabled


def test_lease_timing_comes_from_the_environment_and_unsafe_timings_are_refused() -> None:
    assert Options.from_env({}).lease_timing == {"lease_duration": 30.0, "renew_deadline": 25.0,
                                                 "renew_period": 15.0, "retry_period": 2.0}
    options = Options.from_env({"KUBEDASK_LEASE_DURATION": "60", "KUBEDASK_LEASE_RENEW_DEADLINE": "40",
                                "KUBEDASK_LEASE_RENEW_PERIOD": "30", "KUBEDASK_LEASE_RETRY_PERIOD": "5"})
    assert options.lease_timing == {"lease_duration": 60.0, "renew_deadline": 40.0, "renew_period": 30.0,
                                    "retry_period": 5.0}
    # A renew deadline past the lease duration would let the standby act while the holder still does.
    with pytest.raises(ValueError, match="KUBEDASK_LEASE_RENEW_DEADLINE"):
        Options.from_env({"KUBEDASK_LEASE_RENEW_DEADLINE": "30"})
