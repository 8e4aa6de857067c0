"""Benchmarks: kubedask vs the dask-kubernetes operator vs raw pod creation.

Run ``python -m benchmarks --help``. Layout: plan (what to measure) -> tools (who is measured) ->
scenarios (how) -> audit/processes (what is read) -> report/plot (what is written).
"""
