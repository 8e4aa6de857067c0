"""Command line: ``python -m devcluster up|down|status|kubeconfig|env|build|user|restart|pause|resume``."""

from __future__ import annotations

import argparse
import os
import sys

from devcluster import accounts, build, controlplane, lifecycle
from devcluster.build import BuildError
from devcluster.cluster import Cluster
from devcluster.processes import ComponentError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster", description=__doc__)
    parser.add_argument(
        "--name",
        default=os.environ.get("KUBEDASK_CLUSTER", lifecycle.DEFAULT_NAME),
        help="instance name; instances keep separate state and ports (default: %(default)s)",
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    up = verbs.add_parser("up", help="build (cached) and start the cluster")
    up.add_argument("--nodes", type=int, default=3, help="simulated KWOK nodes, 0-1000 (default: 3)")
    up.add_argument("--no-real-node", action="store_true", help="control plane and simulated nodes only")
    verbs.add_parser("down", help="stop every process the cluster started and remove its state")
    verbs.add_parser("status", help="each component's health")
    verbs.add_parser("kubeconfig", help="print the admin kubeconfig's path")
    verbs.add_parser("env", help="print `export KUBECONFIG=...` for eval")
    b = verbs.add_parser("build", help="build binaries only (default: what `up` needs)")
    b.add_argument("components", nargs="*", metavar="COMPONENT", help=", ".join(build.COMPONENTS))
    user = verbs.add_parser("user", help="mint a kubeconfig acting as a ServiceAccount (TokenRequest)")
    user.add_argument("namespace")
    user.add_argument("serviceaccount")
    restart = verbs.add_parser("restart", help="restart one control-plane component (chaos testing)")
    restart.add_argument("component", choices=sorted(controlplane.RESTARTABLE))
    restart.add_argument("--down-for", type=float, default=0.0, help="extra seconds to keep it stopped")
    restart.add_argument("--hard", action="store_true", help="SIGKILL instead of a graceful stop")
    for verb, what in (("pause", "SIGSTOP"), ("resume", "SIGCONT")):
        signalled = verbs.add_parser(verb, help=f"{what} one component's processes (chaos testing)")
        signalled.add_argument("component")
    args = parser.parse_args(argv)

    try:
        if args.verb == "up":
            lifecycle.up(args.name, nodes=args.nodes, real_node=not args.no_real_node)
        elif args.verb == "down":
            if not lifecycle.down(args.name):
                lifecycle.say(f"no cluster named {args.name!r} is running")
        elif args.verb == "status":
            health = lifecycle.status(args.name)
            if not health:
                print(f"no cluster named {args.name!r}; start one with: python -m devcluster up")
                return 1
            for component, state in health.items():
                print(f"{component:<26} {state}")
            return 0 if lifecycle.healthy(health) else 1
        elif args.verb in ("kubeconfig", "env", "user", "restart", "pause", "resume"):
            cluster = Cluster.load(args.name)
            if cluster is None:
                print(f"no cluster named {args.name!r}; start one with: python -m devcluster up", file=sys.stderr)
                return 1
            if args.verb == "kubeconfig":
                print(cluster.kubeconfig)
            elif args.verb == "env":
                print(f"export KUBECONFIG={cluster.kubeconfig}")
            elif args.verb == "user":
                print(accounts.service_account_kubeconfig(cluster, args.namespace, args.serviceaccount))
            elif args.verb == "restart":
                seconds = controlplane.restart(cluster, args.component, down_for=args.down_for, hard=args.hard)
                lifecycle.say(f"{args.component} restarted; unavailable for {seconds:.1f}s")
            elif args.verb == "pause":
                cluster.processes.pause(args.component)
            else:
                cluster.processes.resume(args.component)
        elif args.verb == "build":
            build.build(tuple(args.components) or build.CLUSTER_COMPONENTS)
    except (BuildError, ComponentError, ValueError, RuntimeError) as error:
        print(f"devcluster: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
