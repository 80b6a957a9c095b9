"""Read the images' Dockerfiles and replay their install steps in a venv, without a container engine.

:func:`parse` turns a Dockerfile into stages of instructions (comments dropped, continuation
lines joined, ARG defaults resolved). :class:`Replay` then runs, stage by stage, what installs
Python packages there, with these translations and no others:

- the base image is a venv of the caller's (``VIRTUAL_ENV`` and ``PATH`` point at it), and
  ``uv pip install --system`` installs into that venv (``--python VENV/bin/python``);
- every absolute path in a replayed RUN command lives under a scratch root: ``COPY`` copies the
  build context there, a ``--mount=type=bind`` target reads its source (the context, an earlier
  stage's files under the root, or the uv binary for the ``ghcr.io/astral-sh/uv`` stage), and
  ``--mount=type=cache`` is dropped (uv uses its own cache);
- ``ARG`` and ``ENV`` values become the command's environment, so the shell expands them as the
  image build would.

Only RUN steps that run uv are replayed (they are the install steps); the others (a user, a
symlink) shape the image, not the Python environment, and :attr:`Replay.not_replayed` lists them.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")
_ABS_PATH = re.compile(r"(?<![\w./$}:>-])/[\w.+${}/*-]*")
UV_IMAGE = "ghcr.io/astral-sh/uv"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    path: Path
    args: dict[str, str]
    """ARG defaults declared before the first FROM."""
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def runs(self) -> list[Instruction]:
        return [i for s in self.stages for i in s.instructions if i.keyword == "RUN"]


def substitute(text: str, values: dict[str, str]) -> str:
    """``${NAME}`` and ``$NAME`` replaced by ``values`` (unknown names stay as they are)."""
    return _VAR.sub(lambda m: values.get(m.group(1) or m.group(2), m.group(0)), text)


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, instruction) pairs: comments dropped, ``\\`` continuations joined."""
    out: list[tuple[int, str]] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # a comment or blank line inside a continuation is skipped, as Docker does
        if not parts:
            start = number
        if line.endswith("\\"):
            parts.append(line[:-1].strip())
            continue
        parts.append(line)
        out.append((start, " ".join(parts)))
        parts = []
    assert not parts, "the Dockerfile ends inside a continued instruction"
    return out


def parse(path: Path) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, text in logical_lines(path.read_text()):
        keyword, _, args = text.partition(" ")
        keyword = keyword.upper()
        args = args.strip()
        if keyword == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--platform=")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=substitute(words[0], global_args), name=name))
        elif not stages:
            assert keyword == "ARG", f"{path}:{number}: only ARG may come before FROM"
            key, _, value = args.partition("=")
            global_args[key] = value
        else:
            stages[-1].instructions.append(Instruction(keyword, args, number))
    return Dockerfile(path=path, args=global_args, stages=stages)


def key_values(args: str) -> dict[str, str]:
    """``K=V K2="V 2"`` (ENV, LABEL, a --mount's options use ``,`` instead: see :func:`mount`)."""
    pairs = {}
    for word in shlex.split(args):
        key, sep, value = word.partition("=")
        assert sep, f"not KEY=VALUE: {word!r}"
        pairs[key] = value
    return pairs


def mount(option: str) -> dict[str, str]:
    """``--mount=type=bind,from=x,source=/a,target=/b`` as a dict (``type`` defaults to bind)."""
    fields = dict(part.partition("=")[::2] for part in option.removeprefix("--mount=").split(","))
    fields.setdefault("type", "bind")
    return fields


def run_parts(args: str) -> tuple[list[dict[str, str]], str]:
    """A RUN instruction's ``--mount`` options and its shell command."""
    mounts = []
    rest = args
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        assert option.startswith("--mount="), f"unsupported RUN option {option}"
        mounts.append(mount(option))
        rest = rest.lstrip()
    return mounts, rest


def is_install_step(command: str) -> bool:
    return re.search(r"(^|[\s/])uv\s+(pip\s+install|build)\b", command) is not None


