"""`quadrant doctor` and the GPU check, run as a user runs them (separate processes) on this CPU machine."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from conftest import QUADRANT


def _doctor(**env) -> subprocess.CompletedProcess:
    return subprocess.run([QUADRANT, "doctor"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def test_doctor_says_what_this_machine_runs_one_line_each():
    done = _doctor()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    found = {line.split()[0] if not line.startswith("preset") else " ".join(line.split()[:2]): line for line in lines}
    assert torch.__version__ in found["torch"]
    if not torch.cuda.is_available():
        assert "no CUDA GPU visible to PyTorch" in found["torch"]
    assert "CPU" in found["onnxruntime"] and "TRAP" not in done.stdout
    assert "tensorrt" in found and "nvidia-smi" in found and "export" in found
    assert "torch on cpu, float32; files here" in found["preset demo"]
    assert "preset lingshu-7b" in found  # every preset has its line, downloaded or not


def test_doctor_flags_both_onnx_runtime_wheels(tmp_path):
    """The trap: onnxruntime and onnxruntime-gpu installed together shadow each other. A second wheel's
    record (what pip leaves in site-packages) on the path is enough for the check to see both."""
    record = tmp_path / "onnxruntime_gpu-1.32.0.dist-info"
    record.mkdir()
    (record / "METADATA").write_text("Metadata-Version: 2.1\nName: onnxruntime-gpu\nVersion: 1.32.0\n")
    done = _doctor(PYTHONPATH=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "onnxruntime and onnxruntime-gpu" in done.stdout and "TRAP" in done.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the check measures instead")
def test_the_gpu_check_says_clearly_that_no_gpu_is_here():
    done = subprocess.run([sys.executable, "-m", "quadrant.models.gpu_check", "--models", "llava,qwen2.5-vl"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "No NVIDIA GPU here: nothing was measured" in done.stderr
    shapes = [line for line in done.stdout.splitlines() if " shape " in line]
    assert len(shapes) == 2 and "7.06 B" in shapes[0] and "hidden 4096" in shapes[0] and "8.29 B" in shapes[1]
    assert "cuda False" in done.stdout
