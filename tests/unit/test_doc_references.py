"""Every repository document the repository names exists, and every ``file.md#anchor`` names a heading.

The product once cited ``ARCHITECTURE.md``, ``BUDGET.md`` and ``SECURITY.md`` in 26 places (module
docstrings, error messages, the CRD's user-facing description) while no such file was in the
repository. This scans every tracked text file (``git ls-files``: sources, docs, manifests,
templates, scripts; not lock files or binary fixtures) for

- any path-like ``something.md`` token, with an optional ``#anchor``;
- in Markdown files, every relative link ``](path)`` or ``](path#anchor)`` or ``](#anchor)``;

and fails, naming ``file:line`` and the target, when the target is not a tracked file or folder
(resolved against the referencing file's folder and against the repository root), or when the
anchor is not the GitHub slug of a heading of the target. URLs (``https://...``) are not
references. Files that are not the repository's (another project's, quoted in prose) go in
:data:`OUTSIDE`, each with a reason.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

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
"""``target -> reason``: a ``.md`` path, as written, of a file that is not the repository's (another
project's file quoted in prose, such as vLLM's ``docs/...``; a file beside the repository). Keep it
minimal: an entry no file uses any more fails the test."""

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


@dataclass(frozen=True)
class Reference:
    source: str
    """Repository-relative path of the referencing file."""
    line: int
    target: str
    """The path as written ('' for an anchor into the same file)."""
    anchor: str | None


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


def references(source: str, text: str) -> Iterator[Reference]:
    """Every document reference in ``text``, the contents of the file at ``source``."""
    markdown = source.endswith(".md")
    for number, line in enumerate(text.splitlines(), 1):
        found: dict[Reference, None] = {}  # a link's text often repeats its target: once per line
        if markdown:
            for match in MD_LINK.finditer(line):
                target = match.group(1)
                if not SCHEME.match(target):
                    path, _, anchor = target.partition("#")
                    found[Reference(source, number, path, anchor or None)] = None
            line = MD_LINK.sub(" ", line)
        for match in MD_TOKEN.finditer(URL.sub(" ", line)):
            found[Reference(source, number, match.group(1), match.group(2))] = None
        yield from found


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
            if not candidate.startswith("..") and (candidate in tracked or candidate in folders):
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
        for ref in references(source, text):
            if ref.target in outside:
                used.add(ref.target)
                continue
            found = resolve(ref.source, ref.target) if ref.target else ref.source
            where = f"{ref.source}:{ref.line}"
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
    generated CRD, a chart file) and reads their anchors."""
    seen = {
        (ref.source, ref.target, ref.anchor)
        for name in tracked_files()
        if name.endswith((".py", ".yaml"))
        for ref in references(name, (REPO / name).read_text(encoding="utf-8"))
    }
    assert ("crds/videomodels.videomodel.io.yaml", "docs/budget.md", None) in seen
    assert ("charts/videomodel-operator/files/namespaced-rules.yaml", "docs/security.md", "rbac") in seen
    assert ("server/videomodel_server/errors.py", "docs/security.md", "error-messages") in seen


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
