"""Qwen2-VL, Qwen2.5-VL and Qwen3-VL (Lingshu, HuatuoGPT-Vision, MedVLM-R1): one logic for the three.

Dynamic resolution: the processor flattens an image into patches (`pixel_values` [patches, dim]) with its
grid in `image_grid_thw`, so the number of <|image_pad|> tokens follows the image's size. Multimodal
rotary positions (M-RoPE): image tokens get (t, h, w) positions that advance by the grid's side rather than
by the token count, so every text token after the image sits at its index plus a negative offset (the
model's `rope_deltas`). The packed suffix pass gives its suffix tokens exactly that offset, the same in
all three position streams (text tokens have equal t, h, w); text-only prompts packed alongside keep plain
positions from 0, as a text-only forward gives them. `mm_token_type_ids` (1 on image tokens) is rebuilt
for spliced prompts and checked against the processor's on prompt 0.
"""

from __future__ import annotations

import torch

from .base import Family


class QwenVLFamily(Family):
    name = "qwen-vl"
    prefix_keys = ("mm_token_type_ids",)
    forward_keys = Family.forward_keys + ("image_grid_thw", "mm_token_type_ids")
    placeholder_token = "<|image_pad|>"

    def per_token_inputs(self, processor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        image_id = processor.image_token_id
        return {"mm_token_type_ids": ((input_ids == image_id) & attention_mask.bool()).long()}

    def prefix_image_inputs(self, config, inputs: dict) -> dict:
        """The first prompt's patches: its grid's t x h x w rows of the flattened pixel values."""
        grid = inputs["image_grid_thw"][:1]
        return {"pixel_values": inputs["pixel_values"][: int(grid.prod())], "image_grid_thw": grid}

    def packed_position_ids(self, model, prefix_inputs: dict, positions: torch.Tensor,
                            sees_prefix: torch.Tensor) -> torch.Tensor:
        """[3, rows, width]: suffix tokens shifted by their study's rope delta, in all three streams.

        Three rows, not four: in transformers 5.24 a fourth leading row (Qwen3-VL expands 2-D positions to
        four) is read as text positions for building a packed-sequence mask, which the backend's own 4-D
        block mask already is; with three rows every version takes the mask as given.
        """
        _, deltas = model.model.get_rope_index(
            input_ids=prefix_inputs["input_ids"],
            mm_token_type_ids=prefix_inputs["mm_token_type_ids"],
            image_grid_thw=prefix_inputs["image_grid_thw"],
            attention_mask=prefix_inputs["attention_mask"],
        )
        shifted = positions + deltas.to(positions.device).view(-1, 1) * sees_prefix.long()
        return shifted[None].expand(3, -1, -1)
