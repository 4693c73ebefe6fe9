"""VipLLaVA: a model type with no family file in `quadrant.families`, so the generic family serves it; unlike
LLaVA-NeXT its geometry is fixed, so the generic ONNX export takes it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .common import TinySpec, llama_text_config, save, vision_tower
from .llava import llava_tokenizer

#: llava-hf/vip-llava-7b-hf: "###Human: <image>\n{text}###Assistant:".
VIPLLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '###Human: ' }}{% else %}{{ '###Assistant: ' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '###Assistant:' }}{% endif %}"
)


def build(spec: TinySpec, out_dir: Path) -> Path:
    """VipLLaVA: CLIP (two layers' features side by side, CLS dropped) -> MLP -> Llama, a fixed image size. No
    family file: the generic family serves it, and its ONNX export is the generic path's, which LLaVA-NeXT's
    tiling refuses and this model's fixed geometry takes."""
    from transformers import (
        CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaProcessor, VipLlavaConfig,
        VipLlavaForConditionalGeneration,
    )

    tok = llava_tokenizer(spec.extra_words)
    tok.chat_template = VIPLLAVA_CHAT_TEMPLATE
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": spec.image_size},
                                           crop_size={"height": spec.image_size, "width": spec.image_size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=spec.patch_size,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=VIPLLAVA_CHAT_TEMPLATE)
    config = VipLlavaConfig(
        vision_config=CLIPVisionConfig(**vision_tower(spec), projection_dim=spec.vision_hidden),
        text_config=LlamaConfig(**llama_text_config(spec, tok)), image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_seq_length=spec.patches_per_side**2, vision_feature_layer=(-2, -1), tie_word_embeddings=False,
    )
    torch.manual_seed(spec.seed)
    model = VipLlavaForConditionalGeneration(config)
    return save(model, processor, out_dir)

