"""The serving contract: what the operator hands the server, in one piece.

The operator writes a :class:`ServingContract` into the model's ConfigMap as ``serving.json``
and starts the server with ``--budget-file`` pointing at it; someone starting the server by hand
passes the same fields as flags. Both roads end in the same settings (the server's CLI parses the
file and the flags into one mapping), and the names of flags, CR fields and JSON keys are all
derived from the dataclass fields below, so a new field cannot fall between the two sides.

The contract also carries the plan the operator derived (:data:`SERVED_PLAN_FIELDS` of it). The
server derives its own from the budget it received and refuses to start when a field differs
(:func:`plan_differences`): an operator and a server that disagree on the arithmetic must not
serve a budget neither of them priced.

Pure: no I/O. The defaults here are the only copy: the server's settings and the operator's
sizing both read them.
"""

from __future__ import annotations

import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Union

from .names import flag
from .plan import Plan, VideoBudget

CONTRACT_VERSION = 1
BUDGET_FILE_KEY = "serving.json"
"""The ConfigMap key (and file name) of the contract."""


def _setting(default: Any, help: str, *, unit: str = "", minimum: float | None = None) -> Any:
    """A settings field; ``minimum`` (inclusive) is checked by :func:`bound_problems`."""
    return field(default=default, metadata={"help": help, "unit": unit, "minimum": minimum})


OWNED_ENGINE_FLAGS = frozenset(
    {
        "--model",
        "--served-model-name",
        "--max-model-len",
        "--limit-mm-per-prompt",
        "--mm-processor-kwargs",
        "--tensor-parallel-size",
        "-tp",
        "--dtype",
        "--gpu-memory-utilization",
        "--mm-processor-cache-gb",
        "--mm-encoder-tp-mode",
    }
)
"""vLLM flags the server sets from the budget and :class:`EngineSettings`: never passed through
(the server refuses them after ``--``; the operator refuses them in ``spec.engine.extraArgs``)."""

ENCODER_TP_MODES = ("data", "weights")


@dataclass(frozen=True)
class EngineSettings:
    """vLLM settings the budget does not decide (the plan decides the rest)."""

    tensor_parallel_size: int = _setting(1, "GPUs one engine spans.", minimum=1)
    dtype: str = _setting("auto", "Weights and KV cache dtype (auto: the checkpoint's).")
    gpu_memory_utilization: float = _setting(0.9, "Fraction of each GPU's memory vLLM may take.", minimum=0.01)
    max_model_len: int | None = _setting(None, "Context per request; default: the plan's. Never below it.", minimum=1)
    mm_processor_cache_gb: float = _setting(
        4.0, "vLLM's multimodal processor cache in host memory, per API process.", unit="GiB", minimum=0
    )
    mm_encoder_tp_mode: str | None = _setting(
        None,
        "vLLM's --mm-encoder-tp-mode: data runs the whole vision encoder on every GPU, each on its share "
        "of the media (no all-reduce per layer); weights shards it like the language model. Unset: vLLM's default.",
    )
    skip_warmup: bool = _setting(
        False,
        "Report ready once loaded, without first running the budget's worst case through the engine "
        "(max_tokens=1) to prove it fits.",
    )


BYTES_PER_PIXEL_VALUE = 4
"""The HF processors hand vLLM ``pixel_values_videos`` as float32."""


def processor_cache_gb(
    tokens_per_video: int,
    videos_per_prompt: int,
    tokens_per_image: int,
    images_per_prompt: int,
    patch_size: int,
    merge_size: int,
    temporal_patch_size: int,
    requests: int,
) -> float:
    """vLLM's multimodal processor cache (``--mm-processor-cache-gb``) sized from the budget.

    One media token is ``merge_size**2`` patches of ``3 * temporal_patch_size * patch_size**2``
    float32 values (the processed tensor the cache holds), so a worst-case video costs
    ``tokens_per_video * merge_size**2 * 3 * temporal_patch_size * patch_size**2 * 4`` bytes (308 MB
    for Qwen2-VL at 16,386 tokens). The cache holds the worst-case media of ``requests`` prompts
    (the requests admitted at once), rounded up to 0.5 GiB, at least 0.5 GiB: every request in flight
    can be re-sent and hit. vLLM keeps one such cache per API process and one in the engine core.
    """
    per_token = merge_size**2 * 3 * temporal_patch_size * patch_size**2 * BYTES_PER_PIXEL_VALUE
    per_prompt = (tokens_per_video * videos_per_prompt + tokens_per_image * images_per_prompt) * per_token
    gib = per_prompt * max(1, requests) / 1024**3
    return max(0.5, math.ceil(gib * 2) / 2)


