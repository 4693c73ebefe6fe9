"""LLaVA-OneVision: the family whose "anyres" tiling adds an image-newline token per row, so the number of
<image> tokens follows the image's aspect ratio, as in the real models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from transformers import PreTrainedTokenizerFast

from .common import (
    QWEN_SPECIALS, TinySpec, anyres_pinpoints, image_only_processor, make_tokenizer, qwen2_text,
    save_like_checkpoint, vision_tower,
)

#: llava-hf/llava-onevision-qwen2-*-ov-hf: images first, then "\n" + text, in ChatML.
LLAVA_ONEVISION_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] }}{% endfor %}"
    "{% endif %}{{ '<|im_end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def llava_onevision_tokenizer(extra_words: Sequence[str] = ()) -> PreTrainedTokenizerFast:
    """Qwen2 layout (no BOS, <|endoftext|> pads) with <image> and <video> appended."""
    return make_tokenizer(
        bos=None, eos="<|im_end|>", pad="<|endoftext|>", unk=None, base_specials=QWEN_SPECIALS,
        added_specials=("<image>", "<video>"), named={"image_token": "<image>", "video_token": "<video>"},
        add_bos_token=False, extra_words=extra_words,
    )


def build(spec: TinySpec, out_dir: Path) -> Path:
    """LLaVA-OneVision: SigLIP -> MLP -> Qwen2, "anyres_max_9" tiling: a base view plus tiles on the best of
    the grid pinpoints, an image-newline token per row, so the <image> count follows the aspect ratio."""
    from transformers import (
        LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, LlavaOnevisionImageProcessorPil,
        LlavaOnevisionProcessor,
    )

    tok = llava_onevision_tokenizer(spec.extra_words)
    tok.chat_template = LLAVA_ONEVISION_CHAT_TEMPLATE
    pinpoints = anyres_pinpoints(spec.image_size)
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": spec.image_size, "width": spec.image_size}, image_grid_pinpoints=pinpoints,
        do_pad=True, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )
    processor = image_only_processor(
        LlavaOnevisionProcessor, image_processor=image_processor, tokenizer=tok,
        num_image_tokens=spec.patches_per_side**2, vision_feature_select_strategy="full",
        chat_template=LLAVA_ONEVISION_CHAT_TEMPLATE,
    )
    text = qwen2_text(spec, tok, max_positions=4096)
    config = LlavaOnevisionConfig(
        text_config=text,
        vision_config=dict(vision_tower(spec), vision_use_head=False, model_type="siglip_vision_model"),
        image_token_index=tok.convert_tokens_to_ids("<image>"), video_token_index=tok.convert_tokens_to_ids("<video>"),
        vision_feature_select_strategy="full", vision_feature_layer=-1, image_grid_pinpoints=pinpoints, tie_word_embeddings=False,
    )
    torch.manual_seed(spec.seed)
    model = LlavaOnevisionForConditionalGeneration(config)
    video = {"video_processor_type": "LlavaOnevisionVideoProcessor",
             "size": {"height": spec.image_size, "width": spec.image_size}}
    return save_like_checkpoint(model, processor, out_dir, "LlavaOnevisionProcessor", video)

