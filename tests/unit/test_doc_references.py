"""Every repository file and module the repository names exists, and every ``file.md#anchor`` names a heading.

The product once cited ``ARCHITECTURE.md``, ``BUDGET.md`` and ``SECURITY.md`` in 26 places (module
docstrings, error messages, the CRD's user-facing description) while no such file was in the
repository. This scans every tracked text file (``git ls-files``: sources, docs, manifests,
templates, scripts; not lock files or binary fixtures) for

- any path-like ``something.md`` token, with an optional ``#anchor``;
- in Markdown files, every relative link ``](path)`` or ``](path#anchor)`` or ``](#anchor)``;
- any repository-relative path: a token that starts with one of the repository's top-level folders
  (``server/``, ``tests/``, ``.ci/``... as ``git ls-files`` has them, optionally behind ``../``) or is
  a top-level file's name (``Makefile``, ``pyproject.toml``); a glob (``tests/**/test_*.py``) must
  match a tracked file or folder, a brace list (``requirements/{torch,engine}.txt``) is every path
  it spells, and a path cut short by a placeholder (``docs/gpu/<date>/``, ``crds/{name}.yaml``) is
  checked up to its last ``/``;
- any dotted module reference in backticks or a role (```videomodel_server.x```,
  ``:mod:`videomodel_operator.x```, ``:class:`~videomodel_devtools.x.Y```), which must be an
  importable module (``importlib.util.find_spec``) or, past the longest such module, its attribute
  (``hasattr``, or a class's annotated field);

and fails, naming ``file:line`` and the target, when the target is not a tracked file or folder
(resolved against the referencing file's folder and against the repository root), or when the
anchor is not the GitHub slug of a heading of the target. URLs (``https://...``) are not
references, nor is a path inside another path (``/tmp/docs/x``, ``$OUT/bench/x``, ``.cache/tests/x``,
``vllm/tests/...``). Files that are not the repository's (another project's, quoted in prose) go in
:data:`OUTSIDE`, each with a reason.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.machinery
import importlib.util
import os
import re
import subprocess
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

REPO = Path(__file__).resolve().parents[2]

SCANNED_SUFFIXES = frozenset(
    {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".sh", ".json", ".tpl", ".lua", ".cfg", ".ini"}
)
SCANNED_NAMES = frozenset({"Makefile", ".gitignore", ".helmignore"})
"""Besides the suffixes: these names, ``Dockerfile*`` and files that start with a ``#!`` line."""
SKIPPED_NAMES = frozenset({"lock.txt"})
"""Lock files: pins, no prose."""
THIS_FILE = Path(__file__).resolve().relative_to(REPO).as_posix()
SKIPPED_FILES: Mapping[str, str] = {THIS_FILE: "this test: its docstring and fixtures are made-up references"}
"""Tracked files not scanned, each with a reason."""

OUTSIDE: Mapping[str, str] = {
    "../shared/gpu/README.md": "docs/gpu.md: the GPU kit's recipe, in the workspace beside the repository, not in it",
    "../../../../shared/gpu/README.md": "docs/gpu/next-out-of-sample/README.md: the same recipe, from four levels down",
}
"""``target -> reason``: a path (a ``.md`` or one under a top-level folder's name), as written, of a
file that is not the repository's (another project's file quoted in prose, such as vLLM's
``docs/...`` or ``tests/entrypoints/...``; a file beside the repository). Keep it minimal: an entry
no file uses any more fails the test."""

ALSO_UNDER: Mapping[str, str] = {
    "bench/results": "the benches write their reports there (media_bench.md, floor_bench.md, serve_bench.md), "
    "and their code and docs name the reports by bare file name",
}
"""Folders a *bare* file name (no ``/``) is also looked up in, each with a reason."""

URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
MD_TOKEN = re.compile(r"(?<![\w/.-])((?:\.{1,2}/)*(?:[\w.-]+/)*[\w.-]+\.md)(?:#([\w-]+))?(?![\w/])")
MD_LINK = re.compile(r"\]\(\s*<?([^()\s<>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
FENCE = re.compile(r"^ {0,3}(```|~~~)")
PACKAGES = ("videomodel_server", "videomodel_operator", "videomodel_devtools")
"""The repository's Python packages: a dotted name in backticks that starts with one is a module reference."""
MODULE = re.compile(rf"`[~!.]?((?:{'|'.join(PACKAGES)})(?:\.\w+)+)")
PLACEHOLDER = frozenset("<{$")
"""A path token followed by one of these is an example (``docs/gpu/<date>/``): checked up to its last ``/``."""
BRACES = re.compile(r"\{([\w.-]+(?:,[\w.-]+)+)\}([\w./*-]*)")
"""Except a shell's brace list (``requirements/{torch,engine}.txt``): every path it spells is checked."""


@functools.cache
def path_token(folders: frozenset[str], files: frozenset[str]) -> re.Pattern[str]:
    """The pattern of a repository-relative path: it starts with one of the top-level ``folders`` and a
    ``/``, or is one of the top-level ``files``; it is not inside another path or a variable
    (``/tmp/docs/x``, ``$OUT/bench/x``, ``.cache/tests/x``, ``vllm/tests/x``)."""
    either = [rf"(?:{'|'.join(map(re.escape, sorted(folders)))})/[\w./*-]*"] if folders else []
    either += [rf"(?:{'|'.join(map(re.escape, sorted(files)))})(?![\w/-]|\.\w)"] if files else []
    if not either:
        return re.compile(r"(?!)")
    return re.compile(rf"(?<![\w/.$~-])((?:\.{{1,2}}/)*(?:{'|'.join(either)}))")


@dataclass(frozen=True)
class Reference:
    source: str
    """Repository-relative path of the referencing file."""
    line: int
    target: str
    """The path as written ('' for an anchor into the same file), or the dotted module name."""
    anchor: str | None
    kind: Literal["path", "module"] = "path"


def scanned(path: str, head: str = "") -> bool:
    """Whether a tracked file is scanned (``head``: its first line, for ``#!`` scripts)."""
    name = os.path.basename(path)
    if name in SKIPPED_NAMES:
        return False
    return (
        os.path.splitext(name)[1] in SCANNED_SUFFIXES
        or name in SCANNED_NAMES
        or name.startswith("Dockerfile")
        or head.startswith("#!")
    )


def references(
    source: str, text: str, folders: Collection[str] = (), files: Collection[str] = ()
) -> Iterator[Reference]:
    """Every document, path and module reference in ``text``, the contents of the file at ``source``
    (``folders``, ``files``: the repository's top-level ones, which a path starts with)."""
    markdown = source.endswith(".md")
    paths = path_token(frozenset(folders), frozenset(files))
    for number, line in enumerate(text.splitlines(), 1):
        found: dict[Reference, None] = {}  # a link's text often repeats its target: once per line
        if markdown:
            for match in MD_LINK.finditer(line):
                target = match.group(1)
                if not SCHEME.match(target):
                    path, _, anchor = target.partition("#")
                    found[Reference(source, number, path, anchor or None)] = None
            line = MD_LINK.sub(" ", line)
        line = URL.sub(" ", line)
        for match in MD_TOKEN.finditer(line):
            found[Reference(source, number, match.group(1), match.group(2))] = None
        for match in paths.finditer(line):
            targets = [match.group(1)]
            if braces := BRACES.match(line, match.end()):  # requirements/{torch,engine}.txt: each one
                targets = [targets[0] + choice + braces.group(2) for choice in braces.group(1).split(",")]
            elif line[match.end() : match.end() + 1] in PLACEHOLDER:
                targets = [targets[0][: targets[0].rfind("/") + 1]]
            for target in (target.rstrip(".") for target in targets):  # a sentence's full stop
                if not (target.endswith(".md") and "*" not in target):  # a document: MD_TOKEN's
                    found[Reference(source, number, target, None)] = None
        for match in MODULE.finditer(line):
            found[Reference(source, number, match.group(1), None, "module")] = None
        yield from found


def glob_pattern(glob: str) -> re.Pattern[str]:
    """A path glob (``*``: within one folder; ``**/``: any folders, or none) as a pattern to match whole paths."""
    parts = re.split(r"(\*\*/|\*\*|\*)", glob)
    table = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*"}
    return re.compile("".join(table.get(part, re.escape(part)) for part in parts))


def bound_names(body: list[ast.stmt]) -> dict[str, ast.stmt]:
    """The names a module's or a class's ``body`` binds when it runs (``if TYPE_CHECKING:`` skipped)."""
    names: dict[str, ast.stmt] = {}
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update((n.id, node) for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name.partition(".")[0], node) for alias in node.names)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            names.update(bound_names(node.body + node.orelse))
        elif isinstance(node, ast.Try):
            handlers = [stmt for handler in node.handlers for stmt in handler.body]
            names.update(bound_names(node.body + handlers + node.orelse + node.finalbody))
    return names


