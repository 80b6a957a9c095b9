"""``videomodel-server``: the inference server's command line (a contract with the operator).

    videomodel-server --model PATH [--budget-file serving.json] [--FLAG VALUE ...] [-- vLLM args]

Two roads, one parser. The operator starts the server with ``--budget-file``, the
:class:`~videomodel_server.budget.contract.ServingContract` it wrote into the model's ConfigMap
(budget, engine, admission and the plan it derived). Someone starting the server by hand passes
the same fields as flags. The flags are generated from the settings' fields (the budget's own
dataclass among them), so every field has exactly one flag, and both roads produce one mapping
that :class:`~videomodel_server.settings.ServerSettings` validates. Flags given next to a budget
file override the file's values; the plan check at start-up then tells whether the result is
still what the operator priced.

``--help`` lists every flag with its real default and every environment variable read. Start-up
fails fast (exit 2, one message) on a bad value, a checkpoint that does not match ``--family``,
a budget that does not fit, or a plan that differs from the operator's.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import gc
import logging
import math
import os
import signal
import socket
import sys
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from pydantic import BaseModel, ValidationError

from . import logs
from .admission import ABORT_UNWIND_SECONDS, Admission
from .budget import validate_budget
from .budget.contract import ContractError, bound_problems, read_contract
from .budget.names import flag
from .settings import ENV_API_KEY, ENV_UNSAFE_EXEMPT_NETWORKS, ENVIRONMENT, ServerSettings

if TYPE_CHECKING:
    import uvicorn

    from .loading import MediaLoader
    from .wiring import Resolved

log = logging.getLogger(__name__)

GROUP_TITLES = {
    "model": "model",
    "listen": "listening",
    "budget": "video budget (the operator's spec.budget; also in --budget-file)",
    "engine": "engine (also in --budget-file)",
    "media": "media fetching and its SSRF guard",
    "admission": "admission and timeouts (also in --budget-file)",
    "requests": "request limits",
}
ENV_ONLY = {setting for setting, _ in ENVIRONMENT.values()}


@dataclasses.dataclass(frozen=True)
class Option:
    """One settings field as a flag: ``group.name`` <-> ``--name``."""

    group: str
    name: str
    kind: type[Any]
    """Scalar type, ``X | None`` unwrapped; ``tuple`` means a comma-separated list."""
    default: Any
    help: str
    unit: str = ""

    @property
    def flag(self) -> str:
        return flag(self.name)

    @property
    def dest(self) -> str:
        return f"{self.group}.{self.name}"


def _scalar(hint: Any) -> type[Any]:
    if typing.get_origin(hint) in (Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is tuple:
        return tuple
    if not isinstance(hint, type):
        raise TypeError(f"unsupported settings type {hint!r}")
    return hint


def options() -> Iterator[Option]:
    """Every flag-settable field of :class:`ServerSettings`, group by group, in declaration order."""
    for group, info in ServerSettings.model_fields.items():
        cls = info.annotation
        if not isinstance(cls, type) or group not in GROUP_TITLES:
            continue
        if dataclasses.is_dataclass(cls):
            hints = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                default = f.default if f.default is not dataclasses.MISSING else None
                meta = f.metadata
                help_text, unit = str(meta.get("help", "")), str(meta.get("unit", ""))
                yield Option(group, f.name, _scalar(hints[f.name]), default, help_text, unit)
        elif issubclass(cls, BaseModel):
            for name, sub in cls.model_fields.items():
                if f"{group}.{name}" in ENV_ONLY:
                    continue
                default = None if sub.is_required() else sub.get_default(call_default_factory=True)
                yield Option(group, name, _scalar(sub.annotation), default, sub.description or "")


def _help(opt: Option) -> str:
    text = f"{opt.help} [{opt.unit}]" if opt.unit else opt.help
    if opt.kind is bool:
        return text
    if opt.dest == "model.model":
        return f"{text} (required)"
    if opt.default is None and "default" in opt.help:
        return text
    return f"{text} (default: {_show(opt.default)})"


_METAVARS: dict[type[Any], str] = {int: "N", float: "X", str: "TEXT", Path: "PATH", tuple: "A,B"}


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, tuple):
        return ",".join(value) or "none"
    if isinstance(value, enum.Enum):
        return str(value.value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _epilog() -> str:
    env = "\n".join(f"  {name}\n      {doc}" for name, (_, doc) in ENVIRONMENT.items())
    return (
        "Arguments after a bare -- are passed to vLLM's engine unchanged.\n\n"
        f"environment variables (they have no flag):\n{env}"
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="videomodel-server",
        description="OpenAI-compatible video inference server (vLLM) that enforces a declared video budget.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument(
        "--budget-file",
        type=Path,
        metavar="PATH",
        help="the operator's serving contract (JSON: budget, engine, admission, plan); flags override its values",
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for opt in options():
        group = groups.get(opt.group) or groups.setdefault(opt.group, p.add_argument_group(GROUP_TITLES[opt.group]))
        kwargs: dict[str, Any] = {"dest": opt.dest, "help": _help(opt)}
        if opt.kind in _METAVARS:
            kwargs["metavar"] = _METAVARS[opt.kind]
        if opt.kind is bool:
            kwargs["action"] = "store_true"
        elif opt.kind is tuple:
            kwargs["type"] = _comma_list
        elif issubclass(opt.kind, enum.Enum):
            kwargs["choices"] = [m.value for m in opt.kind]
        else:
            kwargs["type"] = opt.kind
        if opt.dest == "model.model":
            kwargs["required"] = True
        group.add_argument(opt.flag, **kwargs)
    return p


def _nest(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    nested: dict[str, dict[str, Any]] = {}
    for dest, value in flat.items():
        group, name = dest.split(".", 1)
        nested.setdefault(group, {})[name] = value
    return nested


def parse_settings(argv: Sequence[str], environ: dict[str, str] | None = None) -> ServerSettings:
    """Budget file, flags and the environment into :class:`ServerSettings`; exits 2 on bad input."""
    environ = dict(os.environ) if environ is None else environ
    argv = list(argv)
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    given = vars(parser.parse_args(argv))
    values: dict[str, Any] = {}
    budget_file = given.pop("budget_file", None)
    if budget_file is not None:
        try:
            contract = read_contract(Path(budget_file).read_text())
        except (OSError, ContractError) as exc:
            parser.error(f"--budget-file {budget_file}: {exc}")
        values["expected_plan"] = contract.pop("plan")
        values.update({section: dict(fields) for section, fields in contract.items()})
    for group, fields in _nest(given).items():
        values.setdefault(group, {}).update(fields)
    values["engine_args"] = tuple(passthrough)
    if environ.get(ENV_API_KEY):
        values.setdefault("listen", {})["api_key"] = environ[ENV_API_KEY]
    if environ.get(ENV_UNSAFE_EXEMPT_NETWORKS):
        values.setdefault("media", {})["media_exempt_networks"] = _comma_list(environ[ENV_UNSAFE_EXEMPT_NETWORKS])
    if "allowed_media_domains" in values.get("media", {}):
        values["media"]["allowed_media_domains"] = tuple(d.lower() for d in values["media"]["allowed_media_domains"])
    try:
        settings = ServerSettings.model_validate(values)
    except ValidationError as exc:
        parser.error("; ".join(f"{flag(str(e['loc'][-1]))}: {e['msg']}" for e in exc.errors()))
    problems = validate_budget(settings.budget)
    problems += bound_problems("engine", settings.engine) + bound_problems("admission", settings.admission)
    if problems:
        parser.error("; ".join(problems))
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    settings = parse_settings(args)
    logs.configure(settings.listen.log_level.upper())

    from .media_adapter import build_loader
    from .wiring import StartupError, resolve_checkpoint

    try:
        resolved = resolve_checkpoint(settings)
        loader = build_loader(settings, resolved)
    except (StartupError, ValueError) as exc:
        print(f"videomodel-server: {exc}", file=sys.stderr)
        return 2
    if settings.media.media_exempt_networks:
        log.warning(
            "media may reach %s (%s): test use only",
            ",".join(settings.media.media_exempt_networks),
            ENV_UNSAFE_EXEMPT_NETWORKS,
        )
    return serve(settings, resolved, loader)


def serve(settings: ServerSettings, resolved: Resolved, loader: MediaLoader) -> int:
    """Run the server until SIGINT/SIGTERM; see :func:`draining_server` for how it stops."""
    from .app import create_app
    from .wiring import build_state

    state = build_state(settings, resolved, loader)
    failed: list[bool] = []

    def stop_on_engine_failure() -> None:
        # vllm serve exits when its engine cannot start; so does this server, with its own status,
        # instead of answering /health "dead" until the startup probe gives up (tens of minutes).
        failed.append(True)
        state.admission.stop_admitting()
        server.should_exit = True

    app = create_app(state, on_engine_start_failure=stop_on_engine_failure, on_engine_ready=freeze_startup_heap)
    server = draining_server(app, settings, state.admission)
    log.info(
        "starting",
        extra={"model": settings.model_name, "host": settings.listen.host, "port": settings.listen.port},
    )
    server.run()
    if failed:
        log.error("stopped: the engine could not start", extra={"reason": "engine_start_failed"})
        return ENGINE_START_FAILED_EXIT
    log.info("stopped")
    return 0


def freeze_startup_heap() -> None:
    """Collect, then mark every object alive now permanent (``gc.freeze``), as vLLM's own API
    server does once its engine is up: the collector's full passes then walk only what requests
    allocate, not the model code, tokenizer and engine client. Measured with ``make bench-serve``
    (overload, 4 waves of 8): the first wave's 503s took 48-49 ms before, 10-15 ms after (one
    run each; the process-wide freeze is why this is the CLI's, not the app's)."""
    gc.collect()
    gc.freeze()


ENGINE_START_FAILED_EXIT = 3
"""Exit status when the engine (or its worst-case warm-up) failed at start; 2 is a bad command line."""


SHUTDOWN_MARGIN_SECONDS = 3.0
"""uvicorn's own limit on the drain, past the grace period: a backstop that cuts connections only
if a stopped request failed to end (its error event, its 503) on its own."""


def draining_server(app: Any, settings: ServerSettings, admission: Admission) -> uvicorn.Server:
    """uvicorn, stopping the way a Kubernetes pod should on SIGTERM (docs/security.md#disconnects-and-shutdown).

    By the time SIGTERM comes, the pod's ``preStop`` pause has let the endpoints controller take
    it out of the Service, so nothing new should arrive. On the signal the admission stops
    admitting at once (``/health`` 503 ``draining``; a request that still reaches the app: 503 +
    Retry-After), then uvicorn closes the listener (new connections are refused, which a client
    or kube-proxy retries elsewhere) and idle keep-alive connections. Admitted requests and
    streams run on for ``drain_timeout``; whatever is still running then is stopped (a stream
    ends with an error event and ``[DONE]``, a non-streaming request with a 503). Then the
    lifespan stops the engine and the decode workers and the process exits 0.
    """
    import uvicorn

    grace = settings.admission.drain_timeout

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: types.FrameType | None) -> None:
            admission.stop_admitting()  # sets a flag only: safe here, in the signal handler
            if sig == signal.SIGTERM:
                # The expected way to stop, handled in full: exit 0 rather than re-raising the
                # signal at the end as uvicorn does (which would make the exit status 143).
                self.should_exit = True
                return
            super().handle_exit(sig, frame)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            admission.begin_drain(grace)
            await super().shutdown(sockets)

    config = uvicorn.Config(
        app,
        host=settings.listen.host,
        port=settings.listen.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=math.ceil(grace + ABORT_UNWIND_SECONDS + SHUTDOWN_MARGIN_SECONDS),
    )
    return DrainingServer(config)


if __name__ == "__main__":
    raise SystemExit(main())
