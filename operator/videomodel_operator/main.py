"""``videomodel-operator``: run the kopf operator against the current kubeconfig or in-cluster.

Settings users expect of an operator: which namespaces to watch (``-n``, repeatable) or the whole
cluster (the default, ``-A``); the lowest log level that is also posted as Kubernetes Events; a
liveness endpoint for the pod's probe; the drift-resync interval.

One replica writes: the chart runs exactly one, with a Recreate strategy. There is no leader
election: kopf's peering only pauses an equal-priority twin's handlers (not the resync task),
so two replicas would both write; the option is not offered rather than described as safe.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import kopf

from .handlers import OperatorConfig, build_registry

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def parse_args(argv: Sequence[str] | None = None) -> OperatorConfig:
    parser = argparse.ArgumentParser(prog="videomodel-operator", description=__doc__.split("\n")[0])
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], help="namespace to watch (repeatable)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch the whole cluster (default)")
    parser.add_argument("--event-level", choices=sorted(LEVELS), default="warning", help="post logs at/above as Events")
    parser.add_argument("--liveness", default="http://0.0.0.0:8080/healthz", help="liveness endpoint ('' disables)")
    parser.add_argument("--resync-seconds", type=float, default=60.0, help="drift resync interval")
    parser.add_argument("--log-level", choices=sorted(LEVELS), default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=LEVELS[args.log_level], format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return OperatorConfig(
        namespaces=tuple(args.namespace),
        event_level=LEVELS[args.event_level],
        resync_seconds=args.resync_seconds,
        liveness_endpoint=args.liveness or None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    registry, _ = build_registry(config)
    kopf.run(
        registry=registry,
        standalone=True,
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        liveness_endpoint=config.liveness_endpoint,
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
