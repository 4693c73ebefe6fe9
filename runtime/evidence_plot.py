"""The evidence map drawn over its study: what `--evidence-png` writes and what the app shows.

Colour is each cell's support for the answer given, on a diverging scale centred on zero: red where hiding
the cell pulls the model away from its answer (the cell held something the answer rests on), blue where
hiding it makes the model surer (the cell argued against it), whichever of yes or no the answer is. The
legend says so in words, by the answer; the figures stay in the verdict.

The scale runs to +-max(|m0|, the largest |delta|, COLOUR_FLOOR): full colour means a cell whose hiding
removes the whole margin, and a map of small deltas stays pale instead of being stretched to look strong.
The floor is absolute (in logits), so the map of an answer the image barely moves is drawn flat even when
the answer itself is barely held (|m0| small); the reading in words stays scale-free. Each cell's opacity
grows with its share of the scale too, so the film shows through where nothing moves. The strongest cell is
outlined when it holds the answer up (not on a flat map, nor on one whose every moving cell makes the model
surer, which the reading calls "no region of the image supports the answer"); the image's edges are labelled
with the patient's sides where the header gave them, else as the image's own left and right. An adaptive map's
blocks that were filled whole, never split into cells, are drawn in their block's colour inside a dashed
outline, and the caption says so: their colour is the block's effect, not any one cell's.
"""

from __future__ import annotations

import io
import textwrap

import numpy as np
from PIL import Image

from . import fonts, vocabulary
from .errors import OptionError
from .evidence import rests_somewhere, support

CMAP = "RdBu_r"
ALPHA = 0.55
#: the least half-range of the colour scale, in logits: a cell that moves the yes-no balance by one unit (the
#: chance of "yes" from 0.50 to 0.73) is the faintest that reaches full colour. The demo pair's median strongest
#: cell moves it by 0.80 (demo) and 0.045 (demo-shortcut, whose answers the image does not move): README
COLOUR_FLOOR = 1.0
FIGURE_INCHES, FIGURE_DPI = 5.2, 110  # the figure's width: 572 pixels
#: zlib's fastest level: the overlay is drawn on every check with a map, and level 6 (the default) spent a third
#: of the drawing on compression, for a file 14% smaller
PNG_OPTIONS = {"compress_level": 1}
_EDGE_WORDS = {"R": "patient's right", "L": "patient's left"}


def colour_range(evidence: dict, m0: float) -> float:
    """The half-range of the colour scale: the whole margin, the largest delta, or the floor, the largest."""
    return max(abs(m0), evidence["max_abs_delta"], COLOUR_FLOOR)


def edge_labels(evidence: dict) -> tuple[str, str]:
    """The words under the image's left and right edges."""
    sides = evidence.get("sides")
    if not sides:
        return "image left", "image right"
    return _EDGE_WORDS[sides[0]], _EDGE_WORDS[sides[1]]


def overlay_png(image: Image.Image, evidence: dict, m0: float, title: str | None = None,
                answer: str | None = None, first_look: bool = False) -> bytes:
    """The study with its map over it, a colour bar in words, and the map's reading underneath, as a PNG file's
    bytes (what the app shows and the CLI writes, without decoding and encoding it again). `first_look`: a map
    still being drawn (`figure`)."""
    fig = figure(image, evidence, m0, title, answer, first_look)
    import matplotlib.pyplot as plt  # after figure() chose the Agg backend

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", pil_kwargs=PNG_OPTIONS)
    plt.close(fig)
    return buffer.getvalue()