@dataclass
class Replay:
    """Replays ``dockerfile``'s install steps into ``venv`` (which must exist), under ``root``."""

    dockerfile: Dockerfile
    context: Path
    root: Path
    venv: Path
    uv: Path
    timeout: float = 240.0
    replayed: list[str] = field(default_factory=list)
    not_replayed: list[str] = field(default_factory=list)

    def run(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for stage in self.dockerfile.stages:
            if stage.base.startswith(UV_IMAGE + ":"):
                assert not stage.instructions, "the uv stage is only a source of the uv binary"
                continue
            self._stage(stage)

    def _stage(self, stage: Stage) -> None:
        values = dict(self.dockerfile.args)
        env: dict[str, str] = {}
        cwd = self.root
        for ins in stage.instructions:
            if ins.keyword == "ARG":
                key, sep, value = ins.args.partition("=")
                env[key] = value if sep else self.dockerfile.args.get(key, "")
            elif ins.keyword == "ENV":
                env.update({k: substitute(v, values | env) for k, v in key_values(ins.args).items()})
            elif ins.keyword == "WORKDIR":
                cwd = self._under_root(substitute(ins.args, values | env))
                cwd.mkdir(parents=True, exist_ok=True)
            elif ins.keyword == "COPY":
                self._copy(substitute(ins.args, values | env))
            elif ins.keyword == "RUN":
                self._run(stage, ins, env, cwd)

    def _under_root(self, path: str) -> Path:
        assert path.startswith("/"), f"not an absolute path: {path}"
        return self.root / path.lstrip("/")

    def _copy(self, args: str) -> None:
        words = args.split()
        assert not any(w.startswith("--") for w in words), f"COPY options are not replayed: {args}"
        *sources, dest = words
        target = self._under_root(dest)
        into_dir = dest.endswith("/") or len(sources) > 1
        for source in sources:
            src = self.context / source
            to = target / src.name if into_dir else target
            to.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, to, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            else:
                shutil.copy2(src, to)

    def _mount_source(self, spec: dict[str, str]) -> Path:
        source = spec.get("source", "/")
        origin = spec.get("from")
        if origin is None:
            return self.context / source.lstrip("/")
        stage = next((s for s in self.dockerfile.stages if s.name == origin), None)
        assert stage is not None, f"mount from an image that is not a stage: {origin}"
        if stage.base.startswith(UV_IMAGE + ":"):
            assert source == "/uv", f"only /uv is taken from the uv image, not {source}"
            return self.uv
        return self._under_root(source)  # every stage's files share the replay root

    def _run(self, stage: Stage, ins: Instruction, env: dict[str, str], cwd: Path) -> None:
        mounts, command = run_parts(ins.args)
        where = f"{self.dockerfile.path.name}:{ins.line} ({stage.name or 'final'} stage)"
        if not is_install_step(command):
            self.not_replayed.append(f"{where}: {command}")
            return
        targets = {m["target"]: self._mount_source(m) for m in mounts if m["type"] == "bind"}
        assert all(m["type"] in ("bind", "cache") for m in mounts), mounts

        def host_path(match: re.Match[str]) -> str:
            path = match.group(0)
            for target in sorted(targets, key=len, reverse=True):
                if path == target or path.startswith(target.rstrip("/") + "/"):
                    return str(targets[target]) + path[len(target) :]
            return str(self._under_root(path))

        translated = _ABS_PATH.sub(host_path, command)
        translated = re.sub(r"(?<=\s)--system(?=\s)", f"--python {self.venv / 'bin' / 'python'}", translated)
        run_env = {**os.environ, **env, "VIRTUAL_ENV": str(self.venv)}
        run_env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", translated],
            cwd=cwd,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=self.timeout,
            check=False,
        )
        assert result.returncode == 0, f"{where} failed:\n$ {translated}\n{result.stdout}\n{result.stderr}"
        self.replayed.append(f"{where}: {translated}")
