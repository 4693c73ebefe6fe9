"""Idefics3 (SmolVLM). The model needs a pixel mask besides the pixels; image
splitting makes the number of image tokens depend on the image, which is why the prefix is found on token
ids rather than assumed."""

from .base import Family


class Idefics3Family(Family):
    name = "idefics3"
    forward_keys = Family.forward_keys + ("pixel_attention_mask",)
