"""LLaVA-OneVision (llava-hf): SigLIP, an MLP and a Qwen2 decoder, with "anyres" tiling (a base view plus
tiles on the best grid, an image-newline token per row), so the number of <image> tokens follows the
image. Pixel values stay one row per prompt, with `image_sizes` saying how much of each is real.

ONNX: the vision graph takes an image's real tiles [tiles, 3, H, W] and gives each tile's projected
features; laying the tiles out (unpadding to the image's aspect, the newline vector after each row, the
"anyres_max" downscale) follows the image's size, so it runs on the host, through transformers' own
`pack_image_features`, with the newline vector saved beside the graphs."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from .base import Family


class LlavaOnevisionFamily(Family):
    name = "llava_onevision"
    forward_keys = Family.forward_keys + ("image_sizes",)
    onnx_exportable = True

    def image_features(self, model, pixel_values: torch.Tensor) -> torch.Tensor:
        """The chosen vision layer (CLS dropped for the "default" strategy), projected, per tile."""
        config = model.config
        hidden = model.model.vision_tower(pixel_values, output_hidden_states=True).hidden_states
        selected = hidden[config.vision_feature_layer]
        if config.vision_feature_select_strategy == "default":
            selected = selected[:, 1:]
        return model.model.multi_modal_projector(selected)

    def vision_inputs(self, config, encoded: dict) -> dict[str, torch.Tensor]:
        """Each image's real tiles (the processor pads every image to the most tiles of the batch)."""
        counts = _tiles(config, encoded["image_sizes"])
        return {"pixel_values": torch.cat([pixels[:n] for pixels, n in zip(encoded["pixel_values"], counts, strict=True)])}

    def vision_axes(self, config) -> dict[str, dict[int, str]]:
        return {"pixel_values": {0: "tiles"}}

    def arrange_features(self, config, outputs: dict[str, torch.Tensor], encoded: dict,
                         extras: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The tiles of each image packed as the model packs them, one row per <image> token."""
        from transformers.models.llava_onevision.modeling_llava_onevision import LlavaOnevisionModel

        per_image = torch.split(outputs["image_features"], _tiles(config, encoded["image_sizes"]))
        # pack_image_features reads nothing of its model but the config: its own code, without the weights
        packed, _ = LlavaOnevisionModel.pack_image_features(
            SimpleNamespace(config=config), list(per_image), encoded["image_sizes"],
            image_newline=extras["image_newline"], vision_aspect_ratio=config.vision_aspect_ratio)
        return {"image_features": torch.cat(packed)}

    def onnx_extras(self, model) -> dict[str, torch.Tensor]:
        return {"image_newline": model.model.image_newline}


def _tiles(config, image_sizes: torch.Tensor) -> list[int]:
    """How many tiles the processor cut each image into (the base view included)."""
    from transformers.models.llava_onevision.modeling_llava_onevision import image_size_to_num_patches

    return [image_size_to_num_patches(image_size=size, grid_pinpoints=config.image_grid_pinpoints,
                                      patch_size=config.vision_config.image_size) for size in image_sizes]
