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
