"""`kubecrawl-operator run`: start the operator (kubeconfig outside a cluster, in-cluster config in a pod)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import threading
from dataclasses import dataclass
from typing import Any

from kubecrawl_operator.health import HealthServer, HealthState
from kubecrawl_operator.leader import LeaseConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    namespaces: tuple[str, ...]
    clusterwide: bool
    standalone: bool
    peering: str | None
    liveness: str | None
    verbose: bool
    lease: LeaseConfig | None = None  # --leader-elect


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
    run.add_argument(
        "--leader-elect",
        action="store_true",
        help="several replicas: the one holding a coordination.k8s.io Lease is active, the others stand by",
    )
    run.add_argument(
        "--leader-elect-namespace",
        default=os.environ.get("POD_NAMESPACE"),
        help="namespace of the Lease (env POD_NAMESPACE)",
    )
    run.add_argument("--leader-elect-name", default="kubecrawl-operator", help="name of the Lease")
    run.add_argument(
        "--identity",
        default=os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}",
        help="holder identity in the Lease (env POD_NAME, else host name and pid)",
    )
    run.add_argument("--lease-duration", type=float, default=15.0, help="seconds a standby waits out a silent holder")
    run.add_argument("--renew-deadline", type=float, default=10.0, help="seconds the holder may fail to renew")
    run.add_argument("--retry-period", type=float, default=2.0, help="seconds between acquire/renew attempts")
    run.add_argument(
        "--peering",
        default=None,
        help="kopf's own peering instead of a Lease (needs kopf's peering CRDs and a distinct priority per replica)",
    )
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
    if args.peering and args.leader_elect:
        parser.error("--peering and --leader-elect exclude each other")
    lease = None
    if args.leader_elect:
        if not args.leader_elect_namespace:
            parser.error("--leader-elect needs --leader-elect-namespace (or env POD_NAMESPACE)")
        try:
            lease = LeaseConfig(
                namespace=args.leader_elect_namespace,
                name=args.leader_elect_name,
                identity=args.identity,
                lease_duration=args.lease_duration,
                renew_deadline=args.renew_deadline,
                retry_period=args.retry_period,
            )
        except ValueError as exc:
            parser.error(str(exc))
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
        lease=lease,
    )


def _standby(options: RunOptions, state: HealthState) -> Any:
    """Block until this replica holds the Lease; None when SIGTERM/SIGINT came first."""
    from kubecrawl_operator.kube import load_api_client
    from kubecrawl_operator.leader import LeaseElector

    assert options.lease is not None
    elector = LeaseElector(load_api_client(), options.lease)
    state.role = "standby"
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:

        def attempted() -> None:
            state.holder = elector.holder
            state.tick()

        won = elector.acquire(stop, attempted)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return elector if won else None


def _keep_lease(elector: Any, lost: threading.Event, finished: threading.Event, state: HealthState) -> None:
    """Renew until kopf has finished; on a lost Lease stop kopf, and exit hard if it does not stop in time.

    Anything this thread cannot handle counts as a lost Lease: a renewing thread that died while kopf
    went on would leave this replica acting on a Lease that a standby takes over after its duration.
    """
    try:
        if elector.renew_until_lost(finished):
            return
    except Exception:
        logger.exception("the lease renewal failed unexpectedly: stopping as if the lease were lost")
    state.role = "stopping"
    lost.set()
    if state.loop is not None and state.kopf_stop is not None:
        state.loop.call_soon_threadsafe(state.kopf_stop.set)
    grace = max(1.0, elector.config.lease_duration - elector.config.renew_deadline - 1)
    if not finished.wait(grace):
        logger.error("kopf did not stop within %.0fs after the lease was lost: exiting now", grace)
        logging.shutdown()
        os._exit(1)


def run(options: RunOptions) -> int:
    import kopf

    import kubecrawl_operator.handlers  # noqa: F401  (registers the handlers)

    lease_name = f"{options.lease.namespace}/{options.lease.name}" if options.lease else ""
    state = HealthState(lease=lease_name)
    server = HealthServer(options.liveness, state).start() if options.liveness else None
    elector = None
    try:
        if options.lease is not None:
            elector = _standby(options, state)
            if elector is None:
                logger.info("stopped while standing by")
                return 0
        state.role = "active"
        lost, finished = threading.Event(), threading.Event()
        keeper = None
        if elector is not None:
            keeper = threading.Thread(
                target=_keep_lease, args=(elector, lost, finished, state), name="lease", daemon=True
            )
            keeper.start()

        async def operate() -> None:
            # An asyncio.Event, not a threading.Event: kopf would wait for the latter in an executor
            # thread that asyncio.run() then waits for at shutdown, forever.
            state.kopf_stop = asyncio.Event()
            state.loop = asyncio.get_running_loop()
            await kopf.operator(
                standalone=options.standalone or options.lease is not None,
                peering_name=None if options.lease is not None else options.peering,
                clusterwide=options.clusterwide,
                namespaces=options.namespaces,
                stop_flag=state.kopf_stop,
                ready_flag=state.kopf_ready,
            )

        try:
            asyncio.run(operate())
        finally:
            finished.set()
            state.role = "stopping"
        if keeper is not None:
            keeper.join(timeout=5)
        if lost.is_set():
            return 1  # exit non-zero: the kubelet restarts the container, which stands by again
        if elector is not None:
            elector.release()
        return 0
    finally:
        if server is not None:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if options.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run(options)


if __name__ == "__main__":
    raise SystemExit(main())
