"""The test tree's layout: a test module imports no other test module and no conftest.

What tests share lives in modules that are not tests: the harness package (tests/harness/) and a
directory's own helper modules (tests/operator/apiserver.py, tests/hardening/catalogue.py, ...);
a conftest holds fixtures and hooks only. Every ``tests/**/test_*.py`` is parsed (nothing is
imported), so a test that imports another test module (whose tests then hang together with its
own) or a conftest (which pytest, not Python, is meant to load) fails here with its file and line.
The harness package's re-exports are checked against its modules the same way.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def is_test_or_conftest(module: str) -> bool:
    """Whether the dotted ``module`` is a test module or a conftest of this tree."""
    parts = module.split(".")
    if parts[0] != "tests" or not (parts[-1] == "conftest" or parts[-1].startswith("test_")):
        return False
    return ROOT.joinpath(*parts).with_suffix(".py").is_file()


def imported_modules(source: str, where: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in ``source`` (the text of the file ``where``), at any
    depth, relative imports resolved; ``from package import name`` also counts ``package.name``."""
    package = list(where.relative_to(ROOT).parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename=str(where))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return sorted(found)


@functools.cache
def violations() -> dict[str, dict[str, list[int]]]:
    """file -> {the test module or conftest it imports -> lines}."""
    out: dict[str, dict[str, list[int]]] = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        name = path.relative_to(ROOT).as_posix()
        for line, module in imported_modules(path.read_text(), path):
            if is_test_or_conftest(module):
                out.setdefault(name, {}).setdefault(module, []).append(line)
    return out


def test_no_test_module_imports_another_test_module_or_a_conftest() -> None:
    wrong = [
        f"{name}:{line}: imports {module}"
        for name, modules in violations().items()
        for module, lines in modules.items()
        for line in lines
    ]
    assert not wrong, "what tests share belongs in tests/harness/ or a helper module that is not a test:\n" + (
        "\n".join(wrong)
    )


@pytest.mark.parametrize(
    ("statement", "refused"),
    [
        ("from .conftest import x", "tests.server.conftest"),
        ("from . import test_api", "tests.server.test_api"),
        ("from ..media.test_fetch import y", "tests.media.test_fetch"),
        ("import tests.server.test_api", "tests.server.test_api"),
        ("def f():\n    from tests.operator.conftest import z", "tests.operator.conftest"),
        ("from tests.harness import MediaServer", None),
        ("from .media_server import MediaServer", None),
        ("from .test_not_a_file import x", None),
    ],
)
def test_the_rule_sees_every_import_form(statement: str, refused: str | None) -> None:
    """Relative or absolute, of a module or of a name, at any depth; helper modules pass."""
    where = TESTS / "server" / "test_example.py"
    modules = [module for _, module in imported_modules(statement, where) if is_test_or_conftest(module)]
    assert modules == ([refused] if refused else [])


def _top_level_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


def test_the_harness_exports_what_its_modules_define() -> None:
    import tests.harness as harness

    missing = [
        f"tests/harness/{module}.py has no {name}"
        for module, names in harness.EXPORTS.items()
        for name in names
        if name not in _top_level_names(TESTS / "harness" / f"{module}.py")
    ]
    assert not missing, "\n".join(missing)
    assert len(set(harness.__all__)) == sum(len(names) for names in harness.EXPORTS.values()), "a name twice"
