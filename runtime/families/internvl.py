"""InternVL (the transformers `-hf` layout: InternVL2.5 / InternVL3). Images are cut into tiles plus a
thumbnail, each tile `image_seq_length` <IMG_CONTEXT> tokens between <img> and </img>, so the token count
follows the image's aspect ratio. The processor flattens every image's tiles into one `pixel_values`
[tiles, 3, H, W]; the prefix call takes the first prompt's tiles. The language model is a plain causal
decoder, so the cached prefix is exact."""

from __future__ import annotations

from .base import Family


class InternVLFamily(Family):
    name = "internvl"
    placeholder_attribute = "context_image_token"
    placeholder_token = "<IMG_CONTEXT>"

    def prefix_image_inputs(self, config, inputs: dict) -> dict:
        tokens = int((inputs["input_ids"][0] == config.image_token_id).sum())
        tiles = tokens // config.image_seq_length
        return {"pixel_values": inputs["pixel_values"][:tiles]}
