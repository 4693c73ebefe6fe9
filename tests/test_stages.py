"""The stages depend one way: the core (`runtime/` less its command line) imports neither the export stage,
nor the app, nor the command line, nor the tiny-model builders the tests and the bench use; the export stage
imports neither the app nor the command line. The command line composes them. Read from the source with
`ast`, so an import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: top-level folder -> the package it installs as (pyproject.toml's package-dir)
PACKAGES = {"runtime": "quadrant", "export": "quadrant.export", "app": "quadrant.app", "models": "quadrant.models"}
BUILDERS = ("quadrant.models.tiny",)


def _module(path: Path) -> str:
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    parts = [PACKAGES[folder], *rest]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, relative imports resolved against its own package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)  # `from . import x` names module x
    return found


def _files(folder: str, skip: str | None = None) -> list[Path]:
    return [p for p in sorted((ROOT / folder).rglob("*.py")) if not (skip and skip in p.parts)]


def _crossings(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [f"{p.relative_to(ROOT)} imports {name}" for p in files for name in sorted(_imports(p))
            if any(name == f or name.startswith(f + ".") for f in forbidden)]


def test_the_core_imports_no_stage_above_it():
    core = _files("runtime", skip="cli")
    assert len(core) > 40
    assert _crossings(core, ("quadrant.export", "quadrant.app", "quadrant.cli", *BUILDERS)) == []


def test_the_export_stage_imports_neither_the_app_nor_the_command_line():
    assert _crossings(_files("export"), ("quadrant.app", "quadrant.cli")) == []


def test_loading_does_not_reach_back_into_the_backends():
    """The backends are built on loading (its model spec and loaded types), so loading must not import them:
    that edge closed a circle loading -> backends -> loading."""
    assert _crossings([ROOT / "runtime" / "loading.py"], ("quadrant.backends",)) == []


@pytest.mark.parametrize("source, names", [
    ("from ..backends.onnx_format import is_export", {"quadrant.backends.onnx_format"}),
    ("from . import onnx_format", {"quadrant.backends", "quadrant.backends.onnx_format"}),
])
def test_relative_imports_are_resolved(tmp_path, monkeypatch, source, names):
    """The walker itself: a relative import in runtime/backends/x.py names the module it reaches."""
    fake = ROOT / "runtime" / "backends" / "x.py"
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: source)
    assert names <= _imports(fake)
