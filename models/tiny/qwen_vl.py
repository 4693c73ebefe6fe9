"""Qwen2-VL, Qwen2.5-VL and Qwen3-VL: one module because the three differ only in their vision tower's options
and Qwen3's chat template, as `quadrant.families.qwen_vl` serves them with one shared logic.

Resolution is dynamic, as in the real models (the number of <|image_pad|> tokens follows the image's size),
and the saved directory names the video processor the real checkpoints ship, which needs torchvision:
`quadrant.loading` serves such a checkpoint without it, and these directories are how the tests prove that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from transformers import PreTrainedTokenizerFast

from .common import (
    QWEN_SPECIALS, TinySpec, image_only_processor, language_model, make_tokenizer, save_like_checkpoint,
)

QWEN_VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")

#: Qwen/Qwen2-VL-7B-Instruct and Qwen2.5-VL: a default system turn, the image as
#: "<|vision_start|><|image_pad|><|vision_end|>", the answer after "assistant\n" with no space ("Yes").
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: Qwen/Qwen3-VL-*-Instruct: as Qwen2-VL without the default system turn.
QWEN3_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def qwen_tokenizer(extra_words: Sequence[str] = ()) -> PreTrainedTokenizerFast:
    """Qwen2 layout: no BOS (the template starts with <|im_start|>), <|endoftext|> pads, vision tokens added."""
    return make_tokenizer(
        bos=None, eos="<|im_end|>", pad="<|endoftext|>", unk=None,
        base_specials=QWEN_SPECIALS, added_specials=QWEN_VISION_TOKENS,
        named={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
               "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>"},
        add_bos_token=False, extra_words=extra_words,
    )


def _image_processor(spec: TinySpec, merge: int):
    from transformers import Qwen2VLImageProcessorPil

    factor = spec.patch_size * merge
    return Qwen2VLImageProcessorPil(
        patch_size=spec.patch_size, merge_size=merge, temporal_patch_size=2,
        min_pixels=(2 * factor) ** 2, max_pixels=(spec.image_size * 2) ** 2,
    )


def _video(spec: TinySpec, merge: int, kind: str) -> dict:
    return {"video_processor_type": kind, "patch_size": spec.patch_size, "merge_size": merge,
            "temporal_patch_size": 2, "size": {"shortest_edge": 64, "longest_edge": (spec.image_size * 2) ** 2}}


def build(spec: TinySpec, out_dir: Path, version: str) -> Path:
    """Qwen2-VL / Qwen2.5-VL / Qwen3-VL: a ViT over patch_size patches merged 2 x 2, a Qwen decoder with
    multimodal rotary positions (mrope_section splits each head's rotary half into t, h, w streams).
    Dynamic resolution: the image is resized to a multiple of patch x merge between min_pixels and
    max_pixels, so the number of <|image_pad|> tokens follows the image's size."""
    import transformers as tf

    merge = 2
    tok = qwen_tokenizer(spec.extra_words)
    template = QWEN3_VL_CHAT_TEMPLATE if version == "qwen3_vl" else QWEN2_VL_CHAT_TEMPLATE
    tok.chat_template = template
    names = {
        "qwen2_vl": ("Qwen2VLProcessor", "Qwen2VLConfig", "Qwen2VLForConditionalGeneration", "Qwen2VLVideoProcessor"),
        "qwen2_5_vl": ("Qwen2_5_VLProcessor", "Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration",
                       "Qwen2VLVideoProcessor"),
        "qwen3_vl": ("Qwen3VLProcessor", "Qwen3VLConfig", "Qwen3VLForConditionalGeneration", "Qwen3VLVideoProcessor"),
    }[version]
    processor = image_only_processor(getattr(tf, names[0]), image_processor=_image_processor(spec, merge),
                                     tokenizer=tok, chat_template=template)
    head_dim = spec.hidden // spec.heads
    quarter = head_dim // 2 // 4
    text = dict(
        language_model(spec, tok),
        max_position_embeddings=2048, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        bos_token_id=None, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                         "mrope_section": [head_dim // 2 - 2 * quarter, quarter, quarter]},
    )
    vision = dict(depth=spec.vision_layers, hidden_size=spec.vision_hidden, num_heads=spec.vision_heads,
                  patch_size=spec.patch_size, spatial_merge_size=merge, temporal_patch_size=2)
    if version == "qwen2_vl":
        vision.update(embed_dim=spec.vision_hidden, hidden_size=spec.hidden, mlp_ratio=2)
    elif version == "qwen2_5_vl":
        vision.update(intermediate_size=spec.vision_hidden * 2, out_hidden_size=spec.hidden, window_size=16,
                      fullatt_block_indexes=[spec.vision_layers - 1])
    else:
        text["head_dim"] = head_dim
        text["rope_parameters"]["mrope_interleaved"] = True
        vision.update(intermediate_size=spec.vision_hidden * 2, out_hidden_size=spec.hidden,
                      num_position_embeddings=16 * 16, deepstack_visual_indexes=[0])
    ids = {name: tok.convert_tokens_to_ids(token) for name, token in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
    config = getattr(tf, names[1])(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids)
    torch.manual_seed(spec.seed)
    model = getattr(tf, names[2])(config)
    return save_like_checkpoint(model, processor, out_dir, names[0], _video(spec, merge, names[3]))


def qwen25_vl_7b_parts(layers: int = 28) -> tuple:
    """The configuration and processor of a model of Qwen2.5-VL-7B-Instruct's shape, for the GPU check: a ViT
    of 1280 x 32 layers (16 heads, MLP 3420, patch 14, 2 x 2 merge, 112-pixel attention windows, full
    attention in layers 7, 15, 23, 31), and a Qwen2 decoder of 3584 x `layers` (28 in the real model), 28
    heads over 4 key/value heads, MLP 18944, vocabulary 152064, M-RoPE sections 16/24/24, rope theta 1e6;
    the real processor's pixel range. Only the tokenizer is small."""
    import transformers as tf

    tok = qwen_tokenizer()
    tok.chat_template = QWEN2_VL_CHAT_TEMPLATE
    image_processor = tf.Qwen2VLImageProcessorPil(patch_size=14, merge_size=2, temporal_patch_size=2,
                                                  min_pixels=3136, max_pixels=12845056)
    processor = image_only_processor(tf.Qwen2_5_VLProcessor, image_processor=image_processor, tokenizer=tok,
                                     chat_template=QWEN2_VL_CHAT_TEMPLATE)
    text = dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=layers,
                num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768,
                pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]})
    vision = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, patch_size=14, spatial_merge_size=2,
                  temporal_patch_size=2, out_hidden_size=3584, window_size=112, fullatt_block_indexes=[7, 15, 23, 31])
    ids = {name: tok.convert_tokens_to_ids(token) for name, token in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
    return tf.Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids), processor


def qwen25_vl_7b_shaped(out_dir: str | Path, *, layers: int = 28, device: str = "cpu",
                        dtype: torch.dtype = torch.bfloat16, seed: int = 0) -> Path:
    """`qwen25_vl_7b_parts` with random weights, drawn on `device` and saved in `dtype`."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    config, processor = qwen25_vl_7b_parts(layers)
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(config).to(dtype)
    video = {"video_processor_type": "Qwen2VLVideoProcessor", "patch_size": 14, "merge_size": 2,
             "temporal_patch_size": 2, "size": {"shortest_edge": 3136, "longest_edge": 12845056}}
    return save_like_checkpoint(model, processor, Path(out_dir), "Qwen2_5_VLProcessor", video, dtype=dtype)

