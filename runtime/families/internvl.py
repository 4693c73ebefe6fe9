"""InternVL (the transformers `-hf` layout: InternVL2.5 / InternVL3). Images are cut into tiles plus a
thumbnail, each tile `image_seq_length` <IMG_CONTEXT> tokens between <img> and </img>, so the token count
follows the image's aspect ratio. The processor flattens every image's tiles into one `pixel_values`
[tiles, 3, H, W]; the prefix call takes the first prompt's tiles. The language model is a plain causal
decoder, so the cached prefix is exact. ONNX: the vision graph takes tiles [tiles, 3, H, W]."""

from __future__ import annotations

import torch

from .base import Family


class InternVLFamily(Family):
    name = "internvl"
    placeholder_attribute = "context_image_token"
    placeholder_token = "<IMG_CONTEXT>"
    onnx_exportable = True

    def prefix_image_inputs(self, config, inputs: dict) -> dict:
        tokens = int((inputs["input_ids"][0] == config.image_token_id).sum())
        tiles = tokens // config.image_seq_length
        return {"pixel_values": inputs["pixel_values"][:tiles]}

    def image_features(self, model, pixel_values: torch.Tensor) -> torch.Tensor:
        """The InternViT tower, pixel shuffle and projector per tile: [tiles, image_seq_length, hidden]."""
        config = model.config
        return model.model.get_image_features(
            pixel_values=pixel_values, vision_feature_layer=config.vision_feature_layer,
            vision_feature_select_strategy=config.vision_feature_select_strategy).pooler_output

    def vision_axes(self, config) -> dict[str, dict[int, str]]:
        return {"pixel_values": {0: "tiles"}}
