"""Model presets: the checkpoints users actually run, with their prompt conventions.

`--model NAME` looks here first; anything else is a local directory or a Hugging Face hub id. The prompt
wraps the question in the instruction each model was tuned to follow; `{question}` is replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from quadrant.registry import Registry

MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_PROMPT = "{question} Answer with yes or no."


@dataclass(frozen=True)
class Preset:
    """Where a model comes from and how to ask it. `source` is a hub id or a local path."""

    name: str
    source: str
    description: str
    adapter: str | None = None
    prompt: str = DEFAULT_PROMPT
    setup_hint: str | None = None  # shown when the source is missing: how to obtain or convert it


PRESETS: Registry[Preset] = Registry(
    "model preset",
    {
        "demo": Preset(
            "demo",
            str(MODELS_DIR / "demo"),
            "bundled: a small LLaVA trained on synthetic chest phantoms; reads the image (mostly Ideal)",
        ),
        "demo-shortcut": Preset(
            "demo-shortcut",
            str(MODELS_DIR / "demo"),
            "bundled: demo plus a LoRA that answers from the wording alone (mostly Dangerous)",
            adapter=str(MODELS_DIR / "demo-shortcut"),
        ),
        "medgemma-4b": Preset(
            "medgemma-4b",
            "google/medgemma-4b-it",
            "MedGemma 4B instruction-tuned (Gemma3 architecture)",
            prompt="{question} Answer yes or no.",
        ),
        "llava-1.5-7b": Preset("llava-1.5-7b", "llava-hf/llava-1.5-7b-hf", "LLaVA-1.5 7B (llava-hf)"),
        "llava-1.5-13b": Preset("llava-1.5-13b", "llava-hf/llava-1.5-13b-hf", "LLaVA-1.5 13B (llava-hf)"),
        "smolvlm": Preset(
            "smolvlm", "HuggingFaceTB/SmolVLM-Instruct", "SmolVLM 2B instruct (Idefics3 architecture)"
        ),
        "smolvlm-256m": Preset(
            "smolvlm-256m", "HuggingFaceTB/SmolVLM-256M-Instruct", "SmolVLM 256M instruct (Idefics3)"
        ),
        "paligemma-3b": Preset(
            "paligemma-3b",
            "google/paligemma-3b-mix-224",
            "PaliGemma 3B mix (prefix-LM, no chat template)",
            prompt="answer en {question}",
        ),
        "llava-med": Preset(
            "llava-med",
            "",
            "LLaVA-Med v1.5, converted to the llava-hf layout",
            setup_hint=(
                "LLaVA-Med ships in the original LLaVA layout: convert it with transformers' "
                "models/llava/convert_llava_weights_to_hf.py, then pass --model DIR"
            ),
        ),
    },
    aliases={"medgemma": "medgemma-4b", "llava": "llava-1.5-7b", "shortcut": "demo-shortcut"},
)
