"""The source reads as it runs: no name used that is never defined (a NameError waiting in an error path
that no other test reaches, as `--chat-template` with an unreadable file once was), no unused import, and no
zip() over lists that must match without `strict=True`. Through ruff; `[tool.ruff]` in pyproject.toml says
which rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_undefined_names_or_unused_imports():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_python_package_in_the_tree_is_shipped():
    """A package missing from pyproject.toml's list still imports from an editable install, and is absent
    from a wheel (the Docker image): every folder with an __init__.py must be listed."""
    import tomllib

    setup = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    folders = {folder: package for package, folder in setup["package-dir"].items()}
    found = set()
    for folder, package in folders.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            if not any(part.startswith(".") for part in parts):
                found.add(".".join((package, *parts)))
    assert found - set(setup["packages"]) == set()
