"""LLaVA (llava-hf checkpoints, LLaVA-1.5, LLaVA-Med once converted to the llava-hf layout)."""

import torch

from ..errors import UnsupportedModelError
from .base import Family


class LlavaFamily(Family):
    name = "llava"
    onnx_exportable = True

    def image_features(self, model, pixel_values: torch.Tensor) -> torch.Tensor:
        """The CLIP tower's chosen hidden layer (CLS dropped for the "default" strategy), projected: what
        `get_image_features` computes, without its per-image split (which fixes the batch when traced)."""
        config = model.config
        if not isinstance(config.vision_feature_layer, int):
            raise UnsupportedModelError("ONNX export handles one vision_feature_layer, not a list of them")
        outputs = model.model.vision_tower(pixel_values, output_hidden_states=True)
        hidden = outputs.hidden_states[config.vision_feature_layer]
        if config.vision_feature_select_strategy == "default":
            hidden = hidden[:, 1:]
        return model.model.multi_modal_projector(hidden)
