"""Idefics3 (SmolVLM). The model needs a pixel mask besides the pixels; image
splitting makes the number of image tokens depend on the image, which is why the prefix is found on token
ids rather than assumed."""

import torch

from .base import Family


class Idefics3Family(Family):
    name = "idefics3"
    forward_keys = Family.forward_keys + ("pixel_attention_mask",)
    onnx_exportable = True

    def image_features(self, model, pixel_values: torch.Tensor, pixel_attention_mask: torch.Tensor) -> torch.Tensor:
        """`get_image_features` on crops already stripped of padding (see `vision_inputs`): the patch mask
        from the pixel mask, the vision model, the pixel-shuffle connector. [crops, image_seq_len, hidden]."""
        patch = model.config.vision_config.patch_size
        pixel_mask = pixel_attention_mask
        subgrid = pixel_mask.unfold(1, patch, patch).unfold(2, patch, patch)
        patch_mask = subgrid.sum(dim=(-1, -2)) > 0
        hidden = model.model.vision_model(pixel_values=pixel_values, patch_attention_mask=patch_mask).last_hidden_state
        return model.model.connector(hidden)

    def vision_axes(self, config) -> dict[str, dict[int, str]]:
        return {"pixel_values": {0: "crops"}, "pixel_attention_mask": {0: "crops"}}

    def vision_inputs(self, config, encoded: dict) -> dict[str, torch.Tensor]:
        """Crops as one flat batch [crops, 3, H, W], without the all-zero padding crops the processor adds
        to even out a batch (the model drops them the same way, before its vision tower)."""
        pixels = encoded["pixel_values"].flatten(0, 1)
        mask = encoded["pixel_attention_mask"].flatten(0, 1)
        real = (pixels != 0).flatten(1).any(dim=1)
        return {"pixel_values": pixels[real], "pixel_attention_mask": mask[real].to(torch.int64)}
