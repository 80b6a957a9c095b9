"""The inference engine behind one seam: the :class:`Engine` protocol and its vLLM adapter.

The serving code sees only :class:`Engine`: render the chat template, count tokens, generate a
stream of :class:`EngineStep` deltas, report readiness. :class:`VllmEngine` runs vLLM's
``AsyncLLM`` in this process (its engine core in a child process, as vLLM does) and passes each
video as ``(frames, metadata)`` so M-RoPE gets the true timestamps; closing the generator
returned by :meth:`Engine.generate` aborts the engine request (vLLM does that on
``GeneratorExit``/cancellation). Tests may swap in any other implementation. Once the engine is
up, a :mod:`~videomodel_server.watchdog` process makes sure the EngineCore dies with this
process, however this process ends.

vLLM and transformers are imported lazily, in :meth:`VllmEngine.start`, so the API layer and
its tests import without them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import time
from collections.abc import AsyncGenerator, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from . import watchdog
from .budget.contract import OWNED_ENGINE_FLAGS
from .errors import EngineFailure, InvalidRequest, NotReady
from .jobs import MediaRef, Sampling, StructuredOutput, ToolCall, Turn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineVideo:
    frames: npt.NDArray[np.uint8]
    """T x H x W x C, uint8 RGB, already sampled and resized by the media pipeline."""
    metadata: dict[str, Any]
    """What vLLM's processor needs for timestamps: fps (the sampling fps), frames_indices,
    total_num_frames, duration, do_sample_frames=False."""
    uuid: str | None = None
    """A stable id of exactly these frames and metadata (vLLM's ``multi_modal_uuids`` entry), so
    its processor and prefix caches hit on a repeated video without hashing it; None: vLLM hashes."""


@dataclass(frozen=True)
class EngineInput:
    """A rendered prompt and its media, in placeholder order per kind."""

    prompt: str
    videos: tuple[EngineVideo, ...] = ()
    images: tuple[npt.NDArray[np.uint8], ...] = ()


@dataclass(frozen=True)
class TokenLogprobInfo:
    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ChoiceDelta:
    index: int
    text: str
    tokens: int
    """New completion tokens in this delta."""
    finish_reason: str | None = None
    logprobs: tuple[TokenLogprobInfo, ...] | None = None
    tool_calls: tuple[ToolCall, ...] | None = None
    """The function calls read from this choice's whole text (set on its last delta only)."""


@dataclass(frozen=True)
class EngineStep:
    prompt_tokens: int | None
    choices: tuple[ChoiceDelta, ...] = field(default=())


class Engine(Protocol):
    """What the server needs from an inference engine."""

    @property
    def ready(self) -> bool:
        """True once loaded and while it can serve."""
        ...

    @property
    def dead(self) -> bool:
        """True once the engine has failed for good (the process must restart)."""
        ...

    def unfinished_requests(self) -> int: ...

    async def start(self) -> None:
        """Load the model (may take minutes); raise if it cannot be served."""
        ...

    def render(self, turns: Sequence[Turn], tools: str | None = None) -> str:
        """The prompt for ``turns`` through the checkpoint's chat template (CPU only, no I/O);
        ``tools``: the JSON text of the request's function definitions, given to the template."""
        ...

    def parse_tool_calls(self, text: str) -> tuple[str | None, tuple[ToolCall, ...]]:
        """The family's tool parser on a whole completion: (content before the calls, the calls)."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def media_placeholder_tokens(self) -> int:
        """Tokens a rendered media placeholder costs before the processor expands it."""
        ...

    def generate(self, request: EngineInput, sampling: Sampling, request_id: str) -> AsyncGenerator[EngineStep, None]:
        """Deltas of the completion; closing the iterator early aborts the engine request."""
        ...

    async def shutdown(self) -> None: ...


def template_messages(turns: Sequence[Turn]) -> list[dict[str, Any]]:
    """Turns in the Hugging Face chat-template shape; media become ``{"type": "video"|"image"}``.

    An assistant's tool calls go in as ``tool_calls`` with their arguments parsed (the Qwen templates
    ``tojson`` them, as vLLM's renderer does); a tool result keeps its ``tool_call_id``.
    """
    messages: list[dict[str, Any]] = []
    for turn in turns:
        if turn.tool_calls or turn.tool_call_id is not None:
            message: dict[str, Any] = {
                "role": turn.role,
                "content": "".join(p for p in turn.parts if isinstance(p, str)),
            }
            if turn.tool_calls:
                message["tool_calls"] = [_template_call(c) for c in turn.tool_calls]
            if turn.tool_call_id is not None:
                message["tool_call_id"] = turn.tool_call_id
            messages.append(message)
            continue
        if all(isinstance(p, str) for p in turn.parts):
            messages.append({"role": turn.role, "content": "".join(p for p in turn.parts if isinstance(p, str))})
            continue
        content: list[dict[str, Any]] = []
        for part in turn.parts:
            if isinstance(part, MediaRef):
                content.append({"type": part.kind})
            else:
                content.append({"type": "text", "text": part})
        messages.append({"role": turn.role, "content": content})
    return messages


def _template_call(call: ToolCall) -> dict[str, Any]:
    import json

    try:
        arguments: Any = json.loads(call.arguments)
    except ValueError:
        arguments = call.arguments
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": arguments}}


TOOL_PARSER = "hermes"
"""vLLM's tool parser for every served family: Qwen2-VL, Qwen2.5-VL and Qwen3-VL chat templates
write calls as ``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` (vLLM's docs name
``hermes`` for Qwen2.5 and Qwen3)."""


@dataclass(frozen=True)
class EngineConfig:
    """What the vLLM adapter needs, from the settings and the Plan (:func:`.wiring.engine_config`)."""

    model: Path
    served_model_name: str
    max_model_len: int
    limit_mm_per_prompt: dict[str, dict[str, int]]
    mm_processor_kwargs: dict[str, Any]
    tensor_parallel_size: int = 1
    dtype: str = "auto"
    gpu_memory_utilization: float = 0.9
    mm_processor_cache_gb: float = 4.0
    mm_encoder_tp_mode: str | None = None
    extra_args: tuple[str, ...] = ()
    seed: int = 0
    max_num_batched_tokens: int | None = None
    """vLLM sizes its encoder cache as ``max(max_num_batched_tokens, its own per-item estimate)``
    and estimates videos at 14 frames: a longer in-budget video would be refused ("exceeds the
    pre-allocated encoder cache size") unless this covers the Plan's largest media item."""
    warmup: Warmup | None = None
    """The declared worst case, run before the engine reports ready (None: ready once loaded)."""


@dataclass(frozen=True)
class Warmup:
    """One worst-case request the engine runs (``max_tokens=1``) before it reports ready.

    Built from the Plan by :func:`.wiring.worst_case_warmup`. ``turns`` render through the chat
    template as any request's do; the media is described, not held (a worst case can be hundreds
    of MB of frames): :meth:`engine_input` makes it at warm-up time, in the shape the media
    pipeline hands over (T x H x W x C uint8 RGB plus vLLM's metadata), each item distinct so no
    cache serves one from another. ``media_tokens`` is the budget module's price of that media:
    the engine's prompt count must equal the rendered text's tokens plus it. ``budget`` names the
    declared budget in messages.
    """

    turns: tuple[Turn, ...]
    videos: int
    video_shape: tuple[int, int, int]
    """Frames, height, width of each video."""
    video_metadata: dict[str, Any]
    images: int
    image_shape: tuple[int, int]
    """Height, width of each image."""
    media_tokens: int
    budget: str

    def engine_input(self, prompt: str) -> EngineInput:
        videos = tuple(
            EngineVideo(np.full((*self.video_shape, 3), 96 + i, dtype=np.uint8), dict(self.video_metadata))
            for i in range(self.videos)
        )
        images = tuple(np.full((*self.image_shape, 3), 160 + i, dtype=np.uint8) for i in range(self.images))
        return EngineInput(prompt, videos, images)


@dataclass(frozen=True)
class WarmupReport:
    seconds: float
    """Wall time of the worst-case request (prompt processing, vision encoder, one token)."""
    prompt_tokens: int | None
    """What the engine counted."""
    predicted_prompt_tokens: int
    """The rendered text's tokens plus the budget module's price of the media."""


class WarmupFailed(RuntimeError):
    """The engine loaded but cannot serve the declared worst case; the message names the budget."""


def check_passthrough(extra_args: Sequence[str]) -> None:
    """Refuse pass-through engine flags that would override what the budget derived."""
    for arg in extra_args:
        flag = arg.split("=", 1)[0]
        if flag.startswith("--"):  # vLLM's parser reads --max_model_len as --max-model-len
            flag = "--" + flag[2:].split(".", 1)[0].replace("_", "-")
        if flag in OWNED_ENGINE_FLAGS:
            raise ValueError(
                f"{flag} is set by videomodel-server from the budget; use its own flag, not the passthrough"
            )


def engine_argv(config: EngineConfig) -> list[str]:
    """vLLM engine arguments as a command line, parsed by vLLM's own parser (passthrough last)."""
    import json

    check_passthrough(config.extra_args)
    return [
        "--model",
        str(config.model),
        "--served-model-name",
        config.served_model_name,
        "--max-model-len",
        str(config.max_model_len),
        "--limit-mm-per-prompt",
        json.dumps(config.limit_mm_per_prompt),
        "--mm-processor-kwargs",
        json.dumps(config.mm_processor_kwargs),
        "--tensor-parallel-size",
        str(config.tensor_parallel_size),
        "--dtype",
        config.dtype,
        "--gpu-memory-utilization",
        str(config.gpu_memory_utilization),
        "--mm-processor-cache-gb",
        str(config.mm_processor_cache_gb),
        "--seed",
        str(config.seed),
        *(["--max-num-batched-tokens", str(config.max_num_batched_tokens)] if config.max_num_batched_tokens else []),
        *(["--mm-encoder-tp-mode", config.mm_encoder_tp_mode] if config.mm_encoder_tp_mode else []),
        *config.extra_args,
    ]


class VllmEngine:
    """:class:`Engine` on vLLM's ``AsyncLLM``."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._llm: Any = None
        self._processor: Any = None
        self._tokenizer: Any = None
        self._placeholder_tokens = 3
        self._ready = False
        self._warming = False
        self._start_failed = False
        self._watchdog: subprocess.Popen[bytes] | None = None
        self.warmup_report: WarmupReport | None = None

    @property
    def ready(self) -> bool:
        return self._ready and not self.dead

    @property
    def dead(self) -> bool:
        if self._start_failed:
            return True
        return bool(self._llm is not None and self._llm.errored)

    def unfinished_requests(self) -> int:
        return unfinished_requests_of(self._llm)

    async def start(self) -> None:
        """Load the model, then run the declared worst case (``config.warmup``); ready after both.

        Readiness then means "can serve the declared budget", not only "loaded": a worst case that
        runs out of memory or that the engine refuses fails here, with :class:`WarmupFailed`
        naming the budget, instead of on the first large request.
        """
        try:
            # Model load and profiling block for minutes: keep the event loop free so /health
            # answers 503 meanwhile. AsyncLLM starts its output handler on the first request.
            self._processor, self._tokenizer = await asyncio.to_thread(self._load_processor)
            self._llm = await asyncio.to_thread(self._build)
        except BaseException:
            self._start_failed = True
            raise
        pids = engine_core_pids(self._llm)
        if not pids:
            log.warning("no EngineCore process found: it will not be stopped if this process is killed")
        self._watchdog = watchdog.start(pids)
        if self.config.warmup is not None:
            try:
                self.warmup_report = await self._warm_up(self.config.warmup)
            except BaseException:
                self._start_failed = True
                raise
        self._ready = True
        log.info("engine ready", extra={"model": self.config.served_model_name})

    async def _warm_up(self, warmup: Warmup) -> WarmupReport:
        prompt = self.render(warmup.turns)
        media = warmup.videos + warmup.images
        predicted = self.count_tokens(prompt) - self._placeholder_tokens * media + warmup.media_tokens
        sampling = Sampling(
            n=1,
            max_tokens=1,
            temperature=0.0,
            top_p=None,
            top_k=None,
            min_p=None,
            seed=0,
            stop=(),
            presence_penalty=None,
            frequency_penalty=None,
            repetition_penalty=None,
            logprobs=None,
        )
        counted: int | None = None
        start = time.monotonic()
        self._warming = True
        try:
            request = await asyncio.to_thread(warmup.engine_input, prompt)  # frames: up to GBs of pixels
            async for step in self.generate(request, sampling, "warmup"):
                counted = step.prompt_tokens if step.prompt_tokens is not None else counted
        except Exception as exc:  # out of memory, a refused prompt, a dead engine: not servable
            cause = str(exc) if isinstance(exc, EngineFailure | InvalidRequest | NotReady) else _first_line(exc)
            message = (
                f"the engine cannot serve the declared budget's worst case ({warmup.budget}; "
                f"{predicted:,} prompt tokens, max_model_len {self.config.max_model_len:,}): {cause}. "
                "Lower the budget or give the server more memory (or --skip-warmup to start anyway)"
            )
            log.error(message, extra={"reason": "warmup_failed"})
            raise WarmupFailed(message) from exc
        finally:
            self._warming = False
        report = WarmupReport(round(time.monotonic() - start, 3), counted, predicted)
        log.info(
            "warm-up: the declared worst case (%s) ran in %.1f s: %s prompt tokens counted, %s predicted",
            warmup.budget,
            report.seconds,
            counted,
            predicted,
            extra={"reason": "warmup", "prompt_tokens": counted, "duration_ms": round(report.seconds * 1000)},
        )
        if counted != predicted:
            log.warning(
                "warm-up: the engine counted %s prompt tokens where the budget module predicts %s",
                counted,
                predicted,
                extra={"reason": "warmup_token_mismatch"},
            )
        return report

    def _load_processor(self) -> tuple[Any, Any]:
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(str(self.config.model))  # type: ignore[no-untyped-call]
        tokenizer = getattr(processor, "tokenizer", processor)
        if getattr(processor, "chat_template", None) is None and getattr(tokenizer, "chat_template", None) is None:
            raise RuntimeError(f"the checkpoint at {self.config.model} has no chat template")
        sample = template_messages([Turn("user", (MediaRef("video", "", 0),))])
        with_video = self._apply_template(processor, tokenizer, sample, add_generation_prompt=False)
        without = self._apply_template(processor, tokenizer, [{"role": "user", "content": ""}], False)
        self._placeholder_tokens = max(0, len(tokenizer(with_video).input_ids) - len(tokenizer(without).input_ids))
        return processor, tokenizer

    def _build(self) -> Any:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.usage.usage_lib import UsageContext
        from vllm.utils.argparse_utils import FlexibleArgumentParser
        from vllm.v1.engine.async_llm import AsyncLLM

        parser = AsyncEngineArgs.add_cli_args(FlexibleArgumentParser())  # type: ignore[no-untyped-call]
        args = AsyncEngineArgs.from_cli_args(parser.parse_args(engine_argv(self.config)))
        select_model_runner(os.environ)  # before the EngineCore process starts (it inherits the env)
        return AsyncLLM.from_engine_args(args, usage_context=UsageContext.OPENAI_API_SERVER)

    @staticmethod
    def _apply_template(
        processor: Any,
        tokenizer: Any,
        messages: list[dict[str, Any]],
        add_generation_prompt: bool,
        tools: list[dict[str, Any]] | None = None,
    ) -> str:
        owner = processor if getattr(processor, "chat_template", None) is not None else tokenizer
        extra = {"tools": tools} if tools else {}
        text = owner.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt, **extra)
        assert isinstance(text, str)
        return text

    def render(self, turns: Sequence[Turn], tools: str | None = None) -> str:
        if self._processor is None:
            raise NotReady("the model is still loading")
        try:
            definitions = _json_tools(tools)
            return self._apply_template(
                self._processor, self._tokenizer, template_messages(turns), True, tools=definitions
            )
        except Exception as exc:  # jinja raises on conversations the template refuses
            raise InvalidRequest(
                f"the model's chat template refused the conversation ({type(exc).__name__})", code="template_error"
            ) from None

    def parse_tool_calls(self, text: str) -> tuple[str | None, tuple[ToolCall, ...]]:
        """vLLM's ``hermes`` tool parser (:data:`TOOL_PARSER`) on a whole completion."""
        if self._tokenizer is None:
            raise NotReady("the model is still loading")
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
        from vllm.tool_parsers.abstract_tool_parser import ToolParserManager

        parser = ToolParserManager.get_tool_parser(TOOL_PARSER)(self._tokenizer)
        request = ChatCompletionRequest.model_validate({"messages": [], "model": self.config.served_model_name})
        info = parser.extract_tool_calls(text, request)
        if not info.tools_called:
            return text, ()
        calls = tuple(ToolCall(c.id, c.function.name, c.function.arguments) for c in info.tool_calls)
        return info.content, calls

    def count_tokens(self, text: str) -> int:
        if self._tokenizer is None:
            raise NotReady("the model is still loading")
        return len(self._tokenizer(text, add_special_tokens=False).input_ids)

    def media_placeholder_tokens(self) -> int:
        return self._placeholder_tokens

    async def generate(
        self, request: EngineInput, sampling: Sampling, request_id: str
    ) -> AsyncGenerator[EngineStep, None]:
        if not (self.ready or (self._warming and not self.dead)):
            raise NotReady("the engine is not ready")
        from vllm.sampling_params import RequestOutputKind, SamplingParams

        params = SamplingParams(
            n=sampling.n,
            max_tokens=sampling.max_tokens,
            temperature=1.0 if sampling.temperature is None else sampling.temperature,
            top_p=1.0 if sampling.top_p is None else sampling.top_p,
            top_k=0 if sampling.top_k is None else sampling.top_k,
            min_p=0.0 if sampling.min_p is None else sampling.min_p,
            seed=sampling.seed,
            stop=list(sampling.stop) or None,
            presence_penalty=sampling.presence_penalty or 0.0,
            frequency_penalty=sampling.frequency_penalty or 0.0,
            repetition_penalty=sampling.repetition_penalty or 1.0,
            logprobs=sampling.logprobs,
            min_tokens=sampling.min_tokens,
            output_kind=RequestOutputKind.DELTA,
            structured_outputs=structured_outputs_params(sampling.structured),
        )
        mm_data: dict[str, Any] = {}
        if request.videos:
            mm_data["video"] = [(v.frames, dict(v.metadata)) for v in request.videos]
        if request.images:
            mm_data["image"] = list(request.images)
        prompt: dict[str, Any] = {"prompt": request.prompt}
        if mm_data:
            prompt["multi_modal_data"] = mm_data
        if any(v.uuid is not None for v in request.videos):
            prompt["multi_modal_uuids"] = {"video": [v.uuid for v in request.videos]}
        from vllm.exceptions import VLLMValidationError

        try:
            async for out in self._llm.generate(prompt, params, request_id):
                prompt_ids = out.prompt_token_ids
                yield EngineStep(
                    prompt_tokens=len(prompt_ids) if prompt_ids is not None else None,
                    choices=tuple(_delta(c, sampling.logprobs) for c in out.outputs),
                )
        except (VLLMValidationError, ValueError) as exc:
            # Validation happens before any token is produced; vLLM's messages describe the
            # request's shape (lengths, counts), never its content.
            raise InvalidRequest(f"the engine refused the request: {_first_line(exc)}", code="engine_refused") from None
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:
            if self.dead:
                raise NotReady("the engine has stopped", code="engine_dead") from exc
            raise EngineFailure(f"the engine failed ({type(exc).__name__})") from exc

    async def shutdown(self) -> None:
        llm, self._llm = self._llm, None
        self._ready = False
        if llm is not None:
            await asyncio.to_thread(llm.shutdown)
        guard, self._watchdog = self._watchdog, None
        if guard is not None:
            guard.terminate()
            await asyncio.to_thread(guard.wait, 10)


V2_RUNNER_ENV = "VLLM_USE_V2_MODEL_RUNNER"


def select_model_runner(environ: MutableMapping[str, str], encoder_runner: type | None = None) -> str | None:
    """Pick vLLM's V1 model runner where the V2 one would leave the vision encoder unprofiled.

    vLLM 0.26's V2 GPU model runner (its default for Qwen-VL) runs no encoder in ``profile_run``,
    so the KV cache is sized as if no video came: the first worst-case request then took 3.3 GiB
    beyond the budget on an H200 (issue 11). Its ``EncoderRunner`` has no ``profile_encoder_cache``
    (0.32's has, and profiles the Plan's dummies); the V1 runner profiles them in both. An explicit
    ``VLLM_USE_V2_MODEL_RUNNER`` wins. Returns what was set, or None.
    """
    if V2_RUNNER_ENV in environ:
        return None
    if encoder_runner is None:
        try:
            from vllm.v1.worker.gpu.mm.encoder_runner import EncoderRunner
        except Exception:  # no V2 runner in this vLLM (or not on this platform): nothing to pick
            return None
        encoder_runner = EncoderRunner
    if hasattr(encoder_runner, "profile_encoder_cache"):
        return None
    environ[V2_RUNNER_ENV] = "0"
    log.info("vLLM's V2 model runner does not profile the vision encoder: using the V1 runner")
    return "0"


def unfinished_requests_of(llm: Any) -> int:
    """Requests ``AsyncLLM`` holds, running or waiting, on each vLLM the server runs on.

    0.32 has ``AsyncLLM.get_num_unfinished_requests``; 0.26 only its ``output_processor``'s. A
    gauge read at scrape time must never fail /metrics: 0 when neither answers.
    """
    if llm is None:
        return 0
    for owner in (llm, getattr(llm, "output_processor", None)):
        count = getattr(owner, "get_num_unfinished_requests", None)
        if callable(count):
            try:
                return int(count())
            except Exception:
                log.warning("the engine could not count its unfinished requests", exc_info=True)
                return 0
    return 0


def _json_tools(tools: str | None) -> list[dict[str, Any]] | None:
    import json

    if not tools:
        return None
    parsed = json.loads(tools)
    assert isinstance(parsed, list)
    return parsed


def structured_outputs_params(structured: StructuredOutput | None) -> Any:
    """vLLM's structured-output constraint for a ``response_format`` (None: free text)."""
    if structured is None:
        return None
    from vllm.sampling_params import StructuredOutputsParams

    if structured.kind == "json_object":
        return StructuredOutputsParams(json_object=True)
    return StructuredOutputsParams(json=structured.schema)


def engine_core_pids(llm: Any) -> list[int]:
    """The pids of ``AsyncLLM``'s EngineCore processes (none when it runs the core in-process)."""
    manager = getattr(getattr(getattr(llm, "engine_core", None), "resources", None), "engine_manager", None)
    return [int(p.pid) for p in getattr(manager, "processes", ()) if p.pid is not None]


def _delta(output: Any, top_k: int | None) -> ChoiceDelta:
    """One vLLM ``CompletionOutput`` (DELTA kind) as a :class:`ChoiceDelta`."""
    logprobs: tuple[TokenLogprobInfo, ...] | None = None
    if output.logprobs is not None and top_k is not None:
        infos = []
        for token_id, position in zip(output.token_ids, output.logprobs, strict=False):
            chosen = position.get(token_id)
            ranked = sorted(position.values(), key=lambda lp: lp.rank if lp.rank is not None else 1 << 30)
            infos.append(
                TokenLogprobInfo(
                    token=(chosen.decoded_token or "") if chosen is not None else "",
                    logprob=float(chosen.logprob) if chosen is not None else float("-inf"),
                    top=tuple((lp.decoded_token or "", float(lp.logprob)) for lp in ranked[:top_k]),
                )
            )
        logprobs = tuple(infos)
    return ChoiceDelta(
        index=int(output.index),
        text=str(output.text),
        tokens=len(output.token_ids),
        finish_reason=output.finish_reason,
        logprobs=logprobs,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
