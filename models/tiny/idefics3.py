"""Idefics3 (SmolVLM): the family that splits an image into crops plus a global view, so the number of image
tokens depends on the image's aspect ratio as in the real model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from transformers import PreTrainedTokenizerFast

from .common import TinySpec, llama_text_config, make_tokenizer, save, vision_tower

#: HuggingFaceTB/SmolVLM-Instruct: "<|im_start|>User:<image>{text}<end_of_utterance>\nAssistant:";
#: a text-first message gets "User: {text}". The answer follows "Assistant:" after a space (" Yes").
IDEFICS3_CHAT_TEMPLATE = (
    "<|im_start|>"
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}{{ ': ' + message['content'] }}"
    "{% else %}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}"
    "{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<end_of_utterance>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


IDEFICS3_ROW_COL_TOKENS = tuple(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7))


def idefics3_tokenizer(extra_words: Sequence[str] = ()) -> PreTrainedTokenizerFast:
    """SmolVLM layout: <|endoftext|> (unk)=0, <|im_start|> (bos)=1, <|im_end|> (pad)=2, no BOS added
    (the chat template writes it); image-layout tokens and <end_of_utterance> (eos) appended."""
    return make_tokenizer(
        bos="<|im_start|>", eos="<end_of_utterance>", pad="<|im_end|>", unk="<|endoftext|>",
        base_specials=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        added_specials=("<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>")
        + IDEFICS3_ROW_COL_TOKENS,
        named={"image_token": "<image>"},
        add_bos_token=False,
        extra_words=extra_words,
    )


def build(spec: TinySpec, out_dir: Path) -> Path:
    """Idefics3 (SmolVLM): SigLIP-like tower -> pixel shuffle (scale_factor 2) -> linear -> Llama.

    ``image_seq_len`` = (image_size / patch)^2 / scale_factor^2 tokens per sub-image. Images are split
    like the real model: ``size.longest_edge`` = 2 x the vision image size and
    ``max_image_size.longest_edge`` = the vision image size, so a square image becomes 2 x 2 crops
    plus a global view (5 x image_seq_len <image> tokens, with <fake_token_around_image>,
    <row_i_col_j> and <global-img> around them); the count depends on the aspect ratio. The model
    needs ``pixel_attention_mask``, which the processor returns.
    """
    from transformers import (
        Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessorPil, Idefics3Processor,
        Idefics3VisionConfig, LlamaConfig,
    )

    scale_factor = 2
    if spec.patches_per_side % scale_factor:
        raise ValueError(f"idefics3 needs an even patch grid, got {spec.patches_per_side} patches per side")
    tok = idefics3_tokenizer(spec.extra_words)
    tok.chat_template = IDEFICS3_CHAT_TEMPLATE
    image_seq_len = spec.patches_per_side**2 // scale_factor**2
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 2 * spec.image_size},
        max_image_size={"longest_edge": spec.image_size},
        do_image_splitting=True,
    )
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tok,
        image_seq_len=image_seq_len,
        chat_template=IDEFICS3_CHAT_TEMPLATE,
    )
    text = llama_text_config(spec, tok)
    config = Idefics3Config(
        vision_config=Idefics3VisionConfig(**vision_tower(spec)),
        text_config=LlamaConfig(**text),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=scale_factor,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(spec.seed)
    model = Idefics3ForConditionalGeneration(config)
    return save(model, processor, out_dir)
