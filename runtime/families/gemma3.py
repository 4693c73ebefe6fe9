"""Gemma3 (MedGemma). Its attention over image tokens is bidirectional, chosen by token_type_ids: the
prefix call must carry them or the image block silently turns causal (measured 0.06 off)."""

from .base import Family


class Gemma3Family(Family):
    name = "gemma3"
    prefix_keys = ("token_type_ids",)
    forward_keys = Family.forward_keys + ("token_type_ids",)
