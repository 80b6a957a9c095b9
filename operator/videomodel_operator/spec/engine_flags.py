"""``spec.engine.extraArgs`` checked against vLLM's own engine-argument parser, without vLLM.

The operator image has no vLLM, so the parser's flags travel as data: ``vllm_engine_flags.json``,
generated from the lock's vLLM by ``python -m videomodel_devtools.vllm_flags`` (and compared with a
fresh generation by ``tests/operator/test_engine_flags.py``, so it cannot drift). The server hands
these arguments to ``AsyncEngineArgs``'s parser after its own, so a flag that parser does not know
would crash-loop the pod, and a flag the operator derives from the budget (:data:`OWNED_ENGINE_FLAGS`)
would silently override it: both are refused here, naming the flag, before anything is applied.

Accepted forms are the parser's: ``--flag``, ``--flag VALUE``, ``--flag=VALUE``, ``--flag V1 V2`` for
list flags, ``--no-flag`` for boolean ones, underscores for dashes (vLLM normalizes them), and
``--json-flag.key VALUE`` for a key of a JSON-valued flag. Pure: no I/O beyond reading the data
file of this package once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from videomodel_server.budget.contract import OWNED_ENGINE_FLAGS

DATA = Path(__file__).with_name("vllm_engine_flags.json")
_SHOWN = 64


@cache
def vllm_engine_flags() -> tuple[str, Mapping[str, Mapping[str, Any]]]:
    """(vLLM version, ``{option string: {"value": bool, "choices"?, "many"?, "optional"?}}``)."""
    doc = json.loads(DATA.read_text())
    return str(doc["vllm"]), doc["flags"]


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _normalized(flag: str) -> str:
    """vLLM's ``FlexibleArgumentParser`` reads ``--max_model_len`` as ``--max-model-len``."""
    if not flag.startswith("--"):
        return flag
    name, dot, key = flag[2:].partition(".")
    return "--" + name.replace("_", "-") + dot + key


def extra_args_problems(args: Sequence[str]) -> list[str]:
    """One sentence per pass-through argument the server's engine would refuse or the operator owns."""
    version, flags = vllm_engine_flags()
    problems: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-") or arg == "--":
            problems.append(f"{_shown(arg)!r} is not a flag (a value must follow the flag it belongs to)")
            continue
        raw, sep, inline = arg.partition("=")
        has_inline = bool(sep)
        flag = _normalized(raw)
        base = flag.split(".", 1)[0]
        if base in OWNED_ENGINE_FLAGS or flag in OWNED_ENGINE_FLAGS:
            problems.append(
                f"{_shown(raw)} is set by the operator from the budget and spec (owned: "
                f"{', '.join(sorted(f for f in OWNED_ENGINE_FLAGS if f.startswith('--')))}); remove it from extraArgs"
            )
            i = _skip_values(args, i, has_inline)
            continue
        spec = flags.get(base)
        if spec is None:
            problems.append(f"{_shown(raw)} is not an engine argument of vLLM {version}")
            i = _skip_values(args, i, has_inline)
            continue
        if base != flag:  # --json-flag.key VALUE
            if not has_inline and (i >= len(args) or args[i].startswith("--")):
                problems.append(f"{_shown(raw)} needs a value")
            elif not has_inline:
                i += 1
            continue
        if not spec["value"]:
            if has_inline:
                problems.append(f"{_shown(raw)} takes no value")
            continue
        values: list[str] = [inline] if has_inline else []
        if not has_inline:
            while i < len(args) and not args[i].startswith("--"):
                values.append(args[i])
                i += 1
                if not spec.get("many"):
                    break
        if not values and not spec.get("optional"):
            problems.append(f"{_shown(raw)} needs a value")
            continue
        choices = spec.get("choices")
        for value in values:
            if choices is not None and value not in choices:
                problems.append(f"{_shown(raw)} must be one of {', '.join(choices)} (got {_shown(value)!r})")
    return problems


def _skip_values(args: Sequence[str], i: int, has_inline: bool) -> int:
    """Past the values of a refused flag, so they are not reported as stray arguments too."""
    if has_inline:
        return i
    while i < len(args) and not args[i].startswith("--"):
        i += 1
    return i
