"""Every limit of the server in one typed settings model, grouped by concern, each with a default.

``ServerSettings`` is what the CLI (flags and/or the operator's budget file) parses into. Its
groups, in the manner of kopf's ``OperatorSettings``:

- ``model``: which checkpoint, under which name;
- ``listen``: address and API key;
- ``budget``: the :class:`~videomodel_server.budget.VideoBudget` itself (not a copy of its
  fields); everything the engine needs is derived from it through the budget module;
- ``engine`` and ``admission``: the shared dataclasses of :mod:`videomodel_server.budget.contract`,
  whose defaults the operator reads too;
- ``media``: the fetch and SSRF settings;
- ``requests``: per-request shape limits;
- ``expected_plan``: the operator's plan, checked against the server's own at start-up.

Pure: no environment reads here; the CLI reads the environment and passes values in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from .budget import Family, VideoBudget
from .budget.contract import AdmissionSettings, EngineSettings

TEXT_BYTES_PER_TOKEN = 32
"""Upper bound on the UTF-8 bytes of one text token, for refusing text by length before
tokenizing it. Real tokens of the Qwen vocabularies average 3-5 bytes; 32 leaves room for long
runs (whitespace, repeated symbols) while bounding what one request can make the tokenizer do."""
BODY_JSON_OVERHEAD = 6
"""A JSON string may escape one text byte as up to 6 (``\\u00e9``)."""
BODY_STRUCTURE_BYTES = 256 * 1024
"""Room in a request body for the JSON structure, roles and options around text and media."""


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelSettings(_Group):
    """Which checkpoint is served, under which name."""

    model: Path = Field(description="Local checkpoint directory (config.json, weights, processor).")
    served_model_name: str | None = Field(
        default=None, description="Name clients put in `model`; default: the directory name."
    )
    family: Family | None = Field(default=None, description="Declared family; must match the checkpoint's config.json.")


class ListenSettings(_Group):
    host: str = Field(default="0.0.0.0", description="Address to listen on.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port.")
    api_key: SecretStr | None = Field(default=None, description="Bearer key for every route but /health and /metrics.")
    log_level: str = Field(default="INFO", description="Log level (DEBUG, INFO, WARNING, ERROR).")


class MediaSettings(_Group):
    """Fetching media safely (docs/security.md#media-fetch)."""

    fetch_timeout: float | None = Field(default=None, gt=0, description="Seconds per media fetch; default: the plan's.")
    max_image_bytes: int = Field(default=16 * 1024**2, gt=0, description="Largest image download or data URL (bytes).")
    allowed_media_domains: tuple[str, ...] = Field(
        default=(),
        description="Comma-separated domains media may come from; narrows the SSRF guard, never replaces it.",
    )
    allowed_local_media_path: Path | None = Field(
        default=None, description="Enables file:// URLs under this directory."
    )
    allow_http: bool = Field(default=False, description="Accept http:// (not only https://) media URLs.")
    max_redirects: int = Field(default=3, ge=0, le=10, description="Redirects one media fetch may follow.")
    frame_recovery: bool = Field(
        default=False,
        description="Fill a sampled frame that fails to decode with the next good frame before the next one "
        "(vLLM's frame_recovery; a request's media_io_kwargs.video.frame_recovery overrides it). Off: strict.",
    )
    media_exempt_networks: tuple[str, ...] = Field(
        default=(),
        description="TEST ONLY: CIDRs exempt from the SSRF address check (e.g. 127.0.0.1/32 for a loopback test "
        "server; every other private address stays refused).",
    )


class RequestSettings(_Group):
    """The shape of one request (docs/security.md#requests)."""

    max_request_body_bytes: int | None = Field(
        default=None,
        gt=0,
        description="Largest request body; default: base64 of every allowed video and image plus the text budget.",
    )
    max_n: int = Field(default=4, ge=1, description="Most choices (`n`) one request may ask for.")
    max_top_logprobs: int = Field(default=20, ge=0, description="Largest `top_logprobs`.")
    max_stop_sequences: int = Field(default=4, ge=0, description="Most `stop` sequences.")
    max_messages: int = Field(default=256, ge=1, description="Most messages in one request.")


ENV_API_KEY = "VIDEOMODEL_API_KEY"
ENV_UNSAFE_EXEMPT_NETWORKS = "VIDEOMODEL_UNSAFE_MEDIA_EXEMPT_NETWORKS"
ENVIRONMENT: dict[str, tuple[str, str]] = {
    ENV_API_KEY: ("listen.api_key", "Bearer key required on every route but /health and /metrics."),
    ENV_UNSAFE_EXEMPT_NETWORKS: (
        "media.media_exempt_networks",
        "TEST AND DEMO ONLY: comma-separated CIDRs (e.g. 127.0.0.1/32) media URLs may reach.",
    ),
}
"""Every environment variable the server reads: the setting it fills and what it is for.
These settings have no flag (a secret must not show in ``ps``; an SSRF hole must not be one
typo away)."""


class ServerSettings(BaseModel):
    """The whole configuration of one server process. Frozen once parsed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: ModelSettings
    listen: ListenSettings = Field(default_factory=ListenSettings)
    budget: VideoBudget = Field(default_factory=VideoBudget)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    engine_args: tuple[str, ...] = Field(default=(), description="Passed through to vLLM's engine arguments.")
    media: MediaSettings = Field(default_factory=MediaSettings)
    admission: AdmissionSettings = Field(default_factory=AdmissionSettings)
    requests: RequestSettings = Field(default_factory=RequestSettings)
    expected_plan: dict[str, Any] | None = Field(
        default=None, description="The operator's plan (from the budget file); start-up refuses a different one."
    )

    def text_byte_limit(self) -> int:
        """Most UTF-8 bytes of text one request may carry: refused by length before tokenizing."""
        return max(1, self.budget.max_prompt_tokens) * TEXT_BYTES_PER_TOKEN

    def body_limit(self) -> int:
        """Largest request body: base64 of every allowed video and image, the text budget, the JSON around it."""
        if self.requests.max_request_body_bytes is not None:
            return self.requests.max_request_body_bytes
        b = self.budget
        media = b.videos_per_prompt * b.max_video_bytes + b.images_per_prompt * self.media.max_image_bytes
        return media * 4 // 3 + self.text_byte_limit() * BODY_JSON_OVERHEAD + BODY_STRUCTURE_BYTES

    @property
    def model_name(self) -> str:
        return self.model.served_model_name or self.model.model.name
