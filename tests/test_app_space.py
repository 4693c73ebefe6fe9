"""The Hugging Face Space folder: what a Space needs, and an app.py that runs the vendored package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gradio

REPO = Path(__file__).resolve().parents[1]


def _front_matter(readme: Path) -> dict[str, str]:
    _, block, _ = readme.read_text(encoding="utf-8").split("---\n", 2)
    return {key.strip(): value.strip().strip('"') for key, _, value in
            (line.partition(":") for line in block.splitlines() if ":" in line)}


def test_space_folder_has_what_a_space_needs_and_runs_the_demo_pair(tmp_path):
    out = tmp_path / "space"
    done = subprocess.run([sys.executable, str(REPO / "app" / "space" / "build.py"), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    meta = _front_matter(out / "README.md")
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == gradio.__version__
    assert meta["python_version"] and (out / meta["app_file"]).is_file()
    requirements = (out / "requirements.txt").read_text(encoding="utf-8").splitlines()
    names = {line.split(">")[0].split("=")[0].split("<")[0] for line in requirements[1:]}
    assert {"torch", "transformers", "peft", "pydicom", "platformdirs"} <= names and "gradio" not in names
    # Debian packages: the face a question in Chinese, Japanese or Korean is drawn in (runtime/fonts.py)
    assert (out / "packages.txt").read_text(encoding="utf-8").split() == ["fonts-wqy-microhei"]
    assert (out / "quadrant" / "models" / "demo" / "model.safetensors").is_file()
    assert (out / "quadrant" / "models" / "demo-shortcut" / "adapter_model.safetensors").is_file()
    assert not (out / "quadrant" / "app" / "space").exists()

    # the Space's own entry point, with the package it carries (not the one installed here)
    probe = subprocess.run([sys.executable, "-c", "import quadrant; print(quadrant.__file__)"], cwd=out,
                           capture_output=True, text=True, timeout=120)
    assert Path(probe.stdout.strip()).is_relative_to(out), probe.stderr
    helped = subprocess.run([sys.executable, "app.py", "--help"], cwd=out, capture_output=True, text=True,
                            timeout=300)
    assert helped.returncode == 0, helped.stderr
    assert "--also-model" in helped.stdout
    source = (out / "app.py").read_text(encoding="utf-8")
    assert '"--also-model", "demo-shortcut"' in source and '"0.0.0.0"' in source
