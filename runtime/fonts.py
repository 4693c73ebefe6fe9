"""The faces words are drawn in, on the secondary capture's card (Pillow) and over the evidence map (matplotlib).

DejaVu Sans first, which matplotlib ships, so that the same face draws the same words on every machine. It has
no Chinese, Japanese or Korean, and a question may be asked in them (with the user's own phrasings): each
character DejaVu lacks is drawn with the first FALLBACKS face the machine has that holds it (the Docker image
and CI install WenQuanYi Micro Hei, `fonts-wqy-microhei`: 1.6 MB, Chinese, Japanese and Korean). Without one such
a question is drawn as boxes, and the verdict's own text (page, JSON, structured report) is unaffected.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import ImageDraw, ImageFont

PRIMARY = "DejaVu Sans"
#: faces holding the CJK scripts, by family name, the most complete first
FALLBACKS = ("Noto Sans CJK JP", "Noto Sans CJK SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei",
             "Droid Sans Fallback")


@lru_cache(maxsize=1)
def fallbacks() -> dict[str, Path]:
    """The installed FALLBACKS faces' files by family, in FALLBACKS order, each also made known to matplotlib.
    Read from the font folders, not matplotlib's font cache, which does not see a face installed after it was
    built."""
    from matplotlib import font_manager, ft2font

    found: dict[str, Path] = {}
    for file in font_manager.findSystemFonts():
        try:
            family = ft2font.FT2Font(file).family_name
        except (OSError, RuntimeError):  # a file FreeType cannot open: not ours to judge
            continue
        if family in FALLBACKS:
            found.setdefault(family, Path(file))
    for file in found.values():
        font_manager.fontManager.addfont(str(file))
    return {family: found[family] for family in FALLBACKS if family in found}


def families() -> list[str]:
    """matplotlib's `fontfamily` for text a user wrote: DejaVu Sans, then the installed fallbacks."""
    return [PRIMARY, *fallbacks()]


class Face:
    """One size of DejaVu Sans (bold or regular) with the installed fallbacks, for Pillow, which has no fallback
    of its own: each run of characters is drawn with the first face that has them, on a shared baseline."""

    def __init__(self, size: int, bold: bool = False):
        import matplotlib

        name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
        primary = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name
        self.size = size
        self._files = (primary, *fallbacks().values())
        self._fonts = [ImageFont.truetype(str(file), size) for file in self._files]

    def length(self, text: str) -> float:
        """The width of `text` in pixels, as `draw` lays it out."""
        return sum(font.getlength(run) for run, font in self._runs(text))

    def draw(self, draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, fill) -> None:
        """`text` with its top-left at `xy` (the primary face's ascent above the baseline, as Pillow's own)."""
        x, top = xy
        baseline = top + self._fonts[0].getmetrics()[0]
        for run, font in self._runs(text):
            draw.text((x, baseline), run, font=font, fill=fill, anchor="ls")
            x += font.getlength(run)

    def _runs(self, text: str) -> list[tuple[str, ImageFont.FreeTypeFont]]:
        """`text` cut where the face that has its characters changes (the primary face for one no face has)."""
        runs: list[tuple[str, ImageFont.FreeTypeFont]] = []
        for character in text:
            # a fallback's character map is read only when a character needs it (a CJK face's takes 0.1 s)
            font = next((f for f, file in zip(self._fonts, self._files, strict=True)
                         if ord(character) in _characters(file)), self._fonts[0])
            if runs and runs[-1][1] is font:
                runs[-1] = (runs[-1][0] + character, font)
            else:
                runs.append((character, font))
        return runs


@lru_cache(maxsize=8)
def _characters(file: Path) -> frozenset[int]:
    """The code points a font file has glyphs for (its best Unicode character map)."""
    from fontTools.ttLib import TTFont

    with TTFont(str(file), lazy=True, fontNumber=0) as font:
        return frozenset(font.getBestCmap())
