"""Per-replica CPU, memory and disk, from the budget, the serving contract and the engine layout.

Pure. Every number a pod is given here comes from the plan and the serving contract (the
server's own admission and engine settings), never from a copy of the server's defaults:

- **admission** (:func:`admission_settings`, rendered into the serving contract): the cap on
  requests in flight follows the plan's concurrency, the full-budget requests the GPU memory
  holds (:func:`~videomodel_server.budget.contract.concurrency_cap`); the decode pool follows
  the CPU: one worker per core left for decoding, no more than the videos that can be decoding at
  once, a lone decode with a thread per decoding core (:func:`~videomodel_server.budget.contract.decode_pool`).
  Fields set in the CR's ``spec.admission`` win.
- **CPU**: the API process and engine host side (:data:`BASE_CPU_MILLI`, one more core per extra
  tensor-parallel GPU) plus a core per decode worker; with ``resources.cpu`` set, that request
  is what the decode pool is cut from instead.
- **memory**: a base for the API process, one more CUDA worker per extra tensor-parallel GPU,
  vLLM's multimodal processor cache (``mm_processor_cache_gb``, held by the API process and
  mirrored by the engine core), the video work of every admitted request, and ``/dev/shm``
  (a memory emptyDir counts against the container's memory).
- **/tmp**: every download and data URL is spooled to a temporary file before it is probed, so
  it holds up to ``max_concurrent_requests x videosPerPrompt x maxVideoBytes`` at once.
- **ephemeral storage**: requested and limited for every disk emptyDir, so the scheduler puts
  the pod where the disk is and the kubelet never evicts it for using what it was given.
- **start-up time** (:func:`startup_budget`): the startup probe allows the engine's
  initialisation plus loading the weights at a conservative storage rate; the Deployment's
  progress deadline adds the download of a hub snapshot, so a large model is not declared
  failed while it is still downloading.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from videomodel_server.budget import Plan
from videomodel_server.budget.contract import (
    DECODE_CPU_MILLI,
    AdmissionSettings,
    ServingContract,
    concurrency_cap,
    decode_pool,
    default_concurrency,
)

from ..spec import VideoModelSpec
from ..units import parse_bytes, parse_cpu, round_up_mib
from .common import GiB, MiB

BASE_MEMORY = 6 * GiB
"""The API process, tokenizer, vLLM's host side and the first CUDA context: before any video."""
WORKER_MEMORY = 3 * GiB
"""Each further tensor-parallel worker process: its CUDA context, NCCL and host staging buffers."""
BASE_CPU_MILLI = 2000
"""The API process (HTTP, tokenizer, chat template, fetches) and the engine's host side."""
TP_WORKER_CPU_MILLI = 1000
"""Each further tensor-parallel worker process."""
MAX_DERIVED_DECODE_WORKERS = 4
"""Without a CPU request, the most decode workers (cores) a pod is sized for: with the base that
is 6 cores, what the smaller one-GPU nodes have (8 vCPUs for an L4 or A10G); more would leave a
pod of many concurrent requests unschedulable there. Set ``resources.cpu`` for a bigger pool."""
TMP_HEADROOM = GiB
"""Images (capped by the server's image byte limit), the tokenizer's and Python's own files."""
CACHE_HEADROOM = 2 * GiB
DOWNLOAD_SLACK = 1.25
"""Hub snapshots carry more than the weights (tokenizer, config, sometimes two formats)."""


@dataclass(frozen=True)
class Sizing:
    """Per-replica CPU, memory and volume sizes (bytes, millicores)."""

    cpu_milli: int
    memory_bytes: int
    shm_bytes: int
    cache_bytes: int
    tmp_bytes: int

    @property
    def ephemeral_bytes(self) -> int:
        """Disk the pod's emptyDirs may fill (/tmp and the cache): requested and limited."""
        return self.tmp_bytes + self.cache_bytes


def decoded_video_bytes(plan: Plan) -> int:
    """One worst-case video's sampled frames as RGB24 at the planned geometry."""
    frame = plan.worst_case_frame
    if not frame:
        return 0
    return plan.frames_per_video * frame["height"] * frame["width"] * 3


