"""LLaVA-1.5 (llava-hf's layout): the family the shipped demo model is built from, and the bench's headline model.

Its tokenizer is the Llama-flavoured one the other LLaVA variants (LLaVA-NeXT, VipLLaVA) share, so it lives
here and those modules import it from here; this module imports nothing but the shared one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from transformers import PreTrainedTokenizerFast

from .common import TinySpec, llama_text_config, make_tokenizer, save, vision_tower

#: llava-hf/llava-1.5-7b-hf: "USER: <image>\n{text} ASSISTANT:"; BOS comes from the tokenizer, and the
#: answer follows after a space (" Yes"). Images are rendered before the text whatever the order.
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] + ' ' }}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}{% endfor %}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' ' }}{% endgeneration %}{% endfor %}"
    "{% endif %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def llava_tokenizer(extra_words: Sequence[str] = ()) -> PreTrainedTokenizerFast:
    """The LLaVA (Llama-flavoured) tokenizer: <unk>=0, <s>=1, </s>=2, BOS added, <image> and <pad> after
    the BPE vocabulary. Byte-level BPE over a chest X-ray Q/A corpus; the yes/no variants are one token each.
    """
    return make_tokenizer(
        bos="<s>", eos="</s>", pad="<pad>", unk="<unk>",
        base_specials=("<unk>", "<s>", "</s>"),
        added_specials=("<image>", "<pad>"),
        named={"image_token": "<image>"},
        add_bos_token=True,
        extra_words=extra_words,
    )


def build(spec: TinySpec, out_dir: Path, max_positions: int = 2048) -> Path:
    """LLaVA-1.5: CLIP vision tower (penultimate layer, CLS dropped) -> 2-layer GELU MLP -> Llama.

    Image tokens per image = (image_size / patch_size)^2: the processor counts the CLS token
    (``num_additional_image_tokens=1``) and ``vision_feature_select_strategy="default"`` drops it again.
    """
    from transformers import (
        CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig,
        LlavaForConditionalGeneration, LlavaProcessor,
    )

    tok = llava_tokenizer(spec.extra_words)
    tok.chat_template = LLAVA_CHAT_TEMPLATE
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": spec.image_size},
        crop_size={"height": spec.image_size, "width": spec.image_size},
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=spec.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_CHAT_TEMPLATE,
    )
    text = llama_text_config(spec, tok, max_positions)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**vision_tower(spec), projection_dim=spec.vision_hidden),
        text_config=LlamaConfig(**text),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_seq_length=spec.patches_per_side**2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )
    torch.manual_seed(spec.seed)
    model = LlavaForConditionalGeneration(config)
    return save(model, processor, out_dir)


def llava_15_shaped(
    out_dir: str | Path,
    *,
    hidden: int = 256,
    layers: int = 4,
    seed: int = 0,
    vision_hidden: int = 128,
    vision_layers: int = 2,
) -> Path:
    """A LLaVA-1.5-shaped model for the benchmark: CLIP at 336 px with patch 14, penultimate layer, CLS
    dropped -> exactly 576 image tokens per image, like llava-1.5-7b; a narrow Llama decoder.

    Only the shape of the token stream is real-sized (576 image tokens + the prompt), which is what
    prefix sharing and batching are measured on; the widths stay small so it builds in seconds.
    """
    heads = max(1, hidden // 64)
    spec = TinySpec(
        hidden=hidden,
        layers=layers,
        heads=heads,
        kv_heads=heads,
        intermediate=hidden * 4,
        vision_hidden=vision_hidden,
        vision_layers=vision_layers,
        image_size=336,
        patch_size=14,
        seed=seed,
    )
    return build(spec, Path(out_dir), max_positions=4096)


def llava_15_7b_parts(layers: int = 32) -> tuple:
    """The configuration and processor of a model of llava-1.5-7b's shape, for the GPU check
    (`quadrant.models.gpu_check`): CLIP ViT-L/14 at 336 px (1024 wide, 24 layers, 16 heads: 576 image tokens),
    a two-layer GELU projector, and a Llama of 4096 x `layers` (32 in the real model), 32 heads, MLP 11008,
    vocabulary 32064. Only the tokenizer is small (trained on the spot; the embedding table keeps the real
    vocabulary's size)."""
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaProcessor

    tok = llava_tokenizer()
    tok.chat_template = LLAVA_CHAT_TEMPLATE
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=14,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=LLAVA_CHAT_TEMPLATE)
    text = LlamaConfig(vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=layers,
                       num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                       pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                              image_size=336, patch_size=14, projection_dim=768)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
                         image_seq_length=576, vision_feature_select_strategy="default", vision_feature_layer=-2,
                         projector_hidden_act="gelu", tie_word_embeddings=False)
    return config, processor


def llava_15_7b_shaped(out_dir: str | Path, *, layers: int = 32, device: str = "cpu",
                       dtype: torch.dtype = torch.bfloat16, seed: int = 0) -> Path:
    """`llava_15_7b_parts` with random weights, drawn on `device` (a GPU draws 7B of them in seconds) and
    saved in `dtype`."""
    from transformers import LlavaForConditionalGeneration

    config, processor = llava_15_7b_parts(layers)
    torch.manual_seed(seed)
    with torch.device(device):
        model = LlavaForConditionalGeneration(config).to(dtype)
    return save(model, processor, Path(out_dir), dtype=dtype)
