"""Model presets: the checkpoints users actually run, with their prompt conventions.

`--model NAME` looks here first; anything else is a local directory or a Hugging Face hub id. The prompt
wraps the question in the instruction each model was tuned to follow; `{question}` is replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from quadrant.answers import Generation
from quadrant.registry import Registry

MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_PROMPT = "{question} Answer with yes or no."
#: MedVLM-R1's model card: reasoning in <think> tags, then the answer in <answer> tags.
R1_PROMPT = (
    "{question} Answer yes or no. First output the thinking process in <think> </think> tags and then "
    "output the final answer in <answer> </answer> tags."
)


@dataclass(frozen=True)
class Preset:
    """Where a model comes from and how to ask it. `source` is a hub id or a local path."""

    name: str
    source: str
    description: str
    adapter: str | None = None
    prompt: str = DEFAULT_PROMPT
    setup_hint: str | None = None  # shown when the source is missing: how to obtain or convert it
    generation: Generation = Generation()  # default scoring mode, token budget and answer convention


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
        "medgemma-1.5-4b": Preset(
            "medgemma-1.5-4b",
            "google/medgemma-1.5-4b-it",
            "MedGemma 1.5 4B instruction-tuned (Gemma3 architecture)",
            prompt="{question} Answer yes or no.",
        ),
        "lingshu-7b": Preset(
            "lingshu-7b",
            "lingshu-medical-mllm/Lingshu-7B",
            "Lingshu 7B, a medical generalist on Qwen2.5-VL",
            prompt="{question}\nAnswer yes or no.",
        ),
        "huatuogpt-vision-7b": Preset(
            "huatuogpt-vision-7b",
            "FreedomIntelligence/HuatuoGPT-Vision-7B-Qwen2.5VL",
            "HuatuoGPT-Vision 7B on Qwen2.5-VL",
            prompt="{question}\nAnswer yes or no.",
        ),
        "qwen2.5-vl-7b": Preset(
            "qwen2.5-vl-7b",
            "Qwen/Qwen2.5-VL-7B-Instruct",
            "Qwen2.5-VL 7B Instruct (the base of Lingshu and HuatuoGPT-Vision; a general-domain reference)",
        ),
        "medvlm-r1": Preset(
            "medvlm-r1",
            "JZPeterPan/MedVLM-R1",
            "MedVLM-R1, a GRPO-trained reasoning model on Qwen2-VL-2B: generates its reasoning, then the answer",
            prompt=R1_PROMPT,
            generation=Generation(scoring="generate", max_new_tokens=1024, answer_format="answer-tag"),
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
    aliases={"medgemma": "medgemma-4b", "llava": "llava-1.5-7b", "shortcut": "demo-shortcut",
             "medgemma-1.5": "medgemma-1.5-4b", "lingshu": "lingshu-7b", "huatuogpt-vision": "huatuogpt-vision-7b",
             "huatuogpt-vision-7b-qwen2.5vl": "huatuogpt-vision-7b", "qwen2.5-vl": "qwen2.5-vl-7b"},
)
