"""Assemble a Hugging Face Space from this repository: `python app/space/build.py OUT_DIR`.

A Space installs requirements.txt before it sees the repository, so it cannot `pip install .`; instead
the `quadrant` package is laid out in the Space folder the way pyproject.toml's package-dir maps it
(runtime/ -> quadrant/, app/ -> quadrant/app/, ...), and requirements.txt is written from pyproject.toml's
own dependency lists (the runtime's, and the `app` and `dicom-codecs` extras'), so there is one list to keep, not two.
Then push OUT_DIR (README.md "Hugging Face Space" says how).
"""

from __future__ import annotations

import re
import shutil
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SPACE = Path(__file__).resolve().parent
#: installed by the Space's own SDK at the version README.md's front matter names
PROVIDED = ("gradio",)
#: CPU torch: a Space on free hardware has no GPU, and the CUDA wheel is gigabytes
TORCH_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"
#: Debian packages a Space installs from packages.txt: the CJK face runtime/fonts.py falls back to
PACKAGES = ("fonts-wqy-microhei",)
#: binary files a Space's git must keep in LFS/Xet (`hf upload` handles this by itself)
BINARY = ("*.safetensors", "*.png", "*.dcm", "*.jpg")


def build(out: Path) -> Path:
    """Write the Space into `out` (created; refused if it exists and is not empty)."""
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} exists and is not empty: choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    for name in ("README.md", "app.py"):
        shutil.copy(SPACE / name, out / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "space")
    for package, folder in pyproject["tool"]["setuptools"]["package-dir"].items():
        shutil.copytree(REPO / folder, out / Path(*package.split(".")), ignore=ignore, dirs_exist_ok=True)
    (out / "requirements.txt").write_text(requirements(pyproject), encoding="utf-8")
    (out / "packages.txt").write_text("\n".join(PACKAGES) + "\n", encoding="utf-8")
    (out / ".gitattributes").write_text(
        "".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in BINARY), encoding="utf-8")
    return out


def requirements(pyproject: dict) -> str:
    project = pyproject["project"]
    extras = project["optional-dependencies"]
    wanted = [*project["dependencies"], *extras["app"], *extras["dicom-codecs"]]
    kept = [r for r in wanted if re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() not in PROVIDED]
    return "\n".join([TORCH_INDEX, *kept]) + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python app/space/build.py OUT_DIR")
    print(build(Path(sys.argv[1])))
