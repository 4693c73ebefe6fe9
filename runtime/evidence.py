"""Evidence maps: where in the study this model's answer comes from, in the model's own terms (occlusion).

Each cell of a rows x cols grid over the study is filled (with a blurred copy of the study, or mid-gray
(128, 128, 128)), prompt 0 is asked again about that copy, and the fall of its with-image margin,
`delta = m0 - m_filled`, is the cell's value. A positive delta in a "yes" answer means the cell held
something the yes rested on. Boxes are in the study's own pixels: the 8-bit RGB picture the processor
receives (after DICOM windowing), x to the right and y down, [x0, y0, x1, y1) half-open.

It is a map of what changes this model's answer, not a segmentation: a model that answers from a shortcut
(a corner marker, the text alone) has its map there, or nowhere. Every copy is its own image, so no image
prefix is shared between copies; they go to the backend's `margins` in chunks, which it batches (a server
sends each chunk through its model thread's queue, so that a check asked meanwhile waits for one chunk, not
for the whole map).

Two modes. `full` (the default) fills every cell of the grid: grid x grid forwards. `adaptive` fills coarse
blocks of cells first (2 x 2 blocks of the image for an 8 x 8 grid), then splits only the REFINE_WIDTH blocks
that support the answer most into their four quarters, level by level down to single cells: 12 forwards for
an 8 x 8 grid instead of 64. Every level fills with the final grid's source, so a refined cell's delta is
exactly the full map's for that cell; a cell never refined carries the delta of the smallest block filled
around it, marked `"refined": false` with that block's box, and the strongest cell is always a refined one.
It is not the default because a block's effect does not predict its cells' (this model reads a large
filled block as evidence in its own right): on fresh phantoms its strongest cell is the full map's in about
half the studies (README, "Evidence maps").

A map is drawn in stages, one per level of copies (`evidence_stages`), so that a page can show it as it comes.
A full map drawn with a `first_look` fills the adaptive map's coarse blocks first (4 copies for 8 x 8), then
every cell: a picture of where the answer lies after a sixteenth of the copies, for four copies more than the
full map; its last stage is the full map, every cell filled on its own.

Flatness is scale-free like the reliance rule (logits have no fixed scale: multiplying every logit by c > 0
must not change the reading): a map is flat when no cell moves the margin by FLAT_RATIO of |m0|.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageFilter

from .backends import LazyPicture, ScoreRequest, ScoreResult
from .errors import OptionError, StudyError, StudyNotFoundError
from .images import Facts
from .vocabulary import QUADRANTS

FILLS = ("blur", "gray")
MODES = ("adaptive", "full")
GRAY = (128, 128, 128)
#: chosen by measurement on the demo pair (README, "Evidence maps")
DEFAULT_GRID = 8
DEFAULT_FILL = "blur"
DEFAULT_MODE = "full"
#: the adaptive map's first level has at most this many blocks per side
COARSE = 2
#: blocks split at each level of the adaptive map, those that support the answer most: 2 would cost 20 forwards
#: for 8 x 8 (measured, README)
REFINE_WIDTH = 1
MAX_GRID = 32
#: the blur's Gaussian radius, in cells: a cell's content gives way to the brightness of its neighbourhood,
#: so the fill hides what is in the cell without painting in a foreign gray (measured, README)
BLUR_PER_CELL = 1.0
#: a map is flat when no cell moves prompt 0's margin by this share of |m0| (measured, README)
FLAT_RATIO = 0.1
#: a cell counts towards the reading's region when it carries at least this share of the strongest support
SUPPORT_SHARE = 0.5
#: filled copies scored in one call: at most CHUNK of them, and at most CHUNK_BYTES of pixels, since a radiograph
#: from a modality is 15-20 MB a copy. The bound was set when a call's copies were all held at once (a 2,500 px
#: study, the bench model 7.0-9.3 s in chunks of 32 and 5.6-5.9 s within 128 MB); copies are now made as they are
#: read, but what a backend holds for a call's copies still grows with the picture (a processor that keeps a film's
#: resolution, as Qwen2-VL's does, reads a full-size copy into about 120 MB) (README, "Performance")
CHUNK = 32
CHUNK_BYTES = 128 * 2**20

Box = tuple[int, int, int, int]
#: how a chunk of filled copies is scored: a backend's `margins`, or a server's queue in front of it
Margins = Callable[[Sequence[ScoreRequest]], list[ScoreResult]]
#: the patient's side ('R' or 'L') at the image's left edge and at its right edge
Sides = tuple[str, str]


@dataclass(frozen=True)
class EvidenceOptions:
    """How a map is made: grid cells per side, the fill, and whether every cell is filled or coarse to fine."""

    grid: int = DEFAULT_GRID
    fill: str = DEFAULT_FILL
    mode: str = DEFAULT_MODE

    def __post_init__(self):
        if self.fill not in FILLS:
            raise OptionError(f"unknown evidence fill {self.fill!r}; choose one of {', '.join(FILLS)}")
        if self.mode not in MODES:
            raise OptionError(f"unknown evidence mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if isinstance(self.grid, bool) or not isinstance(self.grid, int) or not 1 <= self.grid <= MAX_GRID:
            raise OptionError(f"the evidence grid must be a whole number of cells per side from 1 to {MAX_GRID}, "
                              f"got {self.grid!r}")


# ------------------------------------------------------------------------------------------ the occlusions


def cell_boxes(width: int, height: int, grid: int) -> list[Box]:
    """grid x grid boxes covering the picture exactly, row by row from the top left; edges rounded."""
    if min(width, height) < grid:
        raise StudyError(f"the study is {width} x {height} pixels, too small for a {grid} x {grid} evidence grid")
    xs = [round(i * width / grid) for i in range(grid + 1)]
    ys = [round(j * height / grid) for j in range(grid + 1)]
    return [(xs[i], ys[j], xs[i + 1], ys[j + 1]) for j in range(grid) for i in range(grid)]


def fill_source(image: Image.Image, fill: str, grid: int) -> Image.Image:
    """The picture each box's pixels are taken from: the study blurred, or uniform mid-gray."""
    if fill == "gray":
        return Image.new("RGB", image.size, GRAY)
    blur = ImageFilter.GaussianBlur(BLUR_PER_CELL * min(image.size) / grid)
    if _is_gray(image):  # a radiograph: the blur treats channels alike, so one channel's blur is all three's
        return image.getchannel(0).filter(blur).convert("RGB")
    return image.filter(blur)