def figure(image: Image.Image, evidence: dict, m0: float, title: str | None = None, answer: str | None = None,
           first_look: bool = False):
    """The overlay as a matplotlib figure (its first collection holds one face colour per cell). `first_look`: a
    map still being drawn, whose strongest cell so far may not be the map's, so none is outlined, and the caption
    says so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    rows, cols = evidence["grid"]
    boxes = [c["box"] for c in evidence["cells"]]
    xs = [b[0] for b in boxes[:cols]] + [boxes[cols - 1][2]]
    ys = [boxes[r * cols][1] for r in range(rows)] + [boxes[-1][3]]
    supports = np.array([support(c["delta"], m0) for c in evidence["cells"]], dtype=float).reshape(rows, cols)
    limit = colour_range(evidence, m0)

    width, height = image.size
    fig, ax = plt.subplots(figsize=(FIGURE_INCHES, FIGURE_INCHES * height / width), dpi=FIGURE_DPI)
    ax.imshow(np.asarray(_shrunk(image.convert("L"))), cmap="gray", vmin=0, vmax=255, extent=(0, width, height, 0))
    mesh = ax.pcolormesh(xs, ys, supports, cmap=CMAP, norm=TwoSlopeNorm(0.0, -limit, limit), shading="flat")
    mesh.set_alpha(ALPHA * np.sqrt(np.abs(supports) / limit).ravel())  # a cell that moves nothing stays clear
    for x0, y0, x1, y1 in _whole_blocks(evidence):
        ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="0.35", linewidth=0.8,
                                   linestyle="--"))
    if rests_somewhere(evidence["cells"], m0) and not first_look:  # else no cell holds it up, none is pointed at
        strongest = boxes[evidence["strongest"]]
        ax.add_patch(plt.Rectangle(strongest[:2], strongest[2] - strongest[0], strongest[3] - strongest[1],
                                   fill=False, edgecolor="black", linewidth=1.5))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_xticks([0, width], labels=edge_labels(evidence), fontsize=8)
    ax.get_xticklabels()[0].set_horizontalalignment("left")
    ax.get_xticklabels()[1].set_horizontalalignment("right")
    ax.tick_params(axis="x", length=0)
    ax.set_yticks([])
    bar = fig.colorbar(mesh, ax=ax, fraction=0.046, pad=0.03, ticks=[-limit, 0, limit])
    supports_it, against = vocabulary.evidence_legend(answer or ("yes" if m0 > 0 else "no"))
    bar.ax.set_yticklabels([against, "no effect", supports_it], fontsize=8)
    bar.set_label("effect of hiding a cell", fontsize=8)
    if title:
        # a long question wraps instead of leaving the figure; in any script the fallbacks have
        ax.set_title(textwrap.fill(title, 48), fontsize=10, fontfamily=fonts.families())
    caption = f"so far: {evidence['reading']}" if first_look else evidence["reading"]
    if _whole_blocks(evidence):
        caption += "; dashed: a block hidden whole, not cell by cell"
    ax.set_xlabel(textwrap.fill(caption, 64), fontsize=9)
    return fig


def _shrunk(image: Image.Image) -> Image.Image:
    """The study at most as wide as the whole figure: a radiograph of 2,000-3,000 pixels a side is drawn about
    450 wide, and matplotlib colour-mapping and resampling all its pixels took most of a map's drawing (0.3 of
    0.44 s). Its coordinates stay the study's (imshow's extent), so the cells fall where they did. Pillow first
    averages whole blocks of pixels (`reducing_gap`), then resamples: 18-20 ms instead of 42-44 on a 2,048 x 2,500
    film, within 2 levels of 255 of the plain resize (a mean of 0.25; on a 1,841 x 1,955 CR film within 5, 99%
    within 1), on a picture drawn for the eye."""
    most = round(FIGURE_INCHES * FIGURE_DPI)
    if image.width <= most:
        return image
    return image.resize((most, max(1, round(image.height * most / image.width))), Image.Resampling.LANCZOS,
                        reducing_gap=1.5)


def _whole_blocks(evidence: dict) -> list[tuple[int, ...]]:
    """The boxes of the blocks an adaptive map filled whole (its cells marked not refined), each once."""
    return list(dict.fromkeys(tuple(c["block"]) for c in evidence["cells"] if c.get("refined", True) is False))


def verdict_overlay_png(verdict, image: Image.Image, first_look: bool = False) -> bytes:
    """The overlay of a verdict made with evidence (what the app shows beside the verdict), titled with the
    model, the question, the answer and the quadrant, as PNG bytes; `first_look` while its map is drawn."""
    if not verdict.evidence:
        raise OptionError("this verdict has no evidence map: check with evidence switched on")
    title = (f"{verdict.model['name']} answered \u201c{verdict.answer}\u201d to \u201c{verdict.question}\u201d: "
             f"{vocabulary.title(verdict)}")
    return overlay_png(image, verdict.evidence, verdict.prompts[0].margin, title, verdict.answer, first_look)


def verdict_overlay(verdict, image: Image.Image) -> Image.Image:
    """`verdict_overlay_png` as a picture."""
    return picture(verdict_overlay_png(verdict, image))


def picture(png: bytes) -> Image.Image:
    """An overlay's PNG bytes as an RGB picture."""
    with Image.open(io.BytesIO(png)) as drawn:
        return drawn.convert("RGB")