@functools.cache
def parsed(origin: str) -> list[ast.stmt]:
    return ast.parse(Path(origin).read_text(encoding="utf-8"), filename=origin).body


@functools.cache
def module_problem(dotted: str) -> str | None:
    """Why ``dotted`` is neither an importable module nor an attribute of one (``None``: it is).

    The module part is found the way the import system finds it (``find_spec`` for the package,
    then each submodule in its parent's folders) without running any of it; an attribute that its
    module's source binds at the top (a class's own body, for ``Class.name``) needs no import
    either. Only an attribute the source does not show is looked up for real: the module is imported
    and ``hasattr`` decides (a class's annotated fields count). Importing the product costs seconds
    (kopf, fastapi, av), so the test stays fast by importing nothing while every reference is good."""
    parts = dotted.split(".")
    spec = importlib.util.find_spec(parts[0])
    depth = 1 if spec is not None else 0
    while spec is not None and spec.submodule_search_locations is not None and depth < len(parts):
        child = importlib.machinery.PathFinder.find_spec(
            ".".join(parts[: depth + 1]), list(spec.submodule_search_locations)
        )
        if child is None:
            break
        spec, depth = child, depth + 1
    if spec is None:
        return "is not an importable module"
    if depth == len(parts):
        return None
    body: list[ast.stmt] | None = parsed(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    for name in parts[depth:]:
        node = bound_names(body).get(name) if body is not None else None
        if node is None:
            break
        body = node.body if isinstance(node, ast.ClassDef) else None
    else:
        return None
    try:
        thing: object = importlib.import_module(".".join(parts[:depth]))
    except Exception as error:  # the reference may be good; the environment cannot tell
        return f"importing {'.'.join(parts[:depth])} failed: {error!r}"
    for end in range(depth, len(parts)):
        name = parts[end]
        fields = (vars(cls).get("__annotations__", {}) for cls in getattr(thing, "__mro__", ()))
        if not hasattr(thing, name) and not any(name in annotated for annotated in fields):
            return f"{'.'.join(parts[:end])} has no submodule or attribute {name}"
        thing = getattr(thing, name, None)
    return None


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text, lower case, punctuation dropped, spaces to ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = "".join(c for c in text.lower() if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """The anchors of a Markdown file's headings (fenced code skipped; repeats get ``-1``, ``-2``...)."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    fenced = False
    for line in markdown.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match is None:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def problems(
    root: Path,
    files: Iterable[str],
    *,
    outside: Mapping[str, str] = OUTSIDE,
    also_under: Mapping[str, str] = ALSO_UNDER,
) -> list[str]:
    """``file:line: target`` sentences for every dangling reference among ``files`` (repository-relative)."""
    tracked = set(files)
    folders = {str(parent) for f in tracked for parent in Path(f).parents if str(parent) != "."}
    top_folders = {name.partition("/")[0] for name in tracked if "/" in name}
    top_files = {name for name in tracked if "/" not in name}
    out: list[str] = []
    used: set[str] = set()
    slugs: dict[str, set[str]] = {}

    def resolve(source: str, target: str) -> str | None:
        if target.startswith("/"):  # GitHub reads a leading slash as the repository root
            bases, target = [""], target.lstrip("/")
        else:
            bases = [os.path.dirname(source), "", *(also_under if "/" not in target else ())]
        for base in bases:
            candidate = os.path.normpath(os.path.join(base, target))
            if candidate.startswith(".."):
                continue
            if "*" in candidate:
                pattern = glob_pattern(candidate)
                if any(pattern.fullmatch(name) for name in (*tracked, *folders)):
                    return candidate
            elif candidate in folders or (candidate in tracked and not target.endswith("/")):
                return candidate
        return None

    for folder in also_under:
        if folder not in folders:
            out.append(f"ALSO_UNDER names {folder}, which holds no tracked file")
    for source in sorted(tracked):
        path = root / source
        try:
            with path.open(encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError):
            continue
        if source in SKIPPED_FILES or not scanned(source, text[:2]):
            continue
        for ref in references(source, text, top_folders, top_files):
            if ref.target in outside:
                used.add(ref.target)
                continue
            where = f"{ref.source}:{ref.line}"
            if ref.kind == "module":
                why = module_problem(ref.target)
                if why is not None:
                    out.append(f"{where}: {ref.target}: {why}")
                continue
            found = resolve(ref.source, ref.target) if ref.target else ref.source
            shown = ref.target + (f"#{ref.anchor}" if ref.anchor else "")
            if found is None:
                out.append(f"{where}: {shown} does not exist in the repository")
                continue
            if ref.anchor and found.endswith(".md") and found in tracked:
                if found not in slugs:
                    slugs[found] = anchors((root / found).read_text(encoding="utf-8"))
                if ref.anchor not in slugs[found]:
                    out.append(f"{where}: {shown}: {found} has no heading #{ref.anchor}")
    out += [f"OUTSIDE entry {name} is not referenced any more: remove it" for name in sorted(set(outside) - used)]
    return out


def tracked_files() -> list[str]:
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    names = [name for name in listing.stdout.decode().split("\0") if name]
    return [name for name in names if (REPO / name).is_file()]


def test_every_document_reference_resolves() -> None:
    found = problems(REPO, tracked_files())
    assert not found, "dangling document references:\n  " + "\n  ".join(found)


def test_the_scan_sees_the_references_it_is_for() -> None:
    """A guard on the guard: the scan reaches the places the old citations were (a docstring, the
    generated CRD, a chart file) and reads their anchors; it sees repository paths in a README table,
    a Makefile recipe and a Dockerfile, a shell brace list, and module references in Sphinx roles."""
    tracked = tracked_files()
    folders = {name.partition("/")[0] for name in tracked if "/" in name}
    files = {name for name in tracked if "/" not in name}
    sources = {
        "crds/videomodels.videomodel.io.yaml",
        "charts/videomodel-operator/files/namespaced-rules.yaml",
        "server/videomodel_server/errors.py",
        "README.md",
        "Makefile",
        "images/server/Dockerfile",
    }
    seen = {
        (ref.source, ref.target, ref.anchor, ref.kind)
        for name in sorted(sources & set(tracked))
        if scanned(name)
        for ref in references(name, (REPO / name).read_text(encoding="utf-8"), folders, files)
    }
    assert ("crds/videomodels.videomodel.io.yaml", "docs/budget.md", None, "path") in seen
    assert ("charts/videomodel-operator/files/namespaced-rules.yaml", "docs/security.md", "rbac", "path") in seen
    assert ("server/videomodel_server/errors.py", "docs/security.md", "error-messages", "path") in seen
    assert ("README.md", "operator/videomodel_operator/spec/base.py", None, "path") in seen
    assert ("README.md", "requirements/torch.txt", None, "path") in seen  # requirements/{torch,engine,project}.txt
    assert ("Makefile", "tests/operator/test_status.py", None, "path") in seen
    assert ("images/server/Dockerfile", "images/server/requirements.txt", None, "path") in seen
    assert ("server/videomodel_server/errors.py", "videomodel_server.media.errors", None, "module") in seen
    assert ("server/videomodel_server/errors.py", "videomodel_server.media.errors.MediaError", None, "module") in seen


def _tree(tmp_path: Path, files: dict[str, str]) -> list[str]:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return list(files)


def test_a_dangling_reference_fails_naming_file_line_and_target(tmp_path: Path) -> None:
    files = _tree(
        tmp_path,
        {
            "docs/guide.md": "# Guide\n\n## Two words\n\nSee [the other](other.md) and [up](../README.md).\n",
            "README.md": "Read docs/guide.md#two-words.\n[gone](docs/gone.md) and [pic](img/missing.png)\n",
            "pkg/mod.py": '"""Formulas: BUDGET.md; also docs/guide.md#no-such-heading."""\n',
            "pkg/ok.py": '"""See ``docs/guide.md`` and https://example.com/x/UPSTREAM.md."""\n',
        },
    )
    found = problems(tmp_path, files, outside={}, also_under={})
    assert found == [
        "README.md:2: docs/gone.md does not exist in the repository",
        "README.md:2: img/missing.png does not exist in the repository",
        "docs/guide.md:5: other.md does not exist in the repository",
        "pkg/mod.py:1: BUDGET.md does not exist in the repository",
        "pkg/mod.py:1: docs/guide.md#no-such-heading: docs/guide.md has no heading #no-such-heading",
    ]


