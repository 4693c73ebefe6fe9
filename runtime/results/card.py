"""The picture a secondary capture carries: the study as the model saw it, a verdict card per question, and the
evidence map where one was drawn, with every word burned in, in plain language.

A viewer that shows only images (many PACS viewers, a ward's web viewer) shows this picture and nothing
else, so it must stand alone: what was asked, what the model answered, what the verdict means, what decided
it, what to do, which model, and that it is not for diagnostic use. No patient identifier is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from PIL import Image, ImageDraw

from .. import __version__, vocabulary
from ..fonts import Face
from ..verdict import Verdict

WIDTH = 1280
_MARGIN = 24
_STUDY_SIDE = 560  # the study's panel: its longer side at most this
_CARD_X = _MARGIN + _STUDY_SIDE + _MARGIN
_CARD_WIDTH = WIDTH - _CARD_X - _MARGIN
#: the vocabulary's tones as colours
_COLOURS = {"green": (27, 110, 52), "amber": (166, 96, 0), "red": (176, 0, 32), "grey": (90, 90, 90)}
_INK, _MUTED, _PAPER = (20, 20, 20), (85, 85, 85), (255, 255, 255)
_PARAGRAPH_GAP = 6


def render(image: Image.Image, verdicts: Sequence[Verdict], overlays: Sequence[bytes] | None = None) -> Image.Image:
    """The whole picture (RGB, WIDTH pixels wide) for one study's verdicts; `overlays`: their evidence maps as
    already drawn (`build_results`)."""
    header = _header()
    study = _study_panel(image)
    cards = [_card(verdict, index, len(verdicts)) for index, verdict in enumerate(verdicts, 1)]
    maps = _evidence_maps(image, verdicts, overlays)
    footer = _footer(verdicts[0])
    cards_height = sum(c.height for c in cards) + _MARGIN * (len(cards) - 1)
    body = max(study.height, cards_height)
    height = header.height + _MARGIN + body + _MARGIN + (maps.height + _MARGIN if maps else 0) + footer.height
    canvas = Image.new("RGB", (WIDTH, height), _PAPER)
    canvas.paste(header, (0, 0))
    top = header.height + _MARGIN
    canvas.paste(study, (_MARGIN + (_STUDY_SIDE - study.width) // 2, top))
    y = top
    for card in cards:
        canvas.paste(card, (_CARD_X, y))
        y += card.height + _MARGIN
    y = top + body + _MARGIN
    if maps:
        canvas.paste(maps, ((WIDTH - maps.width) // 2, y))
        y += maps.height + _MARGIN
    canvas.paste(footer, (0, y))
    return canvas


@lru_cache(maxsize=8)
def _font(size: int, bold: bool = False) -> Face:
    """DejaVu Sans, which matplotlib ships (the same face on every machine), with the fallbacks for the scripts it
    lacks (`quadrant.fonts`)."""
    return Face(size, bold)


def _wrap(text: str, font: Face, width: int) -> list[str]:
    """`text` broken into lines no wider than `width` pixels: between words, and within a word wider than a line
    (Chinese and Japanese put no spaces between words)."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if line and font.length(candidate) > width and font.length(word) <= width:
                lines.append(line)
                line = word
            else:  # it fits, or no line holds it: it begins here and is cut below
                line = candidate
            while len(line) > 1 and font.length(line) > width:
                cut = _fitting(line, font, width)
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line)
    return lines


def _fitting(text: str, font: Face, width: int) -> int:
    """How many of `text`'s first characters fit in `width` pixels (at least one)."""
    count = len(text) - 1
    while count > 1 and font.length(text[:count]) > width:
        count -= 1
    return count


def _text_block(lines: Sequence[tuple[str, Face, tuple]], width: int,
                background=_PAPER, padding: int = 0) -> Image.Image:
    """Paragraphs (text, font, colour), wrapped to `width` and stacked, on `background`."""
    placed = []  # (line, font, colour, top)
    y = padding
    for number, (text, font, colour) in enumerate(lines):
        y += _PARAGRAPH_GAP if number else 0
        for line in _wrap(text, font, width - 2 * padding):
            placed.append((line, font, colour, y))
            y += int(font.size * 1.3)
    block = Image.new("RGB", (width, y + padding), background)
    draw = ImageDraw.Draw(block)
    for line, font, colour, top in placed:
        font.draw(draw, (padding, top), line, colour)
    return block


