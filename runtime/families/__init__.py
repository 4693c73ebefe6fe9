"""Model families: how each kind of VLM is prompted and tokenized. A new family is one file plus one line
in FAMILIES below; `family_for_config` picks one from a checkpoint's `config.model_type`, and a model type
with no family file gets the generic family (`generic.py`). A family's one name is its key here, which is
transformers' model type (its class's `name` says the same); the medical models built on one are aliases."""

from __future__ import annotations

from ..registry import Registry
from .base import Family
from .generic import GenericFamily

FAMILIES: Registry[type[Family]] = Registry(
    "model family",
    {
        "llava": "quadrant.families.llava:LlavaFamily",
        "gemma3": "quadrant.families.gemma3:Gemma3Family",
        "idefics3": "quadrant.families.idefics3:Idefics3Family",
        "paligemma": "quadrant.families.paligemma:PaliGemmaFamily",
        "qwen2_vl": "quadrant.families.qwen_vl:Qwen2VLFamily",
        "qwen2_5_vl": "quadrant.families.qwen_vl:Qwen25VLFamily",
        "qwen3_vl": "quadrant.families.qwen_vl:Qwen3VLFamily",
        "internvl": "quadrant.families.internvl:InternVLFamily",
        "llava_onevision": "quadrant.families.llava_onevision:LlavaOnevisionFamily",
    },
    aliases={"medgemma": "gemma3", "smolvlm": "idefics3", "llava-med": "llava", "lingshu": "qwen2_5_vl",
             "huatuogpt-vision": "qwen2_5_vl", "medvlm-r1": "qwen2_vl"},
)


def family_for_config(config) -> Family:
    """The family serving a checkpoint, from its model_type; the generic family for any other type."""
    model_type = getattr(config, "model_type", None) or "unknown"
    if model_type not in FAMILIES.names():
        return GenericFamily(model_type)
    return FAMILIES.get(model_type)()


__all__ = ["FAMILIES", "Family", "GenericFamily", "family_for_config"]