def test_anchors_follow_github_slugs(tmp_path: Path) -> None:
    text = (
        "# The `serving.json` contract\n## Flow of one request\n## Flow of one request\n"
        "```sh\n# not a heading\n```\n### [Linked](a.md) heading: a/b, c!\n"
    )
    assert anchors(text) == {
        "the-servingjson-contract",
        "flow-of-one-request",
        "flow-of-one-request-1",
        "linked-heading-ab-c",
    }
    files = _tree(tmp_path, {"a.md": text + "\n[self](#flow-of-one-request-1) [bad](#not-here)\n"})
    assert problems(tmp_path, files, outside={}, also_under={}) == ["a.md:9: #not-here: a.md has no heading #not-here"]


def test_allow_lists_resolve_and_go_stale(tmp_path: Path) -> None:
    files = _tree(
        tmp_path,
        {
            "out/report.md": "# Report\n",
            "notes.md": "vLLM's docs/configuration/optimization.md says so; our report is report.md.\n",
        },
    )
    outside = {"docs/configuration/optimization.md": "vLLM's docs, quoted"}
    assert problems(tmp_path, files, outside=outside, also_under={"out": "reports"}) == []
    assert problems(tmp_path, files, outside={}, also_under={"out": "reports"}) == [
        "notes.md:1: docs/configuration/optimization.md does not exist in the repository"
    ]
    stale = {**outside, "docs/old.md": "no longer quoted"}
    assert problems(tmp_path, files, outside=stale, also_under={"out": "reports", "gone": "?"}) == [
        "ALSO_UNDER names gone, which holds no tracked file",
        "OUTSIDE entry docs/old.md is not referenced any more: remove it",
    ]