def _header() -> Image.Image:
    return _text_block([("Quadrant: can this model's answer be trusted on this study?", _font(28, True), _PAPER),
                        (vocabulary.NOT_FOR_DIAGNOSIS, _font(20), _PAPER)], WIDTH, background=(35, 35, 35), padding=_MARGIN)


def _study_panel(image: Image.Image) -> Image.Image:
    """The study as the model saw it (DICOM after its window and inversion), its longer side _STUDY_SIDE."""
    scale = _STUDY_SIDE / max(image.size)
    shown = image.convert("RGB").resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                        Image.Resampling.LANCZOS)
    caption = _text_block([("The study as the model saw it", _font(18), _MUTED)], shown.width)
    panel = Image.new("RGB", (shown.width, shown.height + caption.height + 8), _PAPER)
    panel.paste(shown, (0, 0))
    panel.paste(caption, (0, shown.height + 8))
    return panel


def _card(verdict: Verdict, index: int, count: int) -> Image.Image:
    colour = _COLOURS[vocabulary.tone(verdict.quadrant)]
    label = f"Question {index} of {count}: " if count > 1 else "Question: "
    band = _text_block([(vocabulary.title(verdict), _font(26, True), _PAPER)], _CARD_WIDTH, background=colour,
                       padding=14)
    body = _text_block([
        (label + verdict.question, _font(21, True), _INK),
        (f"The model answered: {verdict.answer.upper()}", _font(21, True), _INK),
        (vocabulary.meaning(verdict), _font(19), _INK),
        (vocabulary.decided_by(verdict), _font(19), _INK),
        (vocabulary.advice(verdict), _font(19, True), colour),
    ], _CARD_WIDTH, padding=14)
    card = Image.new("RGB", (_CARD_WIDTH, band.height + body.height), _PAPER)
    card.paste(band, (0, 0))
    card.paste(body, (0, band.height))
    ImageDraw.Draw(card).rectangle((0, 0, card.width - 1, card.height - 1), outline=colour, width=3)
    return card


def _evidence_maps(image: Image.Image, verdicts: Sequence[Verdict],
                   overlays: Sequence[bytes] | None = None) -> Image.Image | None:
    """The occlusion maps drawn with the verdicts, side by side (each scaled to fit), or None."""
    from ..evidence_plot import picture, verdict_overlay_png

    if overlays is None:
        overlays = [verdict_overlay_png(v, image) for v in verdicts if v.evidence]
    drawn = [picture(png) for png in overlays]
    if not drawn:
        return None
    width = (WIDTH - _MARGIN * (len(drawn) + 1)) // len(drawn)
    scaled = [m.resize((width, round(m.height * width / m.width)), Image.Resampling.LANCZOS) if m.width > width
              else m for m in drawn]
    caption = _text_block([("Where the answer comes from (occlusion map): red cells hold the answer up when "
                            "hidden. A map of what moves this model's answer, not a segmentation.", _font(18),
                            _MUTED)], WIDTH - 2 * _MARGIN)
    row = Image.new("RGB", (WIDTH - 2 * _MARGIN, max(m.height for m in scaled) + caption.height + 8), _PAPER)
    row.paste(caption, (0, 0))
    x = (row.width - sum(m.width for m in scaled) - _MARGIN * (len(scaled) - 1)) // 2  # centred
    for m in scaled:
        row.paste(m, (x, caption.height + 8))
        x += m.width + _MARGIN
    return row


def _footer(verdict: Verdict) -> Image.Image:
    model = verdict.model
    return _text_block([(f"Model {model['name']} ({model['fingerprint'][:23]}...), checked by Quadrant {__version__}. "
                         "Each question was asked in several equivalent phrasings with the image, and again with "
                         "the image taken away or replaced by a blank one.", _font(16), _MUTED)],
                       WIDTH, background=(240, 240, 240), padding=_MARGIN)
