"""What one benchmark run measures: the sizes, windows and time limits of each scenario.

Two shapes: :func:`full` (the published figures; minutes of 1000-pod churn) and :func:`quick` (a CI
smoke test of the runner itself; tiny sizes, seconds). Both are plain data so the scenarios stay free of
"if quick" branches and the unit tests can check the shapes without a cluster.
"""

from __future__ import annotations

import dataclasses

TOOLS = ("kubedask", "operator", "raw")
#: Tools that run a controller process (the raw baseline is the runner itself).
CONTROLLERS = ("kubedask", "operator")
SCENARIOS = ("startup", "scale_down", "api_requests", "idle_load", "footprint", "many_clusters", "cold_start")


@dataclasses.dataclass(frozen=True)
class Plan:
    mode: str
    tools: tuple[str, ...]
    scenarios: tuple[str, ...]
    #: Scenario 1: worker counts, each measured for every tool.
    startup_sizes: tuple[int, ...]
    #: Runs per tool and size, interleaved across the tools (the median is reported).
    repeats: int
    #: Scenario 2: scale from ``scale_from`` (reusing scenario 1's cluster of that size) to ``scale_to``.
    scale_from: int
    scale_to: int
    #: Shorter than ``timeout``: a tool that cannot scale down at all should not stall the run long.
    scale_down_timeout: float
    #: Scenario 3: idle clusters (one worker each), settle time, then the measured window.
    idle_clusters: int
    idle_settle: float
    idle_window: float
    #: Scenario 4: clusters x workers, then the same again among unrelated objects.
    footprint_clusters: int
    footprint_workers: int
    unrelated_configmaps: int
    unrelated_pods: int
    footprint_window: float
    #: Scenario 5: repetitions on the real node (0 skips it).
    cold_start_repeats: int
    #: Scenario 6: API requests per worker created, one cluster of this many workers per tool; the
    #: requests of ``api_settle`` seconds after all are Running (the last status write) count too.
    api_workers: int
    api_settle: float
    #: Scenario 7: clusters x workers at once under one controller (10,000 pods), and its time limit.
    many_clusters: int
    many_workers: int
    many_timeout: float
    #: Upper bound for any single wait (pods Running, converged, namespace gone).
    timeout: float
    #: Simulated nodes the runner asks for when it starts its own cluster (1000 pods fit on each).
    nodes: int

    def __post_init__(self) -> None:
        unknown = set(self.tools) - set(TOOLS)
        if unknown:
            raise ValueError(f"unknown tools {sorted(unknown)}; choose from {', '.join(TOOLS)}")
        unknown = set(self.scenarios) - set(SCENARIOS)
        if unknown:
            raise ValueError(f"unknown scenarios {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")
        if "scale_down" in self.scenarios and self.scale_from not in self.startup_sizes:
            raise ValueError("scale_down reuses scenario 1's cluster: scale_from must be a startup size")
        if not 0 < self.scale_to < self.scale_from:
            raise ValueError("scale_to must be between 0 and scale_from")
        if self.repeats < 1 or self.api_workers < 1 or self.many_clusters < 1 or self.many_workers < 1:
            raise ValueError("repeats, api_workers, many_clusters and many_workers must be at least 1")

    @property
    def controllers(self) -> tuple[str, ...]:
        return tuple(t for t in self.tools if t in CONTROLLERS)

    def pods_needed(self) -> int:
        """The most pods alive at once on simulated nodes, for the chosen scenarios."""
        needs = [0]
        if "startup" in self.scenarios or "scale_down" in self.scenarios:
            needs.append(max(self.startup_sizes, default=0))
        if "idle_load" in self.scenarios:
            needs.append(self.idle_clusters * 2 * len(self.tools))
        if "footprint" in self.scenarios:
            needs.append(self.footprint_clusters * (self.footprint_workers + 1) + self.unrelated_pods)
        if "api_requests" in self.scenarios:
            needs.append(self.api_workers + 1)
        if "many_clusters" in self.scenarios:
            needs.append(self.many_clusters * (self.many_workers + 1))
        return max(needs)


def full(tools: tuple[str, ...] = TOOLS, scenarios: tuple[str, ...] = SCENARIOS) -> Plan:
    return Plan(
        mode="full", tools=tools, scenarios=scenarios,
        startup_sizes=(10, 100, 1000), repeats=3, scale_from=1000, scale_to=100, scale_down_timeout=150.0,
        idle_clusters=50, idle_settle=20.0, idle_window=90.0,
        footprint_clusters=100, footprint_workers=10, unrelated_configmaps=10_000, unrelated_pods=10_000,
        footprint_window=20.0,
        cold_start_repeats=5, timeout=600.0, nodes=20,
        api_workers=1000, api_settle=10.0, many_clusters=100, many_workers=100, many_timeout=900.0,
    )


def quick(tools: tuple[str, ...] = ("kubedask", "raw"), scenarios: tuple[str, ...] = SCENARIOS) -> Plan:
    """Seconds, not minutes: proves every scenario's code path, not the figures."""
    return Plan(
        mode="quick", tools=tools, scenarios=scenarios,
        startup_sizes=(3,), repeats=2, scale_from=3, scale_to=1, scale_down_timeout=30.0,
        idle_clusters=2, idle_settle=2.0, idle_window=5.0,
        footprint_clusters=2, footprint_workers=2, unrelated_configmaps=20, unrelated_pods=20,
        footprint_window=2.0,
        cold_start_repeats=0, timeout=60.0, nodes=3,
        api_workers=3, api_settle=2.0, many_clusters=2, many_workers=3, many_timeout=60.0,
    )
