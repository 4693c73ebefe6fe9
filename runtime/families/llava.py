"""LLaVA (llava-hf checkpoints, LLaVA-1.5, LLaVA-Med once converted to the llava-hf layout)."""

from .base import Family


class LlavaFamily(Family):
    name = "llava"
