"""Shared fixtures: tiny real models of every family, built offline once per session, and study files."""

from __future__ import annotations

import atexit
import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["QUADRANT_CACHE"] = tempfile.mkdtemp(prefix="quadrant-test-cache-")  # never the user's own
atexit.register(shutil.rmtree, os.environ["QUADRANT_CACHE"], ignore_errors=True)  # nor left behind in /tmp
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import numpy as np  # noqa: E402
import torch  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import AutoModelForImageTextToText  # noqa: E402

from quadrant.models.tiny import FAMILIES, GENERIC_FAMILIES, NEW_FAMILIES, build_tiny  # noqa: E402

#: the installed console script, run as a user runs it (a separate process)
QUADRANT = str(Path(sys.executable).with_name("quadrant"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """family name -> directory of a tiny random model of that family (built on first use)."""
    built: dict[str, str] = {}

    def get(family: str) -> str:
        if family not in built:
            built[family] = str(build_tiny(family, tmp_path_factory.mktemp(f"tiny-{family}")))
        return built[family]

    return get


@pytest.fixture(scope="session")
def demo_onnx(tmp_path_factory) -> str:
    """The bundled demo model's float32 ONNX export, made once per session (the quantized exports start from
    it, as `quadrant export onnx --model EXPORT --quantize ...` does)."""
    pytest.importorskip("onnxruntime")
    from quadrant.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("onnx-demo") / "demo"
    export_onnx("demo", None, out, log=lambda line: None)
    return str(out)


def stop_process(process: subprocess.Popen, timeout: float = 30) -> int:
    """Stop a server a test started, by its own PID: SIGTERM, then SIGKILL if it has not exited in `timeout`
    seconds. Its exit code."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def write_manifest(folder: Path, rows: list[dict]) -> Path:
    """The rows as `folder`/manifest.csv, their keys its columns."""
    path = folder / "manifest.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_png(path, seed: int = 0, size=(72, 64)) -> str:
    """A random grayscale study saved as RGB (as chest radiographs often are exported), so in scope for
    Quadrant's study rule (grayscale, at least 64 pixels on the short side: quadrant.scope); different seeds
    give images the tiny models answer differently (tests/test_tiny_models.py checks they do)."""
    rng = np.random.default_rng(seed)
    gray = rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8)
    Image.fromarray(np.stack([gray] * 3, axis=-1)).save(path)
    return str(path)


@pytest.fixture
def study_png(tmp_path) -> str:
    return write_png(tmp_path / "study.png")


ALL_FAMILIES = FAMILIES
#: built by the same `tiny_model` fixture; tested in test_families.py (the generic ones have no family file)
LATER_FAMILIES = NEW_FAMILIES + GENERIC_FAMILIES
#: the language model's attention, whatever the family names it (Idefics3's is `text_model`)
LM_ONLY = r".*(language_model|text_model).*\.(q_proj|k_proj|v_proj|o_proj)"


def make_adapter(model_dir: str, out_dir) -> str:
    """A non-zero LoRA on the language model only (the vision tower has q/k/v_proj too)."""
    from peft import LoraConfig, get_peft_model

    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    torch.manual_seed(3)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=LM_ONLY, init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(out_dir)
    return str(out_dir)

