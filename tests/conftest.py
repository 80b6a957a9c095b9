"""Shared fixtures live in tests/fixtures/, one module per concern, loaded as plugins.

``make test`` runs the suite on two pytest-xdist workers with ``--dist loadgroup``. Tests that
start a real vLLM engine are grouped so each engine still starts once: every user of the
session-wide ``family_server`` goes to one worker, and every other engine test runs on the worker
that holds the rest of its module (its engine fixture is module-scoped). Tests marked ``serial``
measure time or load and run afterwards, alone on the machine (``-m serial``).
"""

from __future__ import annotations

import os

import pytest
from _pytest.nodeid import NodeId

pytest_plugins = ["tests.fixtures.models", "tests.fixtures.videos", "tests.harness.reports"]


def pytest_configure(config: pytest.Config) -> None:
    """On an xdist worker, the vLLM engines this worker starts compute on a CPU of their own.

    vLLM's CPU worker binds its OpenMP threads to the last cores (``VLLM_CPU_OMP_THREADS_BIND=auto``),
    so two workers' engines would share one core while the other idles. Worker N binds to CPU N
    (modulo the CPUs this process may use); a value set by the caller is kept.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
        cpus = sorted(os.sched_getaffinity(0))
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = str(cpus[int(worker[2:]) % len(cpus)])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "family_server" in getattr(item, "fixturenames", ()):
            group = "family_server"
        elif item.get_closest_marker("engine") is not None:
            group = item.module.__name__ if isinstance(item, pytest.Function) else item.nodeid
        else:
            continue
        item.add_marker(pytest.mark.xdist_group(group))
        if getattr(config.option, "loadgroup", False):
            # What xdist's worker does with the mark: the controller schedules by the node id's
            # "@group" suffix. pytest-xdist 3.8 writes it to ``item._nodeid``, which pytest 9.2 no
            # longer reads (the id is ``item._id``), so without this every group is split.
            item._id = NodeId.parse(f"{item.nodeid}@{group}")