def reserved_cpu_milli(spec: VideoModelSpec) -> int:
    """CPU that is not for decoding: the API process, the engine's host side, its TP workers."""
    return BASE_CPU_MILLI + (spec.tensor_parallel_size - 1) * TP_WORKER_CPU_MILLI


ENGINE_STOP_SECONDS = 15
"""Measured: vLLM's engine stops 10-12 s after the server's drain ends (it waits 5 s for the
EngineCore process, then kills it); the rest is margin."""


def admission_settings(spec: VideoModelSpec, plan: Plan) -> AdmissionSettings:
    """The server's admission settings for this CR: derived where ``spec.admission`` leaves them unset.

    - ``max_concurrent_requests``: ``concurrency_cap(plan.concurrent_requests)``, i.e. the
      full-budget requests the GPU memory holds, capped; a bigger GPU admits more at once. On
      CPU (``gpu.count: 0``) at most the server's default.
    - the decode pool: with ``resources.cpu`` set, its cores above :func:`reserved_cpu_milli`
      shared by ``decode_pool`` (one worker per core, at most one per video that can be decoding:
      ``max_concurrent_requests x videosPerPrompt``, each with a thread per decoding core); unset,
      one worker per such video (at most :data:`MAX_DERIVED_DECODE_WORKERS`), for which
      :func:`sizing` then requests a core each. An explicit ``decodeWorkers`` or ``decodeThreads``
      is taken as is.

    - ``drain_timeout``: ``lifecycle.drainSeconds`` less :data:`ENGINE_STOP_SECONDS`. The kubelet
      sends SIGTERM after the preStop pause and kills the pod ``drainSeconds`` later; the server
      must finish its streams *and* stop the engine inside that.

    Every other field is the server's default (:class:`AdmissionSettings`).
    """
    cr = spec.admission
    cap = cr.max_concurrent_requests
    if cap is None:
        # Serving on CPU the engine shares the pod's cores: the KV cache is not what limits it,
        # so the plan only lowers the server's default, never raises it.
        if spec.resources.gpu.count > 0:
            cap = concurrency_cap(plan.concurrent_requests)
        else:
            cap = concurrency_cap(plan.concurrent_requests, ceiling=default_concurrency())
    parallel_decodes = cap * max(1, plan.videos_per_prompt)
    if spec.resources.cpu is not None:
        decode_milli = parse_cpu(spec.resources.cpu) - reserved_cpu_milli(spec)
    else:
        decode_milli = (cr.decode_workers or min(parallel_decodes, MAX_DERIVED_DECODE_WORKERS)) * DECODE_CPU_MILLI
    workers, threads = decode_pool(decode_milli, parallel_decodes, workers=cr.decode_workers)
    if cr.decode_threads is not None:
        threads = cr.decode_threads
    return replace(
        AdmissionSettings(),
        max_concurrent_requests=cap,
        decode_workers=workers,
        decode_threads=threads,
        drain_timeout=float(max(0, spec.lifecycle.drain_seconds - ENGINE_STOP_SECONDS)),
    )


def decode_cpu_milli(admission: AdmissionSettings) -> int:
    """CPU the decode pool keeps busy: a core per worker (a worker's frame threads share the
    decoding cores with the other workers', :func:`~videomodel_server.budget.contract.decode_pool`)."""
    return admission.decode_workers * DECODE_CPU_MILLI


