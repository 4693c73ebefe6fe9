"""LLaVA-OneVision (llava-hf): SigLIP, an MLP and a Qwen2 decoder, with "anyres" tiling (a base view plus
tiles on the best grid, an image-newline token per row), so the number of <image> tokens follows the
image. Pixel values stay one row per prompt, with `image_sizes` saying how much of each is real."""

from __future__ import annotations

from .base import Family


class LlavaOnevisionFamily(Family):
    name = "llava-onevision"
    forward_keys = Family.forward_keys + ("image_sizes",)
