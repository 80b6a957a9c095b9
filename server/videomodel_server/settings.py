"""Every limit of the server in one typed settings model, each with a safe default.

``ServerSettings`` is what the CLI flags (the operator's contract) parse into; the budget part
becomes a :class:`~videomodel_server.budget.VideoBudget` and everything the flags leave unset is
derived from it through :func:`~videomodel_server.budget.derive`. Pure: no environment reads
here; the CLI reads ``VIDEOMODEL_API_KEY`` and passes it in.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from .budget import Family, VideoBudget

_DEFAULT_BUDGET = VideoBudget()


class ServerSettings(BaseModel):
    """The whole configuration of one server process. Frozen once parsed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # -- the model --------------------------------------------------------------------------
    model: Path = Field(description="Local checkpoint directory (config.json, weights, processor).")
    served_model_name: str | None = Field(
        default=None, description="Name clients put in `model`; default: the directory name."
    )
    family: Family | None = Field(default=None, description="Declared family; must match the checkpoint's config.json.")

    # -- listening --------------------------------------------------------------------------
    host: str = "0.0.0.0"
    port: int = Field(default=8000, ge=0, le=65535)
    api_key: SecretStr | None = Field(default=None, description="Bearer key for every route but /health and /metrics.")

    # -- the video budget (defaults are VideoBudget()'s) ------------------------------------
    max_seconds: float = Field(default=_DEFAULT_BUDGET.max_seconds, gt=0)
    fps: float = Field(default=_DEFAULT_BUDGET.fps, gt=0)
    max_frames: int = Field(default=_DEFAULT_BUDGET.max_frames, ge=2)
    min_pixels: int | None = Field(default=_DEFAULT_BUDGET.min_pixels, gt=0)
    max_pixels: int | None = Field(default=_DEFAULT_BUDGET.max_pixels, gt=0)
    total_pixels: int | None = Field(default=_DEFAULT_BUDGET.total_pixels, gt=0)
    videos_per_prompt: int = Field(default=_DEFAULT_BUDGET.videos_per_prompt, ge=0)
    images_per_prompt: int = Field(default=_DEFAULT_BUDGET.images_per_prompt, ge=0)
    max_video_bytes: int = Field(default=_DEFAULT_BUDGET.max_video_bytes, gt=0)
    max_image_bytes: int = Field(default=16 * 1024**2, gt=0)
    max_prompt_tokens: int = Field(default=_DEFAULT_BUDGET.max_prompt_tokens, ge=0)
    max_output_tokens: int = Field(default=_DEFAULT_BUDGET.max_output_tokens, gt=0)
    fetch_timeout: float | None = Field(default=None, gt=0, description="Seconds per media fetch; default: the Plan's.")

    # -- the engine -------------------------------------------------------------------------
    max_model_len: int | None = Field(default=None, gt=0, description="Default: the Plan's; never above the context.")
    tensor_parallel_size: int = Field(default=1, ge=1)
    dtype: str = "auto"
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    engine_args: tuple[str, ...] = Field(default=(), description="Passed through to vLLM's engine arguments.")

    # -- media security (SECURITY.md 1-4) ---------------------------------------------------
    allowed_media_domains: tuple[str, ...] = ()
    allowed_local_media_path: Path | None = None
    allow_http: bool = False
    media_exempt_networks: tuple[str, ...] = Field(
        default=(),
        description="TEST ONLY: CIDRs exempt from the SSRF address check (e.g. 127.0.0.1/32 for a loopback test "
        "server; every other private address stays refused). No CLI flag sets it, only the "
        "VIDEOMODEL_UNSAFE_MEDIA_EXEMPT_NETWORKS environment variable.",
    )
    max_redirects: int = Field(default=3, ge=0, le=10)

    # -- admission and request limits (SECURITY.md 8-11) ------------------------------------
    max_concurrent_requests: int = Field(
        default=4, ge=1, description="Requests past admission (fetch, decode, engine)."
    )
    max_queued_requests: int = Field(
        default=16, ge=0, description="Requests waiting for a slot; past this: 503 at once."
    )
    queue_timeout: float = Field(default=30.0, gt=0, description="Seconds a request may wait for a slot before a 503.")
    retry_after_seconds: int = Field(default=2, ge=1)
    request_timeout: float = Field(
        default=600.0, gt=0, description="Overall deadline of one request, generation included (seconds)."
    )
    decode_workers: int = Field(default=2, ge=1)
    decode_timeout: float = Field(default=60.0, gt=0, description="Seconds one video may spend in a decode worker.")
    max_request_body_bytes: int | None = Field(
        default=None, gt=0, description="Default: room for the per-prompt data URLs (base64) plus 1 MiB of text."
    )
    max_n: int = Field(default=4, ge=1, description="Most choices (`n`) one request may ask for.")
    max_top_logprobs: int = Field(default=20, ge=0)
    max_stop_sequences: int = Field(default=4, ge=0)
    max_messages: int = Field(default=256, ge=1)
    drain_timeout: float = Field(default=30.0, ge=0, description="SIGTERM: seconds in-flight requests get to finish.")

    def budget(self) -> VideoBudget:
        """The declared video budget; pixel bounds left None take the family defaults."""
        return VideoBudget(
            max_seconds=self.max_seconds,
            fps=self.fps,
            max_frames=self.max_frames,
            min_pixels=self.min_pixels,
            max_pixels=self.max_pixels,
            total_pixels=self.total_pixels,
            videos_per_prompt=self.videos_per_prompt,
            images_per_prompt=self.images_per_prompt,
            max_video_bytes=self.max_video_bytes,
            max_prompt_tokens=self.max_prompt_tokens,
            max_output_tokens=self.max_output_tokens,
        )

    def body_limit(self) -> int:
        """Largest request body accepted: base64 of every allowed video plus 1 MiB of text and images."""
        if self.max_request_body_bytes is not None:
            return self.max_request_body_bytes
        media = max(1, self.videos_per_prompt) * self.max_video_bytes * 4 // 3
        return media + self.images_per_prompt * self.max_image_bytes * 4 // 3 + 1024**2

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model.name