def sizing(spec: VideoModelSpec, plan: Plan, contract: ServingContract) -> Sizing:
    """CPU, memory, /dev/shm, /tmp and cache sizes for one replica.

    ``contract`` is the serving contract rendered for ``spec`` and ``plan``
    (:func:`~videomodel_operator.rendering.server.serving_contract`): the pod is sized for the
    admission and engine settings its server is given.

    Video work per admitted request: the download (a data URL arrives in the request body, and
    a spooled file's page cache is charged to the container) plus the decoded worst-case frames
    twice (the decoder's output and the engine's copy), for every video of a prompt and every
    request the server admits at once. /dev/shm carries frames between the decode workers and
    the engine, and NCCL's buffers under tensor parallelism.
    """
    in_flight = contract.admission.max_concurrent_requests
    videos = max(1, plan.videos_per_prompt)
    decoded = decoded_video_bytes(plan)
    tp = spec.tensor_parallel_size
    if spec.resources.shm_size is not None:
        shm = parse_bytes(spec.resources.shm_size)
    else:
        shm = round_up_mib(GiB + in_flight * videos * decoded + (tp - 1) * GiB)
    mm_cache = int(2 * contract.engine.mm_processor_cache_gb * GiB)
    memory = (
        BASE_MEMORY
        + (tp - 1) * WORKER_MEMORY
        + mm_cache
        + contract.admission.decode_cache_bytes  # decoded videos kept for reuse (memfd pages)
        + in_flight * videos * (plan.max_video_bytes + 2 * decoded)
        + shm
    )
    if spec.resources.gpu.count == 0:
        # CPU serving: the weights and the KV cache live in host memory too.
        memory += (plan.weights_bytes or 0) + max(0, plan.kv_cache_bytes_available or 0)
    memory = parse_bytes(spec.resources.memory) if spec.resources.memory is not None else round_up_gib(memory)
    if spec.resources.cpu is not None:
        cpu = parse_cpu(spec.resources.cpu)
    else:
        cpu = reserved_cpu_milli(spec) + decode_cpu_milli(contract.admission)
    cache = CACHE_HEADROOM
    hf = spec.model.source.hugging_face
    if hf is not None and not hf.cache_claim_name:  # with a cache claim the snapshot lives there
        cache += int(weights_bytes(spec, plan) * DOWNLOAD_SLACK)
    tmp = TMP_HEADROOM + in_flight * videos * plan.max_video_bytes
    return Sizing(
        cpu_milli=cpu,
        memory_bytes=memory,
        shm_bytes=shm,
        cache_bytes=round_up_gib(cache),
        tmp_bytes=round_up_gib(tmp),
    )


def round_up_gib(value: float) -> int:
    return int(math.ceil(value / GiB) * GiB)


def weights_bytes(spec: VideoModelSpec, plan: Plan) -> int:
    """The checkpoint's size: the plan's figure, else parameters x dtype bytes."""
    return plan.weights_bytes or int(spec.to_model_spec().parameters * spec.engine.dtype.bytes)


MIN_STARTUP_SECONDS = 1800
"""The startup probe's floor (also the former fixed default: small models keep their pods as they were)."""
ENGINE_INIT_SECONDS = 600
"""vLLM start before and after the weights: memory profiling, KV cache allocation, CUDA graphs."""
LOAD_BYTES_PER_SECOND = 100 * MiB
"""Weights read from network storage into GPU memory: a conservative rate."""
DOWNLOAD_BYTES_PER_SECOND = 50 * MiB
"""A hub download: a conservative rate."""
ROLLOUT_SLACK_SECONDS = 600
"""Scheduling, image pull and readiness on top of the start-up itself."""


@dataclass(frozen=True)
class StartupBudget:
    startup_seconds: int
    """How long the startup probe lets the server load (``lifecycle.startupTimeoutSeconds`` if set)."""
    download_seconds: int
    """How long the download init container may take (0 when there is none)."""

    @property
    def progress_deadline_seconds(self) -> int:
        return self.download_seconds + self.startup_seconds + ROLLOUT_SLACK_SECONDS


def startup_budget(spec: VideoModelSpec, plan: Plan) -> StartupBudget:
    weights = weights_bytes(spec, plan)
    startup = spec.lifecycle.startup_timeout_seconds
    if startup is None:
        derived = ENGINE_INIT_SECONDS + math.ceil(weights / LOAD_BYTES_PER_SECOND)
        startup = max(MIN_STARTUP_SECONDS, _round_up(derived, 60))
    download = 0
    if spec.model.source.hugging_face is not None:
        # Counted with a cache claim too: its first start (or a new revision) downloads.
        download = _round_up(math.ceil(weights * DOWNLOAD_SLACK / DOWNLOAD_BYTES_PER_SECOND), 60)
    return StartupBudget(startup_seconds=startup, download_seconds=download)


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step
