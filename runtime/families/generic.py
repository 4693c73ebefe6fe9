"""Any other image-text-to-text model whose processor has a chat template: no family file, still an exact
verdict. Its settings are learnt from the processor itself when the model loads: which tensors a forward
takes (everything the processor returns), which of them are per token, and whether its template and
processor accept a prompt without an image (ablation `none`, else `blank`). Scoring runs batched full
forwards; the prefix-shared fast path is tried only under the load-time self-check, which compares it with
full forwards and falls back (with a warning saying why) when it is not exact or cannot run.

ONNX: tried, never assumed. The vision graph is the model's own `get_image_features`, the decoder its
language model under a causal mask; where the vision part cannot be traced with free sizes (tiling that
follows the image's size, as LLaVA-NeXT's does) the exporter refuses with its reason, and where the split
misses something the model does inside its forward, the export's validation against PyTorch refuses it."""

from __future__ import annotations

import logging

import numpy as np
import torch
from PIL import Image

from ..errors import UnsupportedModelError, one_line
from .base import Family

log = logging.getLogger(__name__)

_PROBE_TEXT = "Is there a pleural effusion? Answer with yes or no."


class GenericFamily(Family):
    name = "generic"
    onnx_exportable = True

    def __init__(self, model_type: str = "unknown"):
        self.model_type = model_type
        self.forward_keys = Family.forward_keys
        self.prefix_keys = ()
        self.accepts_imageless = True

    def configure(self, processor, chat_template: str | None) -> None:
        if chat_template is None and not getattr(processor, "chat_template", None):
            raise UnsupportedModelError(
                f"model type {self.model_type!r} has no family file and its processor no chat template, so "
                "there is no known way to prompt it: pass --chat-template FILE (a Jinja chat template)"
            )
        image = Image.fromarray(np.full((32, 32, 3), 128, dtype=np.uint8))
        try:
            rendered = self.render(processor, _PROBE_TEXT, True, chat_template)
            probe = processor(text=[rendered], images=self.images_argument([image]), return_tensors="pt")
        except Exception as exc:  # noqa: BLE001 - whatever a foreign template or processor raises
            raise UnsupportedModelError(
                f"model type {self.model_type!r} has no family file, and its chat template and processor do "
                f"not take one image and a question the usual way ({one_line(exc)})"
            ) from exc
        tensors = {k: v for k, v in probe.items() if isinstance(v, torch.Tensor) and k != "labels"}
        shape = tensors["input_ids"].shape
        self.forward_keys = tuple(tensors)
        self.prefix_keys = tuple(k for k, v in tensors.items()
                                 if k not in ("input_ids", "attention_mask") and v.shape == shape)
        self.accepts_imageless = self._renders_without_image(processor, chat_template)
        log.warning(
            "model type %r has no family file: scored through its chat template with batched full forwards "
            "(text-only ablation %s); the prefix-shared fast path is not enabled for it and runs only if the "
            "load-time self-check finds it exact", self.model_type, "none" if self.accepts_imageless else "blank",
        )

    def image_features(self, model, **vision_inputs: torch.Tensor) -> torch.Tensor:
        """The model's own image features, one row per image token."""
        features = model.get_image_features(**vision_inputs)
        features = getattr(features, "pooler_output", features)
        if isinstance(features, (list, tuple)):
            features = torch.cat([f.reshape(-1, f.shape[-1]) for f in features])
        return features

    def vision_inputs(self, config, encoded: dict) -> dict[str, torch.Tensor]:
        """Every image tensor the processor gives (pixels and whatever describes them)."""
        return {k: v for k, v in encoded.items() if k not in ("input_ids", "attention_mask") + self.prefix_keys}

    def vision_axes(self, config) -> dict[str, dict[int, str]]:
        return {key: {0: "images"} for key in self.forward_keys}

    def _renders_without_image(self, processor, chat_template: str | None) -> bool:
        """Whether both the template and the processor take a prompt with the image left out."""
        try:
            rendered = self.render(processor, _PROBE_TEXT, False, chat_template)
            processor(text=[rendered], return_tensors="pt")
        except Exception as exc:  # noqa: BLE001 - templates raise jinja's TemplateError, processors ValueError
            log.debug("text-only prompt refused: %s", exc)
            return False
        return True
