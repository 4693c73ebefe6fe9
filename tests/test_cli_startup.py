"""Commands that need no model start without importing torch or transformers (about a second and a half of
start-up before anything useful happens). Each runs the real CLI in a fresh interpreter, then looks at
sys.modules; `compare` on real evaluation folders is covered in test_datasets.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from quadrant.datasets.common import label_table
from test_datasets import make_padchest

HEAVY = ("torch", "transformers")
PROBE = (
    "import sys\n"
    "from quadrant.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "heavy = [m for m in {heavy!r} if m in sys.modules]\n"
    "print('HEAVY', heavy, file=sys.stderr)\n"
    "sys.exit(code)\n"
).format(heavy=HEAVY)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True)


@pytest.mark.parametrize("args, code", [
    (["--version"], 0),
    (["--help"], 0),
    ([], 2),
    (["compare", "--help"], 0),
    (["compare", "no-such-folder"], 2),
    (["manifest", "--help"], 0),
    (["manifest", "mimic-cxr", "--help"], 0),
    (["manifest", "padchest", "--root", "no-such-folder", "--out", "m.csv"], 2),
    (["phantoms", "--help"], 0),
    (["monitor", "--help"], 0),
    (["monitor", "--audit", "no-such-audit.sqlite"], 2),
    (["nonsense"], 2),
])
def test_model_free_commands_do_not_import_torch(args, code):
    result = run_cli(*args)
    assert result.returncode == code, result.stderr
    assert "HEAVY []" in result.stderr, result.stderr


def test_manifest_and_phantoms_run_without_torch(tmp_path):
    root = make_padchest(tmp_path / "padchest")
    result = run_cli("manifest", "padchest", "--root", str(root), "--out", str(tmp_path / "m.csv"))
    assert result.returncode == 0 and "HEAVY []" in result.stderr, result.stderr
    assert f"wrote {3 * len(label_table('padchest'))} rows" in result.stdout  # three images kept, every finding
    result = run_cli("phantoms", "--out", str(tmp_path / "ph"), "--n", "2", "--size", "64", "--dicom-every", "0")
    assert result.returncode == 0 and "HEAVY []" in result.stderr, result.stderr
    assert (tmp_path / "ph" / "manifest.csv").is_file()


def test_help_lists_every_command_and_a_model_command_still_loads_its_options():
    result = run_cli("--help")
    for command in ("check", "evaluate", "compare", "manifest", "bench", "phantoms", "export", "node", "monitor"):
        assert command in result.stdout
    result = run_cli("check", "--help")  # a model command: its options come from the model side
    assert result.returncode == 0 and "--ablation" in result.stdout and "--reliance" in result.stdout
