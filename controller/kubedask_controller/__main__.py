"""``python -m kubedask_controller``: run the controller.

Examples::

    python -m kubedask_controller --namespace team-a --namespace team-b
    python -m kubedask_controller --all-namespaces --policy /etc/kubedask/policy.yaml
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys

import kopf

from . import handlers  # noqa: F401 - registers the handlers
from .options import Options


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Options]:
    defaults = Options.from_env()
    parser = argparse.ArgumentParser(prog="python -m kubedask_controller", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--namespace", "-n", action="append", default=[],
                       help="watch this namespace (repeatable)")
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace")
    parser.add_argument("--policy", default=defaults.policy_file, metavar="FILE",
                        help="YAML/JSON security policy (env KUBEDASK_POLICY_FILE; "
                             "KUBEDASK_POLICY_* override single fields)")
    parser.add_argument("--health-port", type=int, default=defaults.health_port,
                        help="port for /healthz and /readyz (0 disables; default %(default)s)")
    parser.add_argument("--metrics-port", type=int, default=defaults.metrics_port,
                        help="port for Prometheus /metrics (0 disables; default %(default)s)")
    parser.add_argument("--bind-host", default=defaults.bind_host, help="address for those ports")
    parser.add_argument("--no-leader-election", dest="leader_election", action="store_false",
                        default=defaults.leader_election,
                        help="act without holding the Lease (only for a single replica)")
    parser.add_argument("--own-namespace", default=defaults.own_namespace, metavar="NAMESPACE",
                        help="the namespace the controller runs in (env POD_NAMESPACE); never served, and the "
                             "default for the Lease")
    parser.add_argument("--lease-namespace", default=None,
                        help="namespace of the leader-election Lease (default: env KUBEDASK_LEASE_NAMESPACE, "
                             f"else the own namespace, else {defaults.lease_namespace!r})")
    parser.add_argument("--resync-interval", type=float, default=defaults.resync_interval,
                        help="seconds between read-only resyncs of each request")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    lease_namespace = (args.lease_namespace or os.environ.get("KUBEDASK_LEASE_NAMESPACE") or args.own_namespace
                       or Options.lease_namespace)
    options = dataclasses.replace(
        defaults, policy_file=args.policy, health_port=args.health_port or None,
        metrics_port=args.metrics_port or None, bind_host=args.bind_host,
        leader_election=args.leader_election, lease_namespace=lease_namespace,
        resync_interval=args.resync_interval, own_namespace=args.own_namespace or None)
    error = options.served_namespace_error(args.namespace)
    if error:
        parser.error(error)
    return args, options


def main(argv: list[str] | None = None) -> int:
    args, options = parse_args(argv)
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # Kopf's own chatter (every watch event at DEBUG) is noise at INFO.
    quiet = max(logging.getLevelName(args.log_level), logging.WARNING)
    for noisy in ("kopf", "urllib3", "asyncio", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(quiet)
    kopf.run(clusterwide=args.all_namespaces, namespaces=args.namespace, standalone=True,
             memo=kopf.Memo(options=options, namespaces=None if args.all_namespaces else list(args.namespace)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
