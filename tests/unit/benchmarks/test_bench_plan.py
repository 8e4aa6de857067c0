"""The benchmark plans: the full run measures every scenario at every size; quick stays tiny."""

from __future__ import annotations

import dataclasses

import pytest

from benchmarks import plan


def test_full_plan_measures_the_issue_sizes() -> None:
    full = plan.full()
    assert full.startup_sizes == (10, 100, 1000)
    assert (full.scale_from, full.scale_to) == (1000, 100)
    assert full.idle_clusters == 50
    assert (full.footprint_clusters, full.footprint_workers) == (100, 10)
    assert (full.unrelated_configmaps, full.unrelated_pods) == (10_000, 10_000)
    assert full.cold_start_repeats == 5
    assert full.tools == ("kubedask", "operator", "raw")


def test_full_plan_gets_enough_simulated_nodes_for_its_pods() -> None:
    full = plan.full()
    assert full.nodes * 1000 >= full.pods_needed()


def test_quick_plan_is_tiny_and_skips_the_operator_and_the_real_node() -> None:
    quick = plan.quick()
    assert max(quick.startup_sizes) <= 5
    assert quick.unrelated_pods <= 50
    assert quick.cold_start_repeats == 0
    assert "operator" not in quick.tools
    assert quick.controllers == ("kubedask",)


def test_unknown_tool_or_scenario_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="kubedask, operator, raw"):
        plan.full(tools=("kubedask", "helm"))
    with pytest.raises(ValueError, match="unknown scenarios"):
        plan.quick(scenarios=("startup", "fast"))


def test_scale_down_must_start_from_a_measured_size() -> None:
    with pytest.raises(ValueError, match="scale_from"):
        dataclasses.replace(plan.full(), scale_from=500)


def test_pods_needed_counts_only_the_chosen_scenarios() -> None:
    assert plan.full().pods_needed() == 100 * 11 + 10_000
    assert plan.full(scenarios=("startup", "scale_down")).pods_needed() == 1000
    assert plan.full(scenarios=("cold_start",)).pods_needed() == 0
