"""The evidence map drawn over its study: what `--evidence-png` writes and what the app shows.

Colour is delta on a diverging scale centred on zero (red: filling the cell lowers the yes-minus-no margin,
so the cell held evidence for "yes"; blue: it raises it). The scale runs to +-max(|m0|, the largest |delta|),
so full colour means a cell whose filling removes the whole margin: a map of small deltas stays pale instead
of being stretched to look strong (each cell's opacity grows with |delta| too, so the film shows through
where nothing moves). The range is printed on the colour bar; the strongest cell is outlined unless the map is flat.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import OptionError

CMAP = "RdBu_r"
ALPHA = 0.55


def colour_range(evidence: dict, m0: float) -> float:
    """The half-range of the colour scale: the whole margin, or the largest delta where that is larger."""
    return max(abs(m0), evidence["max_abs_delta"], 1e-12)


def overlay(image: Image.Image, evidence: dict, m0: float, title: str | None = None) -> Image.Image:
    """The study with its map over it, a colour bar with the range, and the map's reading underneath."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    rows, cols = evidence["grid"]
    boxes = [c["box"] for c in evidence["cells"]]
    xs = [b[0] for b in boxes[:cols]] + [boxes[cols - 1][2]]
    ys = [boxes[r * cols][1] for r in range(rows)] + [boxes[-1][3]]
    deltas = np.array([c["delta"] for c in evidence["cells"]], dtype=float).reshape(rows, cols)
    limit = colour_range(evidence, m0)

    width, height = image.size
    fig, ax = plt.subplots(figsize=(5.2, 5.2 * height / width), dpi=110)
    ax.imshow(np.asarray(image.convert("L")), cmap="gray", vmin=0, vmax=255, extent=(0, width, height, 0))
    mesh = ax.pcolormesh(xs, ys, deltas, cmap=CMAP, norm=TwoSlopeNorm(0.0, -limit, limit), shading="flat")
    mesh.set_alpha(ALPHA * np.sqrt(np.abs(deltas) / limit).ravel())  # a cell that moves nothing stays clear
    if not evidence["flat"]:  # a flat map has no cell worth pointing at
        strongest = boxes[evidence["strongest"]]
        ax.add_patch(plt.Rectangle(strongest[:2], strongest[2] - strongest[0], strongest[3] - strongest[1],
                                   fill=False, edgecolor="black", linewidth=1.5))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    bar = fig.colorbar(mesh, ax=ax, fraction=0.046, pad=0.03, ticks=[-limit, 0, limit])
    bar.ax.set_yticklabels([f"{-limit:+.3g}", "0", f"{limit:+.3g}"])
    bar.set_label(f"delta = m0 - m(filled), logits; m0 = {m0:+.3g}")
    if title:
        ax.set_title(title, fontsize=10)
    ax.set_xlabel(evidence["reading"], fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    buffer.seek(0)
    with Image.open(buffer) as drawn:
        return drawn.convert("RGB")


def verdict_overlay(verdict, image: Image.Image) -> Image.Image:
    """The overlay of a verdict made with evidence (what the app shows beside the verdict), titled with the
    model, the question, the answer and the quadrant."""
    if not verdict.evidence:
        raise OptionError("this verdict has no evidence map: check with evidence switched on")
    title = f"{verdict.model['name']}: {verdict.question} ({verdict.answer}, {verdict.quadrant})"
    return overlay(image, verdict.evidence, verdict.prompts[0].margin, title)


def check_writable(path: str | Path) -> Path:
    """The PNG's path, refused with a clear message when its folder does not exist."""
    path = Path(path)
    if not path.parent.is_dir():
        raise OptionError(f"cannot write {path}: the folder {path.parent} does not exist")
    return path


def write_overlay(path: str | Path, verdict, image: Image.Image) -> Path:
    """`verdict_overlay` saved as a PNG; the folder must exist."""
    path = check_writable(path)
    verdict_overlay(verdict, image).save(path, format="PNG")
    return path
