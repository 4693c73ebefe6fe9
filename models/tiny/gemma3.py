"""Gemma3 (MedGemma's architecture): the family whose image placeholder is not the token the model sees, so the
processor's expansion of <start_of_image> into soft tokens is exercised as in the real checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from transformers import PreTrainedTokenizerFast

from .common import GEMMA_SPECIALS, TinySpec, language_model, make_tokenizer, save, vision_tower

#: google/gemma-3-4b-it / MedGemma: "<bos><start_of_turn>user\n<start_of_image>{text}<end_of_turn>\n
#: <start_of_turn>model\n"; the answer follows the newline with no space ("Yes"). A system message is
#: folded into the first user turn. The processor expands <start_of_image> into
#: "\n\n<start_of_image><image_soft_token>*N<end_of_image>\n\n".
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}"
    "{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}"
    "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{%- if message['content'] is string -%}"
    "{{ message['content'] | trim }}"
    "{%- elif message['content'] is iterable -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- else -%}"
    "{{ raise_exception('Invalid content type') }}"
    "{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def gemma3_tokenizer(extra_words: Sequence[str] = ()) -> PreTrainedTokenizerFast:
    """Gemma layout: <pad>=0, <eos>=1, <bos>=2, <unk>=3, BOS added by the tokenizer; the turn markers in the
    base vocabulary, the image tokens appended."""
    return make_tokenizer(
        bos="<bos>", eos="<eos>", pad="<pad>", unk="<unk>",
        base_specials=GEMMA_SPECIALS + ("<start_of_turn>", "<end_of_turn>"),
        added_specials=("<start_of_image>", "<end_of_image>", "<image_soft_token>"),
        named={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"},
        add_bos_token=True, extra_words=extra_words,
    )


def _tokens_per_side(spec: TinySpec) -> int:
    """Gemma3 average-pools the patch grid to sqrt(mm_tokens_per_image) per side (4x4 pooling in the
    real 896/14 -> 64 -> 16 model). Here: pool by 2 when the grid is even, else keep it."""
    side = spec.patches_per_side
    return side // 2 if side % 2 == 0 and side >= 2 else side


def build(spec: TinySpec, out_dir: Path) -> Path:
    """Gemma3 (MedGemma's architecture): SigLIP tower -> avg-pool -> RMSNorm -> projection -> Gemma3 text.

    The tokenizer carries ``boi_token`` <start_of_image> (the chat template's placeholder),
    ``image_token`` <image_soft_token> (what the processor expands it into, ``mm_tokens_per_image``
    times; it must equal the processor's ``image_seq_length``) and ``eoi_token`` <end_of_image>.

    A fresh Gemma3 initialises ``mm_input_projection_weight`` to zeros, so the image would have no
    effect on the logits at all; it is re-initialised here (normal, std = initializer_range, like every
    other projection) so that image reliance is measurable on the tiny model.
    """
    from transformers import (
        Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessorPil, Gemma3Processor,
        Gemma3TextConfig, SiglipVisionConfig,
    )

    tok = gemma3_tokenizer(spec.extra_words)
    tok.chat_template = GEMMA3_CHAT_TEMPLATE
    per_side = _tokens_per_side(spec)
    mm_tokens = per_side**2
    image_processor = Gemma3ImageProcessorPil(
        size={"height": spec.image_size, "width": spec.image_size},
        do_pan_and_scan=False,
    )
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tok,
        chat_template=GEMMA3_CHAT_TEMPLATE,
        image_seq_length=mm_tokens,
    )
    head_dim = spec.hidden // spec.heads
    config = Gemma3Config(
        text_config=Gemma3TextConfig(
            **language_model(spec, tok),
            head_dim=head_dim,
            query_pre_attn_scalar=head_dim,
            max_position_embeddings=2048,
            sliding_window=512,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        ),
        vision_config=SiglipVisionConfig(**vision_tower(spec), vision_use_head=False),
        mm_tokens_per_image=mm_tokens,
        boi_token_index=tok.boi_token_id,
        eoi_token_index=tok.eoi_token_id,
        image_token_index=tok.image_token_id,
    )
    torch.manual_seed(spec.seed)
    model = Gemma3ForConditionalGeneration(config)
    projector = model.model.multi_modal_projector
    with torch.no_grad():
        projector.mm_input_projection_weight.normal_(0.0, config.text_config.initializer_range)
    end_of_turn = tok.convert_tokens_to_ids("<end_of_turn>")
    return save(model, processor, out_dir, eos_token_ids=[tok.eos_token_id, end_of_turn])
