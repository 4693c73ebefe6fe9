"""Gemma3 (MedGemma). Its attention over image tokens is bidirectional, chosen by token_type_ids: the
prefix call must carry them or the image block silently turns causal (measured 0.06 off)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from .base import Family, ReadImage, adds_special_tokens


class Gemma3Family(Family):
    name = "gemma3"
    prefix_keys = ("token_type_ids",)
    forward_keys = Family.forward_keys + ("token_type_ids",)
    onnx_exportable = True

    def image_features(self, model, pixel_values: torch.Tensor) -> torch.Tensor:
        """SigLIP, pooled and projected: [images, mm_tokens_per_image, hidden]."""
        return model.model.get_image_features(pixel_values=pixel_values).pooler_output

    def attention_blocks(self, config, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Each image's tokens see each other both ways (the model's token_type_ids rule): one block per
        run of image tokens."""
        image = (inputs["input_ids"] == self.image_token_id(config)) & inputs["attention_mask"].bool()
        starts = image & ~torch.nn.functional.pad(image, (1, 0))[:, :-1]
        return torch.cumsum(starts, dim=1) * image

    def read_image(self, processor, rendered: str, image: Image.Image | np.ndarray) -> ReadImage | None:
        """The image preprocessed once (at MedGemma's 896 px, the costly part of tokenizing a study).

        Gemma3's processor expands the image placeholder as text (`full_image_sequence`, surrounded by
        blank lines that a tokenizer may merge with the question), so instead of splicing token ids `splice`
        expands every prompt's text the same way and tokenizes it whole; token_type_ids mark the image
        tokens. This prompt's result must equal the processor's own, or None (the processor then runs on
        every prompt).
        """
        if not _expandable(processor, [rendered]):
            return None
        first = self.encode(processor, [rendered], [image])
        read = ReadImage({"pixel_values": first["pixel_values"]}, ())
        spliced = self.splice(processor, [rendered], read)
        length = int(first["attention_mask"][0].sum())
        if not (
            torch.equal(spliced["input_ids"][0, :length], first["input_ids"][0, :length])
            and torch.equal(spliced["token_type_ids"][0, :length], first["token_type_ids"][0, :length])
            and int(spliced["attention_mask"][0].sum()) == length
        ):
            return None
        return read

    def splice(self, processor, rendered: Sequence[str], read: ReadImage) -> dict | None:
        """Every prompt's text with the image placeholder expanded as the processor expands it, tokenized
        whole, with the image's tensors as `read_image` read them; None without one placeholder a prompt."""
        if not _expandable(processor, rendered):
            return None
        tokenizer = processor.tokenizer
        texts = [r.replace(processor.boi_token, processor.full_image_sequence) for r in rendered]
        tokens = tokenizer(texts, add_special_tokens=adds_special_tokens(tokenizer, rendered), padding=True,
                           return_tensors="pt")
        input_ids, attention_mask = tokens["input_ids"], tokens["attention_mask"]
        token_type_ids = (input_ids == tokenizer.image_token_id).long() * attention_mask
        return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids,
                **read.tensors}


def _expandable(processor, rendered: Sequence[str]) -> bool:
    """Whether the processor says how it expands the image placeholder, and every prompt has one."""
    sequence = getattr(processor, "full_image_sequence", None)
    placeholder = getattr(processor, "boi_token", None)
    return bool(sequence and placeholder) and all(r.count(placeholder) == 1 for r in rendered)
