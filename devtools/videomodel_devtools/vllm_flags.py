"""Generate the operator's list of vLLM engine flags from the installed vLLM's own parser.

The operator image has no vLLM, yet ``spec.engine.extraArgs`` must be checked against the flags
the server's engine accepts before a pod crash-loops on a typo. The server parses pass-through
arguments with ``AsyncEngineArgs.add_cli_args`` (``videomodel_server.engine.engine_argv``), so
that parser is the authority: this module walks its actions and writes, per option string,
whether it takes a value and its choices, into ``videomodel_operator/spec/vllm_engine_flags.json``.
``tests/operator/test_engine_flags.py`` regenerates it from the installed vLLM and compares, so the
file cannot drift from the lock's vLLM.

Run: ``.venv/bin/python -m videomodel_devtools.vllm_flags`` (rewrites the file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import videomodel_operator.spec as operator_spec

TARGET = Path(operator_spec.__file__).parent / "vllm_engine_flags.json"


def engine_flags() -> dict[str, Any]:
    """Every option string of vLLM's engine-argument parser: ``{"value": bool, "choices": [...]?, "many": bool?}``."""
    import argparse

    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = AsyncEngineArgs.add_cli_args(FlexibleArgumentParser())  # type: ignore[no-untyped-call]
    flags: dict[str, Any] = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        entry: dict[str, Any] = {"value": action.nargs != 0}
        if action.nargs in ("+", "*"):
            entry["many"] = True
        if action.nargs == "?":
            entry["optional"] = True
        if action.choices is not None:
            entry["choices"] = sorted(str(c) for c in action.choices)
        for option in action.option_strings:
            flags[option] = entry
    return dict(sorted(flags.items()))


def vllm_version() -> str:
    import vllm

    return str(vllm.__version__).split("+")[0]


def document() -> str:
    doc = {
        "generated_by": "python -m videomodel_devtools.vllm_flags",
        "parser": "vllm.engine.arg_utils.AsyncEngineArgs.add_cli_args",
        "vllm": vllm_version(),
        "flags": engine_flags(),
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def main() -> None:
    TARGET.write_text(document())
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
