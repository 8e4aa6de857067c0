"""``python -m benchmarks``: kubedask vs the dask-kubernetes operator vs raw pod creation.

Examples::

    python -m benchmarks                      # full run on its own local cluster "bench" (~1-1.5 h)
    python -m benchmarks --quick --output /tmp/bench   # smoke test of the runner (~2 min)
    python -m benchmarks --scenarios startup,scale_down --tools kubedask,raw --keep-cluster
    python -m benchmarks --scenarios many_clusters,api_requests --many 2x10 --api-workers 10 --cluster kubedask

Writes results.json, results.md and results.png under docs/benchmarks/ (quick runs: results-quick.*).
Run with PYTHONPATH=client:controller:. and the project's venv python.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import signal
import sys
import time
from pathlib import Path

from . import plan as plans
from .runner import Options, run
from .tools import REPO


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, kubedask and raw only (CI smoke)")
    parser.add_argument("--tools", help=f"comma-separated subset of {','.join(plans.TOOLS)}")
    parser.add_argument("--scenarios", help=f"comma-separated subset of {','.join(plans.SCENARIOS)}")
    parser.add_argument("--cluster", default=os.environ.get("KUBEDASK_BENCH_CLUSTER", "bench"),
                        help="devcluster instance to use; started (without a real node) if not up, and "
                             "stopped afterwards unless --keep-cluster (default: %(default)s)")
    parser.add_argument("--keep-cluster", action="store_true", help="leave a cluster this run started")
    parser.add_argument("--nodes", type=int, help="simulated nodes when the runner starts the cluster")
    parser.add_argument("--timeout", type=float, help="upper bound for any single wait, seconds")
    parser.add_argument("--sizes", help="scenario 1's worker counts, e.g. 10,100 (scenario 2 then scales "
                                        "the largest down to a tenth)")
    parser.add_argument("--repeats", type=int, help="scenario 1's interleaved runs per tool and size (median "
                                                    "reported; default 3, --quick 2)")
    parser.add_argument("--many", metavar="CLUSTERSxWORKERS",
                        help="scenario 7's clusters and workers per cluster (default 100x100)")
    parser.add_argument("--api-workers", type=int, help="scenario 6's workers (default 1000)")
    parser.add_argument("--cold-start-runs", type=int, help="scenario 5's runs on the real node (default 5)")
    parser.add_argument("--output", type=Path, help="report directory (default: docs/benchmarks/ for full "
                                                    "runs, the run's log directory for --quick)")
    parser.add_argument("--merge", action="store_true",
                        help="add this run's scenarios to the existing result file instead of replacing it")
    parser.add_argument("--no-plot", dest="plot", action="store_false", help="skip the PNG (no matplotlib)")
    args = parser.parse_args(argv)

    make = plans.quick if args.quick else plans.full
    kwargs: dict[str, tuple[str, ...]] = {}
    if args.tools:
        kwargs["tools"] = tuple(t.strip() for t in args.tools.split(",") if t.strip())
    if args.scenarios:
        kwargs["scenarios"] = tuple(s.strip() for s in args.scenarios.split(",") if s.strip())
    try:
        plan = make(**kwargs)
        overrides: dict[str, object] = {
            k: v for k, v in (("nodes", args.nodes), ("timeout", args.timeout), ("repeats", args.repeats),
                              ("api_workers", args.api_workers), ("cold_start_repeats", args.cold_start_runs))
            if v is not None}
        if args.many:
            overrides.update(zip(("many_clusters", "many_workers"), parse_many(args.many), strict=True))
        if args.sizes:
            sizes = tuple(int(s) for s in args.sizes.split(","))
            overrides.update(startup_sizes=sizes, scale_from=max(sizes), scale_to=max(1, max(sizes) // 10))
        if overrides:
            plan = dataclasses.replace(plan, **overrides)  # type: ignore[arg-type]
    except ValueError as exc:
        parser.error(str(exc))
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    from devcluster.paths import cache_dir

    run_dir = cache_dir() / "bench-runs" / f"{stamp}-{plan.mode}"
    out_dir = args.output or (REPO / "docs" / "benchmarks" if plan.mode == "full" else run_dir)
    command = "python -m benchmarks " + shlex.join(argv if argv is not None else sys.argv[1:])
    return Options(plan=plan, cluster_name=args.cluster, out_dir=out_dir, run_dir=run_dir,
                   keep_cluster=args.keep_cluster, plot=args.plot, command=command.strip(), merge=args.merge)


def parse_many(value: str) -> tuple[int, int]:
    """``"100x100"`` -> (100 clusters, 100 workers each)."""
    clusters, sep, workers = value.lower().partition("x")
    if not sep or not clusters.strip().isdigit() or not workers.strip().isdigit():
        raise ValueError(f"--many takes CLUSTERSxWORKERS, e.g. 100x100 (got {value!r})")
    return int(clusters), int(workers)


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    # SIGTERM (timeout, CI) must still run the cleanup: stop controllers, remove namespaces.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = run(options)
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
