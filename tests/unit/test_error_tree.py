"""The error tree drawn in ``videomodel_server.errors``' docstring is the tree the code defines.

Every class of the server package that derives from ``ServerError`` (found by reading the
sources, so a class in any module counts, imported or not) must be drawn exactly once, under its
parent, marked ``*`` exactly when it is also a ``MediaError``, with the status and default code
its class has, and the retry rule the docstring states must hold for every drawn status.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import videomodel_server
from videomodel_server import errors

PACKAGE = Path(videomodel_server.__file__).resolve().parent
ROOT = "ServerError"
MEDIA_BASE = "MediaError"
LINE = re.compile(
    r"^(?P<indent>(?:\|   |    )*)(?P<branch>\+-- )?(?P<name>[A-Z]\w*)(?P<star> \*)?\s+"
    r"(?P<status>\d{3}|-)\s+(?P<rest>.*?)\s*$"
)
NOTE_MODULE = re.compile(r"\((media\.\w+)\)$")


@dataclass(frozen=True)
class Drawn:
    name: str
    parent: str | None
    media: bool
    status: int | None
    code: str | None
    module: str | None
    """The module a note names (``(media.sampling)``), if any."""


def drawn_tree(doc: str) -> list[Drawn]:
    """The classes of the tree in ``doc`` (the indented block after ``::``), with their parents."""
    block = doc.split("::\n", 1)[1]
    out: list[Drawn] = []
    stack: list[str] = []
    for raw in block.splitlines():
        if not raw.strip():
            continue
        if not raw.startswith("    "):
            break
        match = LINE.match(raw[4:])
        assert match is not None, f"cannot read this line of the drawn tree: {raw!r}"
        depth = len(match["indent"]) // 4 + bool(match["branch"])
        del stack[depth:]
        assert len(stack) == depth, f"{match['name']} is indented below no parent"
        rest = match["rest"]
        code = None if match["status"] == "-" else rest.split()[0]
        module = NOTE_MODULE.search(rest)
        out.append(
            Drawn(
                name=match["name"],
                parent=stack[-1] if stack else None,
                media=bool(match["star"]),
                status=None if match["status"] == "-" else int(match["status"]),
                code=code,
                module=f"videomodel_server.{module[1]}" if module else None,
            )
        )
        stack.append(match["name"])
    return out


def defined_classes(package: Path) -> dict[str, tuple[str, list[str]]]:
    """``name -> (module, base names)`` of every class in the package deriving from ``ServerError``."""
    classes: dict[str, list[tuple[str, list[str]]]] = {}
    for path in sorted(package.rglob("*.py")):
        module = ".".join(("videomodel_server", *path.relative_to(package).with_suffix("").parts))
        module = module.removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = [
                    b.id if isinstance(b, ast.Name) else b.attr
                    for b in node.bases
                    if isinstance(b, ast.Name | ast.Attribute)
                ]
                classes.setdefault(node.name, []).append((module, bases))
    tree = {ROOT}
    grew = True
    while grew:
        grew = False
        for name, definitions in classes.items():
            if name not in tree and any(set(bases) & tree for _, bases in definitions):
                tree.add(name)
                grew = True
    out = {}
    for name in tree:
        assert len(classes[name]) == 1, f"{name} is defined more than once: {classes[name]}"
        out[name] = classes[name][0]
    return out


def tree_problems(drawn: list[Drawn], defined: dict[str, tuple[str, list[str]]]) -> Iterator[str]:
    """What differs between the drawing and the classes (empty when they agree)."""
    names = [d.name for d in drawn]
    for name in sorted({n for n in names if names.count(n) > 1}):
        yield f"{name} is drawn more than once"
    for name in sorted(set(defined) - set(names)):
        yield f"{name} ({defined[name][0]}) is not drawn"
    for name in sorted(set(names) - set(defined)):
        yield f"{name} is drawn but no such class derives from {ROOT}"
    for d in drawn:
        if d.name not in defined:
            continue
        module, _ = defined[d.name]
        cls = getattr(importlib.import_module(module), d.name)
        parents = {b.__name__ for b in cls.__bases__ if issubclass(b, errors.ServerError)}
        expected = {p for p in (d.parent,) if p} | ({MEDIA_BASE} if d.media else set())
        if parents != expected:
            yield f"{d.name}: drawn under {sorted(expected)}, derives from {sorted(parents)}"
        if d.media and module != (d.module or "videomodel_server.media.errors"):
            yield f"{d.name}: defined in {module}, drawn as {d.module or 'videomodel_server.media.errors'}"
        if d.status is not None:
            if cls.status != d.status or cls.code != d.code:
                yield f"{d.name}: drawn {d.status} {d.code}, is {cls.status} {cls.code}"
            if cls.retryable != (d.status in (500, 503)):
                yield f"{d.name}: retryable={cls.retryable}, but the docstring's rule says {d.status in (500, 503)}"


def test_the_drawn_error_tree_is_the_defined_one() -> None:
    assert errors.__doc__ is not None
    problems = list(tree_problems(drawn_tree(errors.__doc__), defined_classes(PACKAGE)))
    assert not problems, "the error tree in videomodel_server/errors.py is stale:\n  " + "\n  ".join(problems)


def test_the_check_fails_on_a_stale_drawing() -> None:
    assert errors.__doc__ is not None
    doc = errors.__doc__
    defined = defined_classes(PACKAGE)
    moved = doc.replace("|   |   +-- TooLarge *", "|   +-- TooLarge *     ")  # up one level
    dropped = "\n".join(line for line in doc.splitlines() if "NotReady" not in line)
    wrong = doc.replace("404  model_not_found", "400  model_not_found").replace("FetchFailed *", "FetchFailed  ")
    assert list(tree_problems(drawn_tree(moved), defined)) == [
        "TooLarge: drawn under ['InvalidRequest', 'MediaError'], derives from ['MediaError', 'PayloadTooLarge']"
    ]
    assert list(tree_problems(drawn_tree(dropped), defined)) == ["NotReady (videomodel_server.errors) is not drawn"]
    assert list(tree_problems(drawn_tree(wrong), defined)) == [
        "FetchFailed: drawn under ['InvalidRequest'], derives from ['InvalidRequest', 'MediaError']",
        "ModelNotFound: drawn 400 model_not_found, is 404 model_not_found",
    ]


def test_the_media_errors_point_at_the_drawing() -> None:
    from videomodel_server.media import errors as media_errors

    assert media_errors.__doc__ is not None and "drawn in :mod:`videomodel_server.errors`" in media_errors.__doc__
