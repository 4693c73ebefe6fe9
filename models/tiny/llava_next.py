"""LLaVA-NeXT (v1.6): a model type with no family file in `quadrant.families`, so the generic family serves it;
its anyres tiling is also what the generic ONNX export refuses.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .common import TinySpec, anyres_pinpoints, llama_text_config, save, vision_tower
from .llava import llava_tokenizer

#: llava-hf/llava-v1.6-mistral-7b-hf: "[INST] <image>\n{text} [/INST]".
LLAVA_NEXT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{% endif %}"
    "{% if message['role'] == 'user' %}{{ ' [/INST]' }}{% else %}{{ eos_token }}{% endif %}"
    "{% endfor %}"
)


def build(spec: TinySpec, out_dir: Path) -> Path:
    """LLaVA-NeXT (v1.6): CLIP -> MLP -> Llama with anyres tiling. No family file: the generic family
    serves it, which is what this model is for in the tests."""
    from transformers import (
        CLIPVisionConfig, LlamaConfig, LlavaNextConfig, LlavaNextForConditionalGeneration,
        LlavaNextImageProcessorPil, LlavaNextProcessor,
    )

    tok = llava_tokenizer(spec.extra_words)
    tok.chat_template = LLAVA_NEXT_CHAT_TEMPLATE
    pinpoints = anyres_pinpoints(spec.image_size)
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": spec.image_size}, crop_size={"height": spec.image_size, "width": spec.image_size},
        image_grid_pinpoints=pinpoints,
    )
    processor = LlavaNextProcessor(image_processor=image_processor, tokenizer=tok, patch_size=spec.patch_size,
                                   vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                   chat_template=LLAVA_NEXT_CHAT_TEMPLATE)
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(**vision_tower(spec), projection_dim=spec.vision_hidden),
        text_config=LlamaConfig(**llama_text_config(spec, tok, 4096)),
        image_token_index=tok.convert_tokens_to_ids("<image>"), image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="default", vision_feature_layer=-2, tie_word_embeddings=False,
    )
    torch.manual_seed(spec.seed)
    model = LlavaNextForConditionalGeneration(config)
    return save(model, processor, out_dir)
