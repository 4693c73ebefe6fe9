"""InternVL (the -hf layout): the family that tiles an image into up to four crops plus a thumbnail, so the
number of image tokens depends on the image, as in the real models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from transformers import PreTrainedTokenizerFast

from .common import QWEN_SPECIALS, TinySpec, image_only_processor, make_tokenizer, qwen2_text, save_like_checkpoint

#: OpenGVLab/InternVL3-*-hf: "<IMG_CONTEXT>\n" for the image (expanded to "<img><IMG_CONTEXT>*N</img>").
INTERNVL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are InternVL, a multimodal "
    "large language model.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<IMG_CONTEXT>\n"
    "{% elif content['type'] == 'video' %}<video>\n"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def internvl_tokenizer(extra_words: Sequence[str] = ()) -> PreTrainedTokenizerFast:
    """Qwen2 layout (no BOS, <|endoftext|> pads) with InternVL's image tokens appended, named as its processor
    reads them."""
    return make_tokenizer(
        bos=None, eos="<|im_end|>", pad="<|endoftext|>", unk=None, base_specials=QWEN_SPECIALS,
        added_specials=("<img>", "</img>", "<IMG_CONTEXT>", "<video>"),
        named={"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
               "video_token": "<video>"},
        add_bos_token=False, extra_words=extra_words,
    )


def build(spec: TinySpec, out_dir: Path) -> Path:
    """InternVL (the -hf layout): an InternViT tower, pixel shuffle (downsample_ratio 0.5), an MLP, a Qwen2
    decoder. Images are cut into up to 4 tiles plus a thumbnail (GotOcr2 cropping), each tile
    image_seq_length <IMG_CONTEXT> tokens between <img> and </img>."""
    from transformers import GotOcr2ImageProcessorPil, InternVLConfig, InternVLForConditionalGeneration, InternVLProcessor

    tok = internvl_tokenizer(spec.extra_words)
    tok.chat_template = INTERNVL_CHAT_TEMPLATE
    if spec.patches_per_side % 2:
        raise ValueError("internvl needs an even patch grid")
    seq = spec.patches_per_side**2 // 4
    image_processor = GotOcr2ImageProcessorPil(
        size={"height": spec.image_size, "width": spec.image_size}, crop_to_patches=True, min_patches=1,
        max_patches=4, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    )
    processor = image_only_processor(InternVLProcessor, image_processor=image_processor, tokenizer=tok,
                                     image_seq_length=seq, chat_template=INTERNVL_CHAT_TEMPLATE)
    text = qwen2_text(spec, tok, max_positions=2048)
    vision = dict(hidden_size=spec.vision_hidden, num_hidden_layers=spec.vision_layers,
                  num_attention_heads=spec.vision_heads, intermediate_size=spec.vision_hidden * 4,
                  image_size=[spec.image_size, spec.image_size], patch_size=[spec.patch_size, spec.patch_size])
    config = InternVLConfig(text_config=text, vision_config=vision, image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"),
                            image_seq_length=seq, downsample_ratio=0.5, tie_word_embeddings=False)
    torch.manual_seed(spec.seed)
    model = InternVLForConditionalGeneration(config)
    video = {"video_processor_type": "InternVLVideoProcessor", "size": {"height": spec.image_size, "width": spec.image_size}}
    return save_like_checkpoint(model, processor, out_dir, "InternVLProcessor", video)