def test_a_dangling_path_fails_naming_file_line_and_target(tmp_path: Path) -> None:
    files = _tree(
        tmp_path,
        {
            "Makefile": "test:\n\tpytest tests/unit/test_a.py tests/unit/test_gone.py\n",
            "tests/unit/test_a.py": '"""Like tests/unit/test_a.py. Uses pkg/spec.py (now pkg/spec/)."""\n',
            "pkg/spec/__init__.py": "# pkg/spec/base.py tests/**/test_*.py pkg/**/none_*.py tests/unit/test_a.py/\n",
            "pkg/spec/base.py": (
                "# Not references: https://github.com/x/y/blob/main/tests/z.py, /tmp/tests/a.py,\n"
                "# $OUT/pkg/b.json, .cache/pkg/c, vllm/tests/d.py, a placeholder pkg/<name>.py, pkg/{module}.py\n"
                "# Each of: pkg/{spec,gone}/base.py. Relative: ../../tests/unit/test_a.py ../../Makefile\n"
            ),
        },
    )
    assert problems(tmp_path, files, outside={}, also_under={}) == [
        "Makefile:2: tests/unit/test_gone.py does not exist in the repository",
        "pkg/spec/__init__.py:1: pkg/**/none_*.py does not exist in the repository",
        "pkg/spec/__init__.py:1: tests/unit/test_a.py/ does not exist in the repository",
        "pkg/spec/base.py:3: pkg/gone/base.py does not exist in the repository",
        "tests/unit/test_a.py:1: pkg/spec.py does not exist in the repository",
    ]
    assert problems(tmp_path, files, outside={"pkg/spec.py": "?"}, also_under={})[-1].startswith("pkg/spec/base.py")


def test_a_dangling_module_reference_fails_naming_file_line_and_target(tmp_path: Path) -> None:
    files = _tree(
        tmp_path,
        {
            "docs/a.md": (
                "Good: `videomodel_server.budget`, ``videomodel_server.budget.contract.ServingContract``,\n"
                ":mod:`videomodel_server.media.errors`, :class:`~videomodel_server.media.errors.MediaError`.\n"
                "Gone: `videomodel_server.media.estimate.estimate_video`,\n"
                "`videomodel_server.media.frames.FramesMeta`.\n"
            ),
            "pkg/mod.py": '"""Uses :func:`videomodel_operator.no_such.thing`, not videomodel_server.gone."""\n',
        },
    )
    assert problems(tmp_path, files, outside={}, also_under={}) == [
        "docs/a.md:3: videomodel_server.media.estimate.estimate_video: "
        "videomodel_server.media.estimate has no submodule or attribute estimate_video",
        "docs/a.md:4: videomodel_server.media.frames.FramesMeta: "
        "videomodel_server.media.frames has no submodule or attribute FramesMeta",
        "pkg/mod.py:1: videomodel_operator.no_such.thing: videomodel_operator has no submodule or attribute no_such",
    ]
