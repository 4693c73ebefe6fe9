"""PaliGemma: no chat template (the processor itself builds `<image>*N<bos>prompt\\n`), no prompt without an
image, and prefix-LM attention: image and question attend to each other, so a cached image prefix is not
exact and the backend runs one batched full forward instead, with the image encoded once for all rows.

ONNX: the same batched path on the graphs. The decoder's mask makes the whole prompt one block that sees
itself both ways (the model's `token_type_ids` rule), and positions start at 1, as the model numbers them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from ..errors import UnsupportedModelError
from .base import Family


class PaliGemmaFamily(Family):
    name = "paligemma"
    accepts_imageless = False
    prefix_cache_exact = False
    onnx_exportable = True
    forward_keys = Family.forward_keys + ("token_type_ids",)

    def render(self, processor, text: str, with_image: bool, chat_template: str | None = None) -> str:
        """The processor's input text is the rendered prompt: PaliGemma's convention has no template."""
        return text

    def encode(self, processor, rendered: Sequence[str], images) -> dict:
        if images is None:
            raise UnsupportedModelError("PaliGemma cannot score a prompt without an image: use --ablation blank")
        encoded = processor(text=list(rendered), images=list(images), return_tensors="pt", padding=True)
        return {k: v for k, v in encoded.items() if k in self.forward_keys}

    def with_shared_image(self, model, inputs: dict) -> dict:
        """Encode the first row's pixels once and hand every row the same features (the model's own
        `mm_encoder_outputs` input), so the vision tower runs once per study rather than once per row."""
        rows = inputs["input_ids"].shape[0]
        features = model.model.get_image_features(inputs["pixel_values"][:1]).pooler_output
        shared = BaseModelOutputWithPooling(pooler_output=features.expand(rows, -1, -1))
        rest = {k: v for k, v in inputs.items() if k != "pixel_values"}
        return {**rest, "mm_encoder_outputs": {"image": shared}}

    # -- ONNX -------------------------------------------------------------------------------------------

    def image_features(self, model, pixel_values: torch.Tensor) -> torch.Tensor:
        """SigLIP and the projection: [images, image tokens, hidden]."""
        return model.model.get_image_features(pixel_values).pooler_output

    def position_ids(self, config, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """PaliGemma numbers positions from 1."""
        ids = inputs["input_ids"]
        return torch.arange(1, ids.shape[1] + 1).expand(ids.shape[0], -1), torch.ones(ids.shape[0], 1, dtype=torch.long)

    def attention_blocks(self, config, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The prompt (image and prefix text, `token_type_ids` 0) is one block; generated tokens are causal."""
        return ((inputs["token_type_ids"] == 0) & inputs["attention_mask"].bool()).long()
