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


def test_doctor_says_whether_int8_can_be_fast_on_this_cpu():
    """int8 ONNX is faster than float32 only on a CPU with integer dot-product instructions: the line must say
    which case this machine is, as its kernel reports it; torch's own probe checks the vector width."""
    line = next(line for line in _doctor().stdout.splitlines() if line.startswith("cpu "))
    flags = set(next(row for row in open("/proc/cpuinfo").read().splitlines() if row.startswith("flags")).split())
    assert f"{os.cpu_count()} cores" in line
    if {"avx512_vnni", "avx_vnni", "amx_int8"} & flags:
        assert "int8 ONNX exports run on integer dot-product kernels" in line
        assert ("AVX-512 VNNI" in line) == ("avx512_vnni" in flags) and ("AMX" in line) == ("amx_int8" in flags)
    else:
        assert "no VNNI or AMX: int8 ONNX exports save size, not time, here" in line
    if torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        assert "AVX-512;" in line


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
