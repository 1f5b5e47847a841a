"""`kubecrawl-operator run`: start the operator (kubeconfig outside a cluster, in-cluster config in a pod)."""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    namespaces: tuple[str, ...]
    clusterwide: bool
    standalone: bool
    peering: str | None
    liveness: str | None
    verbose: bool


def parse_args(argv: list[str] | None = None) -> RunOptions:
    parser = argparse.ArgumentParser(prog="kubecrawl-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], help="namespace to watch (repeatable; exact names)"
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (the default)")
    run.add_argument("--standalone", action="store_true", help="no peering: the only operator replica")
    run.add_argument("--peering", default=None, help="KopfPeering name, for several operator replicas")
    run.add_argument(
        "--liveness", default=os.environ.get("KUBECRAWL_OPERATOR_LIVENESS"), help="e.g. http://0.0.0.0:8080/healthz"
    )
    run.add_argument("--worker-image", default=None, help="default worker image (env KUBECRAWL_WORKER_IMAGE)")
    run.add_argument(
        "--interval", type=float, default=None, help="seconds between re-reconciles (env KUBECRAWL_OPERATOR_INTERVAL)"
    )
    run.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.peering and args.standalone:
        parser.error("--peering and --standalone exclude each other")
    # Handlers read their settings from the environment at import time: set it before importing them.
    if args.worker_image:
        os.environ["KUBECRAWL_WORKER_IMAGE"] = args.worker_image
    if args.interval is not None:
        os.environ["KUBECRAWL_OPERATOR_INTERVAL"] = str(args.interval)
    namespaces = tuple(args.namespace)
    return RunOptions(
        namespaces=namespaces,
        clusterwide=not namespaces,
        standalone=args.standalone or not args.peering,
        peering=args.peering,
        liveness=args.liveness,
        verbose=args.verbose,
    )


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if options.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    import kopf

    import kubecrawl_operator.handlers  # noqa: F401  (registers the handlers)

    kopf.run(
        standalone=options.standalone,
        peering_name=options.peering,
        liveness_endpoint=options.liveness,
        clusterwide=options.clusterwide,
        namespaces=options.namespaces,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
