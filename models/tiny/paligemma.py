"""PaliGemma: the family with no chat template and a prefix-LM, whose processor writes the prompt itself and
refuses text without an image, so Quadrant's text-only ablation has to do without the processor's help.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from transformers import PreTrainedTokenizerFast

from .common import GEMMA_SPECIALS, TinySpec, language_model, make_tokenizer, save, vision_tower


def paligemma_tokenizer(extra_words: Sequence[str] = ()) -> PreTrainedTokenizerFast:
    """Gemma layout: <pad>=0, <eos>=1, <bos>=2, <unk>=3, BOS added by the tokenizer; <image> appended (the
    processor adds the <loc>/<seg> tokens itself)."""
    return make_tokenizer(
        bos="<bos>", eos="<eos>", pad="<pad>", unk="<unk>",
        base_specials=GEMMA_SPECIALS, added_specials=("<image>",), named={"image_token": "<image>"},
        add_bos_token=True, extra_words=extra_words,
    )


def build(spec: TinySpec, out_dir: Path) -> Path:
    """PaliGemma: SigLIP tower -> linear -> Gemma, prefix-LM (image + prompt attend both ways).

    No chat template: the processor writes "<image>*N<bos>{prompt}\\n" itself, refuses text without an
    image, and returns ``token_type_ids`` (pass them) and ``labels`` (drop them). Constructing the
    processor adds 1,024 <locNNNN> and 128 <segNNN> tokens, so the model's vocab_size is read from
    the tokenizer *after* that.
    """
    from transformers import (
        GemmaConfig, PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor,
        SiglipImageProcessorPil, SiglipVisionConfig,
    )

    tok = paligemma_tokenizer(spec.extra_words)
    num_image_tokens = spec.patches_per_side**2
    image_processor = SiglipImageProcessorPil(
        size={"height": spec.image_size, "width": spec.image_size},
        image_seq_length=num_image_tokens,
    )
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tok)
    head_dim = spec.hidden // spec.heads
    config = PaliGemmaConfig(
        vision_config=SiglipVisionConfig(**vision_tower(spec), vision_use_head=False),
        text_config=GemmaConfig(
            **language_model(spec, tok),
            head_dim=head_dim,
            max_position_embeddings=2048,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        ),
        image_token_index=tok.image_token_id,
        vocab_size=len(tok),  # after the processor's <loc>/<seg> tokens
        projection_dim=spec.hidden,
        hidden_size=spec.hidden,
    )
    torch.manual_seed(spec.seed)
    model = PaliGemmaForConditionalGeneration(config)
    return save(model, processor, out_dir)