@dataclass(frozen=True)
class AdmissionSettings:
    """How much work one replica takes on at once; the operator sizes pods and the HPA from it.

    The defaults are what a server started by hand gets. The operator writes every field out,
    deriving the three that depend on the GPU and the pod rather than on taste (a CR value wins):
    ``max_concurrent_requests`` from the plan's concurrency (:func:`concurrency_cap`), and
    ``decode_workers`` / ``decode_threads`` from the pod's CPU (:func:`decode_pool`).
    """

    max_concurrent_requests: int = _setting(4, "Requests past admission (fetch, decode, engine) at once.", minimum=1)
    max_queued_requests: int = _setting(16, "Requests waiting for a slot; past this a 503 comes at once.", minimum=0)
    queue_timeout: float = _setting(30.0, "Longest wait for a slot before a 503.", unit="s", minimum=0.001)
    retry_after_seconds: int = _setting(2, "Retry-After sent with a 503.", unit="s", minimum=1)
    request_timeout: float = _setting(
        600.0, "Deadline of one whole request, generation included.", unit="s", minimum=0.001
    )
    decode_workers: int = _setting(2, "Decode worker processes (each runs one video at a time).", minimum=1)
    decode_timeout: float = _setting(60.0, "Longest one video may spend in a decode worker.", unit="s", minimum=0.001)
    decode_threads: int = _setting(
        0,
        "CPU threads of a lone decode (FFmpeg's and the resizer's), shared by the decodes running at once; "
        "0: one per usable CPU (at most 16).",
        minimum=0,
    )
    decode_cache_bytes: int = _setting(
        1024**3, "Decoded videos kept in host memory for repeated requests; 0 disables.", unit="bytes", minimum=0
    )
    drain_timeout: float = _setting(30.0, "On SIGTERM, how long in-flight requests get to finish.", unit="s", minimum=0)


MAX_DERIVED_CONCURRENT_REQUESTS = 16
"""The most requests a derived admission cap lets in at once, however many the KV cache holds: each
admitted request holds its downloads and decoded frames in host memory (the pod is sized for them,
:mod:`videomodel_operator.rendering.sizing`), and past a few requests per GPU vLLM's batch, not
admission, is what limits throughput. Set ``maxConcurrentRequests`` for more."""
MAX_DECODE_THREADS = 16
"""FFmpeg's own cap on frame threads."""
DECODE_CPU_MILLI = 1000
"""One decode worker's CPU (a whole core: decoding is compute-bound)."""


def _default(cls: type[Any], name: str) -> Any:
    return next(f.default for f in fields(cls) if f.name == name)


def concurrency_cap(plan_concurrency: int | None, *, ceiling: int = MAX_DERIVED_CONCURRENT_REQUESTS) -> int:
    """The admission cap a plan implies: the full-budget requests its KV cache holds at once.

    ``min(plan concurrency, ceiling)``, never below 1 (a plan that fits none is refused
    elsewhere; the cap only has to be valid). Without a memory model (``None``: the plan was
    derived without a GPU spec, as by a server started by hand) it is the setting's default.
    """
    if plan_concurrency is None:
        return default_concurrency()
    return max(1, min(plan_concurrency, ceiling))


def default_concurrency() -> int:
    """``AdmissionSettings.max_concurrent_requests``'s default (the cap of a server started by hand)."""
    return int(_default(AdmissionSettings, "max_concurrent_requests"))