def _is_gray(image: Image.Image) -> bool:
    """Whether the picture is RGB with its three channels the same everywhere: exactly, as the one-channel blur
    needs (`images.has_chroma` judges colour with a tolerance, on a sample of pixels)."""
    if image.mode != "RGB":
        return False
    red, green, blue = image.split()
    return ImageChops.difference(red, green).getbbox() is None and ImageChops.difference(green, blue).getbbox() is None


def occluded(pixels: np.ndarray, box: Box, source: np.ndarray) -> np.ndarray:
    """A copy of the study's pixels with `box` taken from `source`'s."""
    x0, y0, x1, y1 = box
    copy = pixels.copy()
    copy[y0:y1, x0:x1] = source[y0:y1, x0:x1]
    return copy


class _Filling:
    """A study's filled copies, each made when a backend reads it (`LazyPicture`), and its fill made with the
    first: a map whose copies' readings are all kept (the next question's) makes neither. Copies are made on the
    backend's reader threads, so the fill is made once, by whichever asks first. `seconds` is the time spent
    making the fill, which is the map's, not any one copy's. `picture` names the study (its pixels' hash, or
    None): each copy is then named by it, its fill and grid (the blur's width is a cell's), and its box
    (`ScoreRequest.copy_key`), so that a backend may keep the copies' readings for the next question's map."""

    def __init__(self, image: Image.Image, options: EvidenceOptions, picture: str | None):
        self.image, self.options, self.picture = image, options, picture
        self.seconds = 0.0
        self._lock = threading.Lock()
        self._made: tuple[np.ndarray, np.ndarray] | None = None

    def request(self, rendered: str, box: Box) -> ScoreRequest:
        """`rendered` asked of the copy with `box` filled."""
        key = None if self.picture is None else f"{self.picture} {self.options.fill} {self.options.grid} {box}"
        return ScoreRequest(rendered, LazyPicture(partial(self._occluded, box)), copy_key=key)

    def nbytes(self) -> int:
        """A copy's bytes, as the processor receives it."""
        return self.image.width * self.image.height * len(self.image.getbands())

    def _occluded(self, box: Box) -> np.ndarray:
        with self._lock:
            if self._made is None:
                started = time.perf_counter()
                source = fill_source(self.image, self.options.fill, self.options.grid)
                self._made = np.asarray(self.image), np.asarray(source)
                self.seconds = time.perf_counter() - started
        pixels, source = self._made
        return occluded(pixels, box, source)


