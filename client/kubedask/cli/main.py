# mypy: disallow-untyped-calls=False
"""``kubectl-dask``: the kubectl plugin's command line (kubectl runs it as ``kubectl dask ...``).

Flags follow kubectl: ``--kubeconfig``, ``--context``, ``-n/--namespace``, ``-A/--all-namespaces`` and
``-o wide|json|yaml`` are accepted before or after the subcommand. Exit code 0 on success, 1 on any error,
printed as one line on stderr.

Example:
    >>> parse(["get", "-A", "-o", "wide"]).output
    'wide'
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, TextIO

from .. import __version__
from . import dashboard, describe, get, logs, scale
from .context import CliError, ClusterKube, Context, KubeClusterApi, load_auth, one_line
from .output import OUTPUT_FORMATS, use_colour

PROG = "kubectl dask"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """kubectl's habit: one line naming the problem, exit code 1 (argparse would exit 2 with usage)."""
        self.exit(1, f"error: {message}; see '{self.prog} --help'\n")


def _global_flags(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: a flag given before the subcommand must not be reset by the subcommand's default.
    add = parser.add_argument
    add("--kubeconfig", default=argparse.SUPPRESS, help="path of the kubeconfig file (default: $KUBECONFIG)")
    add("--context", default=argparse.SUPPRESS, help="the kubeconfig context to use")
    add("-n", "--namespace", default=argparse.SUPPRESS, help="the namespace (default: the context's)")
    add("-A", "--all-namespaces", action="store_true", default=argparse.SUPPRESS,
        help="list clusters of every namespace (needs the right to list configmaps at the cluster scope)")


def _output_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", choices=OUTPUT_FORMATS, default=argparse.SUPPRESS,
                        help="wide: more columns; json, yaml: the clusters as objects")


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="Look at and control kubedask Dask clusters (request ConfigMaps).")
    parser.add_argument("--version", action="version", version=f"kubectl-dask {__version__}")
    _global_flags(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser, required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        _global_flags(sub)
        return sub

    sub = command("get", "list clusters: phase, workers ready/requested, scheduler, dashboard, age")
    sub.add_argument("name", nargs="?", help="one cluster (default: all of the namespace)")
    _output_flag(sub)
    sub = command("describe", "a cluster's state, conditions, pods and recent events")
    sub.add_argument("name")
    sub = command("scale", "set a cluster's worker count (turns adaptive scaling off)")
    sub.add_argument("name")
    sub.add_argument("workers", type=int, nargs="?", help="the number of workers")
    sub.add_argument("--replicas", type=int, dest="replicas", help="the number of workers (kubectl scale's flag)")
    sub.add_argument("--group", default=scale.DEFAULT_GROUP, help="the worker group to scale (default: default)")
    sub = command("logs", "print the log of the cluster's scheduler (default), a worker, or its job")
    sub.add_argument("name")
    which = sub.add_mutually_exclusive_group()
    which.add_argument("--scheduler", action="store_true", help="the scheduler's log (the default)")
    which.add_argument("--worker", metavar="POD", help="a worker pod's log: its name or its suffix")
    which.add_argument("--job", action="store_true", help="the log of the cluster's batch job")
    sub.add_argument("--tail", type=int, default=None, metavar="N", help="only the last N lines")
    sub = command("dashboard", "forward the dashboard through the API server and print its link (Ctrl-C stops)")
    sub.add_argument("name")
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    args = build_parser().parse_args(list(argv))
    for flag, default in (("kubeconfig", None), ("context", None), ("namespace", None),
                          ("all_namespaces", False), ("output", None)):
        if not hasattr(args, flag):
            setattr(args, flag, default)
    return args


async def dispatch(ctx: Context, args: argparse.Namespace) -> None:
    if ctx.all_namespaces and args.command != "get":
        raise CliError(f"-A/--all-namespaces only applies to get; give the cluster's namespace to {args.command} "
                       f"with -n NAMESPACE")
    if args.command == "get":
        await get.run(ctx, args.name)
    elif args.command == "describe":
        await describe.run(ctx, args.name)
    elif args.command == "scale":
        if (args.workers is None) == (args.replicas is None):
            raise CliError("give the number of workers once: `kubectl dask scale NAME N` or `--replicas N`")
        await scale.run(ctx, args.name, args.workers if args.workers is not None else args.replicas, args.group)
    elif args.command == "logs":
        target = (logs.Target("worker", args.worker) if args.worker else
                  logs.Target("job") if args.job else logs.Target("scheduler"))
        await logs.run(ctx, args.name, target, tail=args.tail)
    elif args.command == "dashboard":
        await dashboard.run(ctx, args.name)


KubeFactory = Callable[[argparse.Namespace], tuple[ClusterKube, str]]


def connect(args: argparse.Namespace) -> tuple[ClusterKube, str]:
    """The API and the namespace to act in: ``-n``, else the context's, else ``default``."""
    loaded = load_auth(args.kubeconfig, args.context)
    return KubeClusterApi(loaded.configuration), args.namespace or loaded.namespace or "default"


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None,
         kube_factory: KubeFactory = connect) -> int:
    """Run one command; returns the exit code (``kubectl-dask`` exits with it)."""
    out, err = out or sys.stdout, err or sys.stderr
    args = parse(sys.argv[1:] if argv is None else argv)
    kube: ClusterKube | None = None
    try:
        kube, namespace = kube_factory(args)
        ctx = Context(kube, namespace, all_namespaces=bool(args.all_namespaces), output=args.output,
                      out=out, err=err, colour=use_colour(out))
        asyncio.run(dispatch(ctx, args))
    except CliError as e:
        print(f"error: {e}", file=err)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug or an unforeseen failure: still one line, naming what it was
        print(f"error: {type(e).__name__}: {one_line(str(e))}", file=err)
        return 1
    finally:
        if kube is not None:
            kube.close()
    return 0


def entry() -> NoReturn:
    """The ``kubectl-dask`` console script."""
    sys.exit(main())
