"""Qwen2-VL, Qwen2.5-VL and Qwen3-VL (Lingshu, HuatuoGPT-Vision, MedVLM-R1): one logic for the three.

Dynamic resolution: the processor flattens an image into patches (`pixel_values` [patches, dim]) with its
grid in `image_grid_thw`, so the number of <|image_pad|> tokens follows the image's size. Multimodal
rotary positions (M-RoPE): image tokens get (t, h, w) positions that advance by the grid's side rather than
by the token count, so every text token after the image sits at its index plus a negative offset (the
model's `rope_deltas`). The packed suffix pass gives its suffix tokens exactly that offset, the same in
all three position streams (text tokens have equal t, h, w); text-only prompts packed alongside keep plain
positions from 0, as a text-only forward gives them. `mm_token_type_ids` (1 on image tokens) is rebuilt
for spliced prompts and checked against the processor's on prompt 0.

ONNX: the positions are computed on the host (`rope_index`) and fed to the decoder as [3, rows, length].
The vision tower's size-dependent tensors (rotary grid, attention blocks per image, Qwen2.5-VL's attention
windows, Qwen3-VL's resampled position embedding) are made on the host by transformers' own functions
(`transformers.vision_utils`), which the towers accept precomputed; inside the graph, attention reads its
blocks from `cu_seqlens` as a mask. Qwen3-VL's deepstack features (image features added again after the
first decoder layers) leave the vision graph as a second output and enter the decoder dense.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from .base import Family

#: the name under which the export registers its block-masked vision attention with transformers; it
#: contains "flash" because the towers hand their attention the block boundaries (`cu_seqlens`) only on
#: that path, and tensors, not Python lists, are what a traced graph can take
BLOCK_ATTENTION = "quadrant_flash_blocks"


def rope_index(config, input_ids: torch.Tensor, mm_token_type_ids: torch.Tensor, image_grid_thw: torch.Tensor | None,
               attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Multimodal rotary positions [3, rows, length] (temporal, height, width) and each row's rope delta
    [rows, 1], for prompts whose images are still images (no video), as the models' `get_rope_index` gives
    them: text tokens advance by one in all three streams; an image's tokens sit on its merged grid (t, h, w)
    from the position where it starts, and the text after it resumes at that position plus the grid's longer
    side; padding gets 0. The delta is how far the last position falls short of the token count.

    Computed from the config alone, so the ONNX backend, which has no PyTorch model, and the PyTorch fast
    path use the same positions; a test holds it to each Qwen model's own `get_rope_index`."""
    merge = config.vision_config.spatial_merge_size
    grids = iter(image_grid_thw.tolist() if image_grid_thw is not None else [])
    positions = torch.zeros(3, *input_ids.shape, dtype=torch.long)
    deltas = []
    for row in range(input_ids.shape[0]):
        real = attention_mask[row].bool().cpu()
        kinds = mm_token_type_ids[row].cpu()[real].tolist()
        parts, current, start = [], 0, 0
        while start < len(kinds):
            end = start
            while end < len(kinds) and kinds[end] == kinds[start]:
                end += 1
            if kinds[start] == 0:
                parts.append(torch.arange(end - start).expand(3, -1) + current)
                current += end - start
            else:
                t, h, w = next(grids)
                axes = (torch.arange(t), torch.arange(h // merge), torch.arange(w // merge))
                parts.append(torch.stack(torch.meshgrid(*axes, indexing="ij")).reshape(3, -1) + current)
                current += max(h, w) // merge
            start = end
        laid = torch.cat(parts, dim=1)
        positions[:, row, real] = laid
        deltas.append(int(laid.max()) + 1 - len(kinds))
    return positions, torch.tensor(deltas)[:, None]


class QwenVLFamily(Family):
    """The logic the three versions share; each version below is registered under its own model type, which
    is its one name (in a verdict, an export's manifest, the bench)."""

    prefix_keys = ("mm_token_type_ids",)
    forward_keys = Family.forward_keys + ("image_grid_thw", "mm_token_type_ids")
    placeholder_token = "<|image_pad|>"
    onnx_exportable = True
    position_streams = 3

    def per_token_inputs(self, processor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        image_id = processor.image_token_id
        return {"mm_token_type_ids": ((input_ids == image_id) & attention_mask.bool()).long()}

    def prefix_image_inputs(self, config, inputs: dict) -> dict:
        """The first prompt's patches: its grid's t x h x w rows of the flattened pixel values."""
        grid = inputs["image_grid_thw"][:1]
        return {"pixel_values": inputs["pixel_values"][: int(grid.prod())], "image_grid_thw": grid}

    def packed_position_ids(self, config, prefix_inputs: dict, positions: torch.Tensor,
                            sees_prefix: torch.Tensor) -> torch.Tensor:
        """[3, rows, width]: suffix tokens shifted by their study's rope delta, in all three streams.

        Three rows, not four: in transformers 5.24 a fourth leading row (Qwen3-VL expands 2-D positions to
        four) is read as text positions for building a packed-sequence mask, which the backend's own 4-D
        block mask already is; with three rows every version takes the mask as given.
        """
        _, deltas = rope_index(config, prefix_inputs["input_ids"], prefix_inputs["mm_token_type_ids"],
                               prefix_inputs["image_grid_thw"], prefix_inputs["attention_mask"])
        shifted = positions + deltas.to(positions.device).view(-1, 1) * sees_prefix.long()
        return shifted[None].expand(3, -1, -1)

    # -- ONNX -------------------------------------------------------------------------------------------

    def position_ids(self, config, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = inputs["input_ids"]
        kinds = inputs.get("mm_token_type_ids", torch.zeros_like(ids))
        return rope_index(config, ids, kinds, inputs.get("image_grid_thw"), inputs["attention_mask"])

    def vision_inputs(self, config, encoded: dict) -> dict[str, torch.Tensor]:
        """The patches, and what the tower would otherwise work out from the grid with Python loops."""
        from transformers import vision_utils

        grid, vision = encoded["image_grid_thw"], config.vision_config
        merge = vision.spatial_merge_size
        inputs = {"pixel_values": encoded["pixel_values"],
                  "position_ids": vision_utils.get_vision_position_ids(grid, merge),
                  "cu_seqlens": vision_utils.get_vision_cu_seqlens(grid)}
        if config.model_type == "qwen2_5_vl":
            inputs["window_index"], inputs["cu_window_seqlens"] = vision_utils.get_vision_window_index(
                grid, merge, vision.window_size, vision.patch_size)
        if config.model_type == "qwen3_vl":  # bilinear with corners aligned, as Qwen3VLVisionModel resamples
            inputs["interp_indices"], inputs["interp_weights"] = (
                vision_utils.get_vision_interpolation_indices_and_weights(
                    grid, int(vision.num_position_embeddings**0.5), mode="bilinear", align_corners=True,
                    spatial_merge_size=merge))
        return inputs

    def vision_axes(self, config) -> dict[str, dict[int, str]]:
        return {"pixel_values": {0: "patches"}, "position_ids": {0: "patches"}, "cu_seqlens": {0: "segments"},
                "window_index": {0: "merged_patches"}, "cu_window_seqlens": {0: "windows"},
                "interp_indices": {0: "patches"}, "interp_weights": {0: "patches"}}

    def image_features(self, model, pixel_values: torch.Tensor, **grid: torch.Tensor):
        """The tower on precomputed grid tensors (no `grid_thw`: every helper takes its tensor from them),
        merged: [image tokens, hidden], and Qwen3-VL's deepstack features [layers, image tokens, hidden]."""
        output = model.model.visual(pixel_values, grid_thw=None, max_seqlen=1, max_window_seqlen=1, **grid)
        deepstack = getattr(output, "deepstack_features", None)
        if not deepstack:
            return output.pooler_output
        return {"image_features": output.pooler_output, "deepstack_features": torch.stack(deepstack)}

    def deepstack_layers(self, config) -> int:
        return len(getattr(config.vision_config, "deepstack_visual_indexes", None) or ())

    @contextmanager
    def exporting(self, model):
        """Vision attention over blocks read from `cu_seqlens` as a mask (the eager and SDPA paths split the
        patches with Python lists, which a trace would freeze at the example's sizes), and Qwen3-VL's
        deepstack added densely (its own addition indexes by a boolean mask, whose size a trace cannot
        follow); both exact, both undone afterwards."""
        from transformers import AttentionInterface

        AttentionInterface.register(BLOCK_ATTENTION, _block_attention)
        vision = model.model.visual.config
        decoder = model.get_decoder()
        before = vision._attn_implementation
        vision._attn_implementation = BLOCK_ATTENTION
        if self.deepstack_layers(model.config):
            decoder._deepstack_process = _dense_deepstack
        try:
            yield
        finally:
            vision._attn_implementation = before
            decoder.__dict__.pop("_deepstack_process", None)



class Qwen2VLFamily(QwenVLFamily):
    name = "qwen2_vl"


class Qwen25VLFamily(QwenVLFamily):
    name = "qwen2_5_vl"


class Qwen3VLFamily(QwenVLFamily):
    name = "qwen3_vl"


def _block_attention(module, query, key, value, attention_mask=None, scaling=None, dropout=0.0,
                     cu_seq_lens_q=None, **kwargs):
    """Attention within the blocks `cu_seq_lens_q` bounds ([0, n1, n1 + n2, ...]), as a mask over one call:
    the same sums as attending within each block separately."""
    length = query.shape[2]
    block = (cu_seq_lens_q[1:-1].long()[None, :] <= torch.arange(length, device=query.device)[:, None]).sum(-1)
    same = block[:, None] == block[None, :]
    output = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=same, scale=scaling)
    return output.transpose(1, 2).contiguous(), None


def _dense_deepstack(hidden: torch.Tensor, visual_pos_masks, visual_embeds: torch.Tensor) -> torch.Tensor:
    """Qwen3-VL's deepstack addition with the features already laid out over every position (zero away from
    the image tokens), which the exported decoder receives."""
    return hidden + visual_embeds