@dataclass(frozen=True)
class Block:
    """A square of `size` x `size` grid cells (cut at the grid's edge) whose top-left cell is (row, col)."""

    row: int
    col: int
    size: int

    def cells(self, grid: int) -> list[int]:
        """The grid cells it covers, as indices into `cell_boxes`."""
        return [r * grid + c for r in range(self.row, min(self.row + self.size, grid))
                for c in range(self.col, min(self.col + self.size, grid))]

    def box(self, boxes: Sequence[Box], grid: int) -> Box:
        """Its pixels: from its first cell's top-left corner to its last cell's bottom-right one."""
        cells = self.cells(grid)
        first, last = boxes[cells[0]], boxes[cells[-1]]
        return (first[0], first[1], last[2], last[3])

    def quarters(self, grid: int) -> list[Block]:
        """The blocks half its size that cover it (fewer at the grid's edge)."""
        half = self.size // 2
        return [Block(r, c, half) for r in (self.row, self.row + half) for c in (self.col, self.col + half)
                if r < min(self.row + self.size, grid) and c < min(self.col + self.size, grid)]


def first_level(options: EvidenceOptions, first_look: bool = False) -> list[Block]:
    """The blocks filled first: every cell in full mode; in adaptive mode, or for a full map's first look,
    blocks of the largest power of two cells that leaves at most COARSE blocks per side."""
    size = 1
    if options.mode == "adaptive" or first_look:
        while -(-options.grid // size) > COARSE:
            size *= 2
    return [Block(r, c, size) for r in range(0, options.grid, size) for c in range(0, options.grid, size)]


@dataclass(frozen=True)
class Stage:
    """Every study's map as far as it is drawn (a cell not yet filled on its own carries the delta of the smallest
    block filled around it, marked as an adaptive map's are); `finished` on the last stage, the map itself.
    `seconds`: how long this stage's copies took to fill and score, without the map's one-off costs (its fill,
    the pictures as arrays), so that a page can tell from it how long the copies still to come will take."""

    maps: list[dict]
    finished: bool
    seconds: float = 0.0


def evidence_maps(margins: Margins, studies: Sequence[tuple[str, Image.Image, float]], options: EvidenceOptions,
                  sides: Sequence[Sides | None] | None = None, *, chunk: int = CHUNK,
                  pictures: Sequence[str | None] | None = None) -> list[dict]:
    """One map per (rendered prompt 0, study image, its margin m0), as `evidence_stages` draws it."""
    *_, last = evidence_stages(margins, studies, options, sides, chunk=chunk, pictures=pictures)
    return last.maps


def evidence_stages(margins: Margins, studies: Sequence[tuple[str, Image.Image, float]], options: EvidenceOptions,
                    sides: Sequence[Sides | None] | None = None, *, chunk: int = CHUNK,
                    first_look: bool = False, pictures: Sequence[str | None] | None = None) -> Iterator[Stage]:
    """The maps of (rendered prompt 0, study image, its margin m0), a stage after each level of copies; every copy
    scored through `margins`, each level's copies of every study together, `chunk` copies a call. `sides`, one per
    study (`study_sides`), lets a reading name the patient's zones where a header says which side is which.
    `first_look`: a full map's coarse blocks first, then its cells (the module's docstring). `pictures`, one per
    study, names its picture (its pixels' hash, or None): each filled copy is then named by it, its fill and its
    box (`ScoreRequest.copy_key`), so that a backend may keep the copies' readings for the next question's map."""
    if not studies:  # no map to draw: finished at once
        yield Stage([], finished=True)
        return
    grid = options.grid
    boxes = [cell_boxes(image.width, image.height, grid) for _, image, _ in studies]
    pictures = list(pictures) if pictures else [None] * len(studies)
    fillings = [_Filling(image, options, picture) for (_, image, _), picture in zip(studies, pictures, strict=True)]
    filled: list[dict[int, tuple[float, Block]]] = [{} for _ in studies]  # cell -> (delta, smallest block)
    forwards = [0] * len(studies)
    m0s = [m0 for *_, m0 in studies]
    level = [(index, block) for index in range(len(studies)) for block in first_level(options, first_look)]
    while level:
        started, filling = time.perf_counter(), sum(f.seconds for f in fillings)
        copies = [(studies[i][0], fillings[i], block.box(boxes[i], grid)) for i, block in level]
        deltas = [m0s[i] - m for (i, _), m in zip(level, _scored(margins, copies, chunk), strict=True)]
        seconds = time.perf_counter() - started - (sum(f.seconds for f in fillings) - filling)
        for (index, block), delta in zip(level, deltas, strict=True):
            forwards[index] += 1
            filled[index].update((cell, (delta, block)) for cell in block.cells(grid))
        level = _next_level(level, deltas, m0s, filled, options)
        maps = []
        for index, m0 in enumerate(m0s):
            cells = [_cell(boxes[index][cell], *filled[index][cell], boxes[index], grid) for cell in range(grid * grid)]
            maps.append({**describe(cells, m0, options, sides[index] if sides else None), "forwards": forwards[index]})
        yield Stage(maps, finished=not level, seconds=seconds)


def _next_level(level: list[tuple[int, Block]], deltas: list[float], m0s: list[float],
                filled: list[dict[int, tuple[float, Block]]], options: EvidenceOptions) -> list[tuple[int, Block]]:
    """What to fill after `level`: an adaptive map's best blocks' quarters; for a full map, every cell not yet
    filled on its own (after a first look's coarse blocks, all of them)."""
    grid = options.grid
    if options.mode == "adaptive":
        return [(index, quarter) for index, block in _to_refine(level, deltas, m0s, grid)
                for quarter in block.quarters(grid)]
    return [(index, Block(cell // grid, cell % grid, 1)) for index, cells in enumerate(filled)
            for cell in range(grid * grid) if len(cells[cell][1].cells(grid)) > 1]



def _scored(margins: Margins, copies: list[tuple[str, _Filling, Box]], chunk: int) -> list[float]:
    """prompt 0's margin on each filled copy, at most `chunk` copies and CHUNK_BYTES of them in one call."""
    scored: list[float] = []
    for run in _runs([filling.nbytes() for _, filling, _ in copies], chunk, CHUNK_BYTES):
        requests = [filling.request(rendered, box) for rendered, filling, box in copies[run.start : run.stop]]
        scored += [r.margin for r in margins(requests)]
    return scored


def warm_copies(read: Callable[[Sequence[ScoreRequest]], None], rendered: str, image: Image.Image,
                options: EvidenceOptions, picture: str, *, first_look: bool = False,
                still_wanted: Callable[[], bool] | None = None, chunk: int = CHUNK) -> int:
    """Have a backend read (`Scorer.warm`) the copies a map of this study fills whatever its question, under the
    names its map gives them, before any question is asked: a full map's cells (and its first look's blocks), an
    adaptive map's first level. `rendered` is any prompt with the image; `still_wanted` is asked before each chunk,
    and the reading stops when it says no. Returns the copies read."""
    boxes = cell_boxes(image.width, image.height, options.grid)
    blocks = first_level(options, first_look)
    if options.mode == "full" and blocks[0].size > 1:
        blocks += first_level(options)
    filled = [block.box(boxes, options.grid) for block in blocks]
    filling = _Filling(image, options, picture)
    done = 0
    for run in _runs([filling.nbytes()] * len(filled), chunk, CHUNK_BYTES):
        if still_wanted is not None and not still_wanted():
            break
        read([filling.request(rendered, box) for box in filled[run.start : run.stop]])
        done += len(run)
    return done


def _runs(sizes: Sequence[int], most: int, budget: int) -> list[range]:
    """Consecutive runs of the items, each of at most `most` items and `budget` bytes (an item over the budget
    alone)."""
    runs, start, held = [], 0, 0
    for index, size in enumerate(sizes):
        if index > start and (index - start == most or held + size > budget):
            runs.append(range(start, index))
            start, held = index, 0
        held += size
    if start < len(sizes):
        runs.append(range(start, len(sizes)))
    return runs


def _to_refine(level: list[tuple[int, Block]], deltas: list[float], m0s: list[float],
               grid: int) -> list[tuple[int, Block]]:
    """Per study, the REFINE_WIDTH blocks of this level (larger than a cell) that support the answer most."""
    ranked = sorted(((support(d, m0s[i]), i, b) for (i, b), d in zip(level, deltas, strict=True) if len(b.cells(grid)) > 1),
                    key=lambda ranked: ranked[0], reverse=True)
    chosen: dict[int, list[Block]] = {}
    for _, index, block in ranked:
        if len(chosen.setdefault(index, [])) < REFINE_WIDTH:
            chosen[index].append(block)
    return [(index, block) for index, blocks in chosen.items() for block in blocks]


def _cell(box: Box, delta: float, block: Block, boxes: Sequence[Box], grid: int) -> dict:
    """A cell of the map: its own delta when it was filled alone, else its smallest filled block's, marked."""
    if len(block.cells(grid)) == 1:
        return {"box": list(box), "delta": delta}
    return {"box": list(box), "delta": delta, "refined": False, "block": list(block.box(boxes, grid))}


def forwards_per_map(options: EvidenceOptions, first_look: bool = False) -> int:
    """With-image prompt forwards one map costs at most (each occluded copy is one image and one prompt): every
    cell in full mode, and a first look's coarse blocks before them; in adaptive mode the first level, then four
    per refined block per level."""
    first = first_level(options, first_look)
    if options.mode == "full":
        return options.grid ** 2 + (len(first) if first[0].size > 1 else 0)
    levels = max(first[0].size.bit_length() - 1, 0)
    return len(first) + 4 * REFINE_WIDTH * levels


# ------------------------------------------------------------------------------------------ reading a map


def describe(cells: list[dict], m0: float, options: EvidenceOptions, sides: Sides | None = None) -> dict:
    """The verdict's `evidence` object: the contract's keys (grid, fill, cells), then the strongest cell, flatness and a plain reading.
    `sides` (from `patient_sides`) names the patient's side at the image's left and right edges; without it
    the reading speaks of the image's own left and right."""
    strongest = strongest_cell(cells, m0)
    return {
        "method": "occlusion",
        "fill": options.fill,
        "grid": [options.grid, options.grid],
        "mode": options.mode,
        "prompt": 0,
        "cells": cells,
        "strongest": strongest,
        "max_abs_delta": max(abs(c["delta"]) for c in cells),
        "flat": is_flat(cells, m0),
        "reading": reading(cells, m0, sides),
        "sides": None if sides is None else list(sides),
    }


def support(delta: float, m0: float) -> float:
    """A cell's delta oriented to the answer: positive when filling the cell moves the margin towards the
    other answer (answer 'yes' iff m0 > 0, as everywhere in Quadrant)."""
    return delta if m0 > 0 else -delta


def strongest_cell(cells: list[dict], m0: float) -> int:
    """The index of the cell the answer rests on most: the largest support among cells filled on their own
    (a block's delta is not any one of its cells')."""
    alone = [i for i, c in enumerate(cells) if c.get("refined", True)] or range(len(cells))
    return max(alone, key=lambda i: support(cells[i]["delta"], m0))


def is_flat(cells: list[dict], m0: float) -> bool:
    """No cell moves the margin by FLAT_RATIO of |m0| (scale-free: every delta and m0 scale together)."""
    return max(abs(c["delta"]) for c in cells) < FLAT_RATIO * abs(m0) or all(c["delta"] == 0 for c in cells)


def rests_somewhere(cells: list[dict], m0: float) -> bool:
    """Whether some cell holds the answer up: hiding it moves the margin towards the other answer by
    FLAT_RATIO of |m0|. A map can move the answer (not flat) and still have no such cell, when every cell that
    moves it makes the model surer; its strongest cell is then only the least contrary one."""
    return max(support(c["delta"], m0) for c in cells) >= FLAT_RATIO * abs(m0) and not is_flat(cells, m0)


def reading(cells: list[dict], m0: float, sides: Sides | None = None) -> str:
    """One plain line: where the answer rests, or that no region moves it; positions in the patient's terms
    when `sides` says which side of the patient is where, else in the image's as displayed."""
    if is_flat(cells, m0):
        return "no region of the image moves the answer"
    size = (max(c["box"][2] for c in cells), max(c["box"][3] for c in cells))
    supports = [support(c["delta"], m0) for c in cells]
    best = max(supports)
    if not rests_somewhere(cells, m0):
        weakest = min(range(len(cells)), key=lambda i: supports[i])
        where = place([zone(cells[weakest]["box"], size, sides)], sides)
        return f"no region of the image supports the answer; hiding the {where} makes it surer"
    chosen = [(c, s) for c, s in zip(cells, supports, strict=True) if s >= SUPPORT_SHARE * best]
    zones: dict[str, float] = {}
    for cell, weight in chosen:
        name = zone(cell["box"], size, sides)
        zones[name] = zones.get(name, 0.0) + weight
    ranked = sorted(zones, key=zones.get, reverse=True)
    if len(chosen) * 4 > len(cells):
        return f"the answer rests on much of the image, most on the {place(ranked[:1], sides)}"
    two = len(ranked) > 1 and zones[ranked[1]] >= SUPPORT_SHARE * zones[ranked[0]]
    return f"the answer rests mostly on the {place(ranked[:2] if two else ranked[:1], sides)}"


_ROWS = ("upper", "middle", "lower")
_COLUMNS = ("left", "centre", "right")
_SIDE_WORDS = {"R": "right", "L": "left"}


def patient_sides(view_position: str | None = None, orientation: Sequence[str] | None = None) -> Sides | None:
    """Which side of the patient lies at the image's left and right edges, from the DICOM header: the row
    direction of PatientOrientation (0020,0020) when it names one ('L': going right across the image goes to
    the patient's left), else the display convention of a frontal film (ViewPosition PA or AP: the patient's
    right on the image's left). None when the header says neither, or the image is shown upside down: a
    lateral, a PNG or JPEG, or a study with no header; positions are then the image's own."""
    if orientation:
        row = str(orientation[0]).strip().upper()[:1]
        column = str(orientation[1]).strip().upper()[:1] if len(orientation) > 1 else ""
        if row not in _SIDE_WORDS or column not in ("F", ""):
            return None
        return ("R", "L") if row == "L" else ("L", "R")
    if str(view_position or "").strip().upper() in ("PA", "AP"):
        return ("R", "L")
    return None


def study_sides(facts: Facts | None) -> Sides | None:
    """`patient_sides` from a study's header facts; None for a picture with no header (a PNG, a JPEG)."""
    if facts is None:
        return None
    return patient_sides(facts.view, facts.orientation.split("\\") if facts.orientation else None)


def zone(box: Sequence[int], size: tuple[int, int], sides: Sides | None = None) -> str:
    """Where a box's centre lies in a 3 x 3 split of the picture: 'upper left' of the image as displayed, or
    with `sides` the patient's zones ('right upper zone', 'left mid zone', 'centre')."""
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    row = min(2, int(3 * y / size[1]))
    column = min(2, int(3 * x / size[0]))
    if column == 1:
        return "centre" if row == 1 else f"{_ROWS[row]} centre"
    if sides is not None:
        side = _SIDE_WORDS[sides[0] if column == 0 else sides[1]]
        return f"{side} {('upper', 'mid', 'lower')[row]} zone"
    return f"{_ROWS[row]} {_COLUMNS[column]}"


def place(zones: Sequence[str], sides: Sides | None) -> str:
    """Zones as a reading names them, saying whose left and right they are."""
    joined = " and ".join(zones)
    if sides is not None:
        return f"{joined} (the patient's right and left, from the DICOM header)"
    return f"{joined} of the image (left and right as displayed, not necessarily the patient's)"


# ------------------------------------------------------------------------------------------ the pointing game


def load_mask(path: str | Path, width: int, height: int) -> np.ndarray:
    """A binary image of the finding (any non-zero pixel is finding) as a bool [height, width] array; a mask
    of another size is scaled to the study's (nearest neighbour), as grounding datasets sometimes ship them."""
    path = Path(path)
    if not path.is_file():
        raise StudyNotFoundError(f"mask {path.name} does not exist or is not a file")
    try:
        with Image.open(path) as mask:
            mask = mask.convert("L")
            if mask.size != (width, height):
                mask = mask.resize((width, height), Image.Resampling.NEAREST)
            return np.asarray(mask) > 0
    except (OSError, ValueError) as exc:
        raise StudyError(f"mask {path.name} is not a readable image") from exc


def pointing(evidence: dict, mask: np.ndarray) -> dict | None:
    """Whether the strongest cell touches the mask, and the chance of that for a cell drawn at random (the
    share of cells touching it); None for an empty mask (nothing to point at)."""
    touches = [bool(mask[y0:y1, x0:x1].any()) for x0, y0, x1, y1 in (c["box"] for c in evidence["cells"])]
    if not any(touches):
        return None
    return {"hit": touches[evidence["strongest"]], "chance": sum(touches) / len(touches)}


def summarize_evidence(verdicts: Sequence[dict]) -> dict | None:
    """summary.json's `evidence` block: how flat the maps are, and the pointing game where masks were given,
    overall and per quadrant. None when no sample carries a map."""
    maps = [v for v in verdicts if v.get("evidence")]
    if not maps:
        return None
    first = maps[0]["evidence"]
    result = {
        "n": len(maps),
        "fill": first["fill"],
        "grid": first["grid"],
        "flat_share": sum(v["evidence"]["flat"] for v in maps) / len(maps),
        "median_max_abs_delta": statistics.median(v["evidence"]["max_abs_delta"] for v in maps),
        "pointing": _pointing_summary([v for v in maps if v["evidence"].get("pointing")]),
    }
    result["pointing"]["per_quadrant"] = {
        q: _pointing_summary([v for v in maps if v["evidence"].get("pointing") and v["quadrant"] == q])
        for q in QUADRANTS
    }
    return result


def _pointing_summary(samples: Sequence[dict]) -> dict:
    n = len(samples)
    hits = sum(v["evidence"]["pointing"]["hit"] for v in samples)
    return {
        "n": n,
        "accuracy": hits / n if n else None,
        "chance": statistics.fmean(v["evidence"]["pointing"]["chance"] for v in samples) if n else None,
    }
