"""Taking the image away for the text-only pass (README, "What a check does").

`none` drops the image from the prompt where the family's template allows it; the others keep the prompt
and replace the pixels. Noise is seeded from the study's hash so that the same study always gets the same
noise, and so the same verdict.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .errors import OptionError

ABLATIONS = ("none", "blank", "white", "noise", "swap")


def default_ablation(accepts_imageless: bool) -> str:
    return "none" if accepts_imageless else "blank"


def check_ablation(mode: str, accepts_imageless: bool, family_name: str) -> str:
    if mode not in ABLATIONS:
        raise OptionError(f"unknown ablation {mode!r}; choose one of {', '.join(ABLATIONS)}")
    if mode == "none" and not accepts_imageless:
        raise OptionError(
            f"the {family_name} family cannot be prompted without an image; use --ablation blank, white or noise"
        )
    return mode


def ablated_image(mode: str, image: Image.Image, sha256: str, swap: Image.Image | None = None) -> Image.Image | None:
    """The image the text-only pass sees (None: no image at all), same size as the original."""
    size = (image.height, image.width)
    if mode == "none":
        return None
    if mode == "blank":
        return _gray(np.full(size, 128, dtype=np.uint8))
    if mode == "white":
        return _gray(np.full(size, 255, dtype=np.uint8))
    if mode == "noise":
        rng = np.random.default_rng(int(sha256[:16], 16))
        return _gray(np.clip(rng.normal(128.0, 64.0, size), 0, 255).round().astype(np.uint8))
    if mode == "swap":
        if swap is None:
            raise OptionError("ablation 'swap' needs another study's image (available in quadrant evaluate)")
        return swap.convert("RGB").resize(image.size)
    raise OptionError(f"unknown ablation {mode!r}; choose one of {', '.join(ABLATIONS)}")


def _gray(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(pixels, mode="L").convert("RGB")
