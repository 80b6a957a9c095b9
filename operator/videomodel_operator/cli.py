"""``videomodel``: plan, render and CRD generation from a CR file, no cluster needed.

Exit codes (stable, documented in ``videomodel --help``):

- 0: success (for ``plan``: the budget is feasible);
- 1: the input cannot be used (unreadable file, not YAML, not a valid VideoModel);
- 2: usage error (argparse);
- 3: ``plan`` only: the CR is valid but the budget cannot be served; the plan is still printed
  (stdout) and every problem is repeated on stderr. ``render`` of an infeasible CR exits 3 and
  prints nothing, since the operator would apply nothing for it either.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from .spec import KIND, SpecError, VideoModel, parse_video_model

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_INFEASIBLE = 3

EPILOG = """exit codes: 0 ok (feasible); 1 invalid input; 2 usage; 3 valid CR but infeasible budget
(plan still printed, problems also on stderr)."""


class InputError(Exception):
    """The file cannot be turned into exactly one VideoModel."""


def load_documents(path: str) -> list[dict[str, Any]]:
    """YAML documents of ``path`` (``-`` reads stdin), skipping empty ones."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is not valid YAML: {exc}") from None
    for doc in documents:
        if not isinstance(doc, dict):
            raise InputError(f"{path}: every document must be a mapping (a Kubernetes object)")
    return documents


def load_video_model(path: str) -> VideoModel:
    """The single VideoModel in ``path``, validated."""
    documents = [doc for doc in load_documents(path) if doc.get("kind") == KIND]
    if len(documents) != 1:
        raise InputError(f"{path} holds {len(documents)} VideoModel objects; expected exactly one")
    try:
        return parse_video_model(documents[0])
    except SpecError as exc:
        raise InputError(f"{path}: invalid VideoModel: {exc}") from None


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the ConfigMap's plan) as literal blocks, so they read as written."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def _dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def cmd_plan(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .planning import plan_for, plan_table

    cr = load_video_model(args.file)
    plan = plan_for(cr.spec)
    if args.output == "json":
        out.write(json.dumps(plan.to_dict(), indent=2) + "\n")
    elif args.output == "yaml":
        out.write(_dump_yaml(plan.to_dict()))
    else:
        out.write(plan_table(plan))
    if not plan.feasible:
        for problem in plan.problems:
            err.write(f"infeasible: {problem}\n")
        return EXIT_INFEASIBLE
    return EXIT_OK


def cmd_render(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .planning import plan_for
    from .rendering import Capabilities, render

    cr = load_video_model(args.file)
    plan = plan_for(cr.spec)
    if not plan.feasible:
        for problem in plan.problems:
            err.write(f"infeasible: {problem}\n")
        return EXIT_INFEASIBLE
    objects = render(cr, plan, Capabilities(service_monitor=args.service_monitor))
    out.write("".join("---\n" + _dump_yaml(obj) for obj in objects))
    return EXIT_OK


def cmd_crd(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .crdgen import crd_yaml

    out.write(crd_yaml())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videomodel",
        description="Plan and render VideoModel custom resources without a cluster.",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    plan = sub.add_parser("plan", help="print the derived serving plan of a CR", epilog=EPILOG)
    plan.add_argument("-f", "--file", required=True, help="VideoModel YAML file ('-' for stdin)")
    plan.add_argument("-o", "--output", choices=("json", "yaml", "table"), default="table")
    plan.set_defaults(func=cmd_plan)

    render = sub.add_parser(
        "render",
        help="print the Kubernetes objects the operator would apply (multi-document YAML)",
        description=(
            "Owner references are included only when the file carries metadata.uid (a CR read "
            "back from the cluster); the operator always sets them."
        ),
        epilog=EPILOG,
    )
    render.add_argument("-f", "--file", required=True, help="VideoModel YAML file ('-' for stdin)")
    render.add_argument(
        "--service-monitor",
        action="store_true",
        help="render as for a cluster that has the monitoring.coreos.com ServiceMonitor CRD",
    )
    render.set_defaults(func=cmd_render)

    crd = sub.add_parser("crd", help="print the VideoModel CRD generated from the spec model")
    crd.set_defaults(func=cmd_crd)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args, out, err)
    except InputError as exc:
        err.write(f"error: {exc}\n")
        return EXIT_INVALID
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
