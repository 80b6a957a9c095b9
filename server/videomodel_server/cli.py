"""``videomodel-server``: the inference server's command line (a contract with the operator).

    videomodel-server --model PATH [--served-model-name N] [--family qwen2_vl|qwen2_5_vl|qwen3_vl]
        [--host H] [--port 8000] --max-seconds S --fps F --max-frames N --min-pixels P
        --max-pixels P --total-pixels P --videos-per-prompt V --images-per-prompt I
        --max-video-bytes B --max-prompt-tokens T --max-output-tokens T --fetch-timeout S
        --max-model-len L --tensor-parallel-size N --dtype D --gpu-memory-utilization U
        --allowed-media-domains a,b --allowed-local-media-path DIR --allow-http
        --max-concurrent-requests N --max-queued-requests N --decode-workers N
        [-- extra vLLM engine args]

Every flag but ``--model`` is optional: budget fields default to ``VideoBudget()``'s, the rest
is derived through the budget module. The API key comes from ``VIDEOMODEL_API_KEY``. Start-up
fails fast (exit 2, one message) when the checkpoint does not match ``--family`` or the budget
does not fit the model's context.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from . import logs
from .budget import Family
from .settings import ServerSettings

if TYPE_CHECKING:
    from .loading import MediaLoader
    from .wiring import Resolved

log = logging.getLogger(__name__)

ENV_API_KEY = "VIDEOMODEL_API_KEY"
ENV_UNSAFE_EXEMPT_NETWORKS = "VIDEOMODEL_UNSAFE_MEDIA_EXEMPT_NETWORKS"
"""Tests and the demo only: comma-separated CIDRs (e.g. 127.0.0.1/32) media URLs may reach."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="videomodel-server",
        description="OpenAI-compatible video inference server (vLLM) that enforces a declared video budget.",
        epilog="Arguments after a bare -- are passed to vLLM's engine unchanged.",
    )
    p.add_argument("--model", required=True, type=Path, help="local checkpoint directory")
    p.add_argument("--served-model-name")
    p.add_argument("--family", choices=[f.value for f in Family])
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8000)
    budget = p.add_argument_group("video budget (defaults: VideoBudget())")
    budget.add_argument("--max-seconds", type=float)
    budget.add_argument("--fps", type=float)
    budget.add_argument("--max-frames", type=int)
    budget.add_argument("--min-pixels", type=int)
    budget.add_argument("--max-pixels", type=int)
    budget.add_argument("--total-pixels", type=int)
    budget.add_argument("--videos-per-prompt", type=int)
    budget.add_argument("--images-per-prompt", type=int)
    budget.add_argument("--max-video-bytes", type=int)
    budget.add_argument("--max-prompt-tokens", type=int)
    budget.add_argument("--max-output-tokens", type=int)
    budget.add_argument("--fetch-timeout", type=float, help="seconds (default: derived from the budget)")
    engine = p.add_argument_group("engine")
    engine.add_argument("--max-model-len", type=int, help="default: derived from the budget")
    engine.add_argument("--tensor-parallel-size", type=int)
    engine.add_argument("--dtype")
    engine.add_argument("--gpu-memory-utilization", type=float)
    media = p.add_argument_group("media security")
    media.add_argument("--allowed-media-domains", help="comma-separated; narrows the SSRF guard, never replaces it")
    media.add_argument("--allowed-local-media-path", type=Path, help="enables file:// URLs under this directory")
    media.add_argument("--allow-http", action="store_true", default=None, help="accept http:// media URLs")
    limits = p.add_argument_group("admission")
    limits.add_argument("--max-concurrent-requests", type=int)
    limits.add_argument("--max-queued-requests", type=int)
    limits.add_argument("--decode-workers", type=int)
    p.add_argument("--log-level", default="INFO")
    return p


def parse_settings(argv: Sequence[str], environ: dict[str, str] | None = None) -> ServerSettings:
    """Flags (and the two environment variables) into :class:`ServerSettings`; exits 2 on bad input."""
    environ = dict(os.environ) if environ is None else environ
    argv = list(argv)
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    parser = _parser()
    ns = parser.parse_args(argv)
    values: dict[str, Any] = {
        k: v for k, v in vars(ns).items() if v is not None and k not in ("allowed_media_domains", "log_level")
    }
    if ns.allowed_media_domains:
        values["allowed_media_domains"] = tuple(
            d.strip().lower() for d in ns.allowed_media_domains.split(",") if d.strip()
        )
    values["engine_args"] = tuple(passthrough)
    if environ.get(ENV_API_KEY):
        values["api_key"] = environ[ENV_API_KEY]
    if environ.get(ENV_UNSAFE_EXEMPT_NETWORKS):
        networks = environ[ENV_UNSAFE_EXEMPT_NETWORKS].split(",")
        values["media_exempt_networks"] = tuple(n.strip() for n in networks if n.strip())
    try:
        return ServerSettings(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}" for e in exc.errors()
        )
        parser.error(problems)
        raise  # unreachable: parser.error exits


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    settings = parse_settings(args)
    level = "INFO"
    if "--log-level" in args:
        level = args[args.index("--log-level") + 1].upper()
    logs.configure(level)

    from .media_adapter import build_loader
    from .wiring import StartupError, resolve_checkpoint

    try:
        resolved = resolve_checkpoint(settings)
        loader = build_loader(settings, resolved)
    except (StartupError, ValueError) as exc:
        print(f"videomodel-server: {exc}", file=sys.stderr)
        return 2
    if settings.media_exempt_networks:
        log.warning(
            "media may reach %s (%s): test use only",
            ",".join(settings.media_exempt_networks),
            ENV_UNSAFE_EXEMPT_NETWORKS,
        )
    return serve(settings, resolved, loader)


def serve(settings: ServerSettings, resolved: Resolved, loader: MediaLoader) -> int:
    """Run the server until SIGINT/SIGTERM (uvicorn drains, then the lifespan stops the engine)."""
    import uvicorn

    from .app import create_app
    from .wiring import build_state

    state = build_state(settings, resolved, loader)
    app = create_app(state)
    log.info(
        "starting",
        extra={"model": settings.model_name, "host": settings.host, "port": settings.port},
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.drain_timeout) or None,
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
