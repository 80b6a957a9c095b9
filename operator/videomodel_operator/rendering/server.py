"""What the server is told: the serving contract (budget file) and its command line.

Pure. The budget, engine and admission settings travel in one piece
(:class:`~videomodel_server.budget.contract.ServingContract`, the ConfigMap's ``serving.json``);
the command line carries only what is not the budget's.
"""

from __future__ import annotations

from videomodel_server.budget import Plan, flag
from videomodel_server.budget.contract import BUDGET_FILE_KEY, AdmissionSettings, EngineSettings, ServingContract

from ..spec import SERVER_PORT, VideoModelSpec
from .common import DOWNLOAD_DIR, HF_CACHE_MOUNT, MODELS_MOUNT, SERVING_MOUNT


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
    the plan from it and refuses to start if its plan differs from the one here. Admission and
    engine settings the CR does not set are the server's own defaults, written out so the
    sizing here and the server's behaviour come from the same numbers.
    """
    model = spec.to_model_spec()
    engine = EngineSettings(
        tensor_parallel_size=spec.tensor_parallel_size,
        dtype=spec.engine.dtype.value,
        gpu_memory_utilization=spec.engine.gpu_memory_utilization,
        max_model_len=plan.max_model_len,
    )
    return ServingContract.for_plan(spec.to_budget().resolved(model.geometry), engine, AdmissionSettings(), plan)


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
