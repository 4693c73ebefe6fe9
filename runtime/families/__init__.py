"""Model families: how each kind of VLM is prompted and tokenized. A new family is one file plus one line
in FAMILIES below; `family_for_config` picks one from a checkpoint's `config.model_type`."""

from __future__ import annotations

from ..errors import UnsupportedModelError
from ..registry import Registry
from .base import Family

FAMILIES: Registry[type[Family]] = Registry(
    "model family",
    {
        "llava": "quadrant.families.llava:LlavaFamily",
        "gemma3": "quadrant.families.gemma3:Gemma3Family",
        "idefics3": "quadrant.families.idefics3:Idefics3Family",
        "paligemma": "quadrant.families.paligemma:PaliGemmaFamily",
    },
    aliases={"medgemma": "gemma3", "smolvlm": "idefics3", "llava-med": "llava"},
)


def family_for_config(config) -> Family:
    """The family serving a checkpoint, from its model_type; a clear refusal for the ones not supported."""
    model_type = getattr(config, "model_type", None) or "unknown"
    if model_type not in FAMILIES.names():
        raise UnsupportedModelError(
            f"model type {model_type!r} is not supported; supported families: {', '.join(FAMILIES.names())}"
        )
    return FAMILIES.get(model_type)()


__all__ = ["FAMILIES", "Family", "family_for_config"]