def decode_pool(decode_cpu_milli: int, parallel_decodes: int, *, workers: int | None = None) -> tuple[int, int]:
    """``(workers, threads of a lone decode)`` for ``decode_cpu_milli`` of CPU given to decoding.

    One worker per whole core, but no more than the videos that can be decoding at once
    (``parallel_decodes``: admitted requests x videos per prompt), unless ``workers`` is given.
    A decode gets a thread per decoding core (at most :data:`MAX_DECODE_THREADS`; one resizes,
    the rest run FFmpeg): a lone request decodes on all of them, decodes running at once divide
    them (measured in issue 10: one thread left a long clip on one core of two). That is
    ``decode_threads=0``'s rule, but counted from the pod's CPU request rather than the CPUs the
    process sees: on a large node the affinity mask shows every core, and 16 threads per decode
    against a request of a few cores only
    gets the pod throttled. At least one of each, however little CPU there is.
    """
    cores = max(1, decode_cpu_milli // DECODE_CPU_MILLI)
    if workers is None:
        workers = max(1, min(cores, parallel_decodes))
    return workers, min(MAX_DECODE_THREADS, cores)


SERVED_PLAN_FIELDS: tuple[str, ...] = tuple(
    f.name
    for f in fields(Plan)
    if f.name
    not in {
        # What the model's memory and the GPUs cost: the server has no GPU spec, and a local
        # checkpoint may differ from the built-in table in ways that do not change what is served.
        "model",
        "context_limit",
        "kv_bytes_per_token",
        "kv_bytes_per_request",
        "weights_bytes",
        "kv_cache_bytes_available",
        "concurrent_requests",
        "notes",
    }
)
"""The plan fields that decide what a request may contain and what the engine is given."""


@dataclass(frozen=True)
class ServingContract:
    """Everything the operator decides for one server: the budget, the engine, admission, the plan."""

    budget: VideoBudget
    engine: EngineSettings = field(default_factory=EngineSettings)
    admission: AdmissionSettings = field(default_factory=AdmissionSettings)
    plan: Mapping[str, Any] | None = None
    """The operator's plan (:data:`SERVED_PLAN_FIELDS`); None when started by hand."""

    @classmethod
    def for_plan(
        cls, budget: VideoBudget, engine: EngineSettings, admission: AdmissionSettings, plan: Plan
    ) -> ServingContract:
        served = {name: getattr(plan, name) for name in SERVED_PLAN_FIELDS}
        return cls(budget=budget, engine=engine, admission=admission, plan=served)

    def to_json(self) -> str:
        doc = {
            "version": CONTRACT_VERSION,
            "budget": asdict(self.budget),
            "engine": asdict(self.engine),
            "admission": asdict(self.admission),
            "plan": dict(self.plan) if self.plan is not None else None,
        }
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"


SECTIONS: dict[str, type[Any]] = {"budget": VideoBudget, "engine": EngineSettings, "admission": AdmissionSettings}


class ContractError(ValueError):
    """A budget file the server cannot use; the message names the key."""


def read_contract(text: str) -> dict[str, Any]:
    """Parse a budget file into ``{section: {field: value}, "plan": {...} | None}``.

    Only the shape is checked here (known sections and keys, the version); the values go through
    the same validation as flags.
    """
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContractError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ContractError("the top level must be an object")
    if doc.get("version") != CONTRACT_VERSION:
        raise ContractError(f"version {doc.get('version')!r} is not supported (this server reads {CONTRACT_VERSION})")
    unknown = set(doc) - {"version", "plan", *SECTIONS}
    if unknown:
        raise ContractError(f"unknown keys {sorted(unknown)}")
    out: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        values = doc.get(section) or {}
        if not isinstance(values, dict):
            raise ContractError(f"{section} must be an object")
        names = {f.name for f in fields(cls)}
        extra = set(values) - names
        if extra:
            raise ContractError(f"unknown {section} fields {sorted(extra)}")
        out[section] = values
    plan = doc.get("plan")
    if plan is not None and not isinstance(plan, dict):
        raise ContractError("plan must be an object")
    out["plan"] = plan
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and math.isclose(a, b, rel_tol=1e-9)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def plan_differences(expected: Mapping[str, Any], plan: Plan) -> list[str]:
    """One sentence per served plan field whose value differs from ``expected`` (or is missing)."""
    problems = []
    for name in SERVED_PLAN_FIELDS:
        if name not in expected:
            problems.append(f"plan.{name} is missing from the budget file")
            continue
        mine = getattr(plan, name)
        if not _same(expected[name], mine):
            problems.append(f"plan.{name}: the operator rendered {expected[name]!r}, this server derives {mine!r}")
    return problems


def bound_problems(section: str, obj: Any) -> list[str]:
    """One sentence per field of a settings dataclass below its declared minimum."""
    problems = []
    for f in fields(obj):
        minimum = f.metadata.get("minimum")
        value = getattr(obj, f.name)
        if minimum is not None and value is not None and value < minimum:
            problems.append(f"{section}.{f.name} ({flag(f.name)}) must be at least {minimum:g} (got {value!r})")
    return problems


def value_type(cls: type[Any], name: str) -> type[Any]:
    """The scalar type of a dataclass field, ``X | None`` unwrapped (``float``, ``int``, ``str``...)."""
    hint = typing.get_type_hints(cls)[name]
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0]
    if not isinstance(hint, type):
        raise TypeError(f"{name}: unsupported field type {hint!r}")
    return hint


def to_flags(settings: Any) -> list[str]:
    """A settings dataclass (a :class:`VideoBudget`, :class:`EngineSettings`...) as server flags.

    Every field that is set, by the same field-to-flag rule as the server's parser; what a person
    types to start the server by hand with this budget.
    """
    argv: list[str] = []
    for f in fields(settings):
        value = getattr(settings, f.name)
        if value is None or value is False:
            continue
        if value is True:  # a switch: its flag alone
            argv.append(flag(f.name))
            continue
        text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
        argv += [flag(f.name), text]
    return argv
