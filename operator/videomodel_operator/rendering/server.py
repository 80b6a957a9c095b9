"""What the server is told: the serving contract (budget file) and its command line.

Pure. The budget, engine and admission settings travel in one piece
(:class:`~videomodel_server.budget.contract.ServingContract`, the ConfigMap's ``serving.json``);
the command line carries only what is not the budget's.
"""

from __future__ import annotations

from videomodel_server.budget import Family, Plan, flag
from videomodel_server.budget.contract import BUDGET_FILE_KEY, EngineSettings, ServingContract, processor_cache_gb

from ..spec import SERVER_PORT, VideoModelSpec
from .common import DOWNLOAD_DIR, HF_CACHE_MOUNT, MODELS_MOUNT, SERVING_MOUNT
from .sizing import admission_settings


def model_path(spec: VideoModelSpec) -> str:
    source = spec.model.source
    if source.pvc is not None:
        return f"{MODELS_MOUNT}/{source.pvc.path}".rstrip("/") if source.pvc.path else MODELS_MOUNT
    hf = source.hugging_face
    if hf is not None and hf.cache_claim_name:
        # Per revision: two revisions of one repo never share (and overwrite) a directory.
        return f"{HF_CACHE_MOUNT}/models/{hf.repo}/{hf.revision or 'main'}"
    if hf is not None:
        return f"{DOWNLOAD_DIR}/{hf.repo}"
    assert source.local is not None
    return source.local.path


def serving_contract(spec: VideoModelSpec, plan: Plan) -> ServingContract:
    """What the server is told, in one piece: the budget, engine and admission settings, the plan.

    The budget goes in resolved (the family's pixel defaults filled in); the server re-derives
    the plan from it and refuses to start if its plan differs from the one here. Admission is
    derived from the plan and the pod's CPU where the CR leaves it unset
    (:func:`.sizing.admission_settings`); engine settings the CR does not set are the server's
    own defaults. Every field is written out, so the pod's sizing and the server's behaviour come
    from the same numbers. :func:`~videomodel_operator.rendering.render` computes it once and
    hands it to everything that reads it (the ConfigMap, the pod's sizing, the HPA).
    """
    model = spec.to_model_spec()
    admission = admission_settings(spec, plan)
    engine = engine_settings(spec, plan, admission.max_concurrent_requests)
    budget = spec.to_budget().resolved(model.geometry)
    return ServingContract.for_plan(budget, engine, admission, plan)


ENCODER_TP_DATA_FAMILIES = frozenset({Family.QWEN2_VL, Family.QWEN2_5_VL, Family.QWEN3_VL})
"""Families whose vLLM model class has ``supports_encoder_tp_data`` (vLLM 0.32's Qwen2-VL, Qwen2.5-VL
and Qwen3-VL; ``tests/operator/test_engine_flags.py`` reads it from the installed vLLM's sources)."""


def engine_settings(spec: VideoModelSpec, plan: Plan, concurrent_requests: int) -> EngineSettings:
    """The engine switches the spec and the budget imply.

    - ``mm_encoder_tp_mode="data"`` when the engine spans more than one GPU and the family's vision
      encoder can run data-parallel: each GPU encodes its share of the frames with the whole
      (small) encoder instead of an all-reduce per encoder layer, which is what a video-heavy
      prompt spends its prefill on. One GPU: left unset (vLLM's default).
    - ``mm_processor_cache_gb`` from the budget (:func:`~videomodel_server.budget.contract.processor_cache_gb`):
      the processed tensors of the worst-case media of every request admitted at once.
    """
    geometry = spec.to_model_spec().geometry
    tp = spec.tensor_parallel_size
    family = spec.to_model_spec().family
    return EngineSettings(
        tensor_parallel_size=tp,
        dtype=spec.engine.dtype.value,
        gpu_memory_utilization=spec.engine.gpu_memory_utilization,
        max_model_len=plan.max_model_len,
        mm_processor_cache_gb=processor_cache_gb(
            plan.tokens_per_video,
            plan.videos_per_prompt,
            plan.tokens_per_image,
            plan.images_per_prompt,
            geometry.patch_size,
            geometry.merge_size,
            geometry.temporal_patch_size,
            concurrent_requests,
        ),
        mm_encoder_tp_mode="data" if tp > 1 and family in ENCODER_TP_DATA_FAMILIES else None,
    )


def server_args(spec: VideoModelSpec, plan: Plan) -> list[str]:
    """The ``videomodel-server`` command line: the model, where to listen, and the budget file.

    Everything the budget decides travels in :func:`serving_contract` (the ConfigMap's
    ``serving.json``, mounted at :data:`SERVING_MOUNT`), not as hand-listed flags. The flags here
    are the ones that are not the budget's: the checkpoint and the media security settings,
    named by the server's own field-to-flag rule.
    """
    args = [
        flag("model"),
        model_path(spec),
        flag("served_model_name"),
        spec.served_name,
        flag("family"),
        spec.to_model_spec().family.value,
        flag("port"),
        str(SERVER_PORT),
        "--budget-file",
        f"{SERVING_MOUNT}/{BUDGET_FILE_KEY}",
    ]
    security = spec.security
    if security.allowed_media_domains:
        args += [flag("allowed_media_domains"), ",".join(security.allowed_media_domains)]
    if security.local_media_path:
        args += [flag("allowed_local_media_path"), security.local_media_path]
    if security.allow_http:
        args.append(flag("allow_http"))
    if spec.engine.extra_args:
        args += ["--", *spec.engine.extra_args]
    return args
