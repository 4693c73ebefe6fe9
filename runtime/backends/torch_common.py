"""What every PyTorch backend shares: tokenizing the family's way, moving tensors, reading the margin at
each row's last real token, and greedy generation for the generate-and-parse mode."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..answers import margins_from_logits
from ..loading import LoadedModel
from .base import Scorer, ScoreRequest


class TorchScorer(Scorer):
    """Base for the PyTorch backends; subclasses implement `margins`."""

    def __init__(self, loaded: LoadedModel, max_batch: int = 32):
        self.loaded = loaded
        self.max_batch = max_batch

    def encode(self, rendered: Sequence[str], images) -> dict[str, torch.Tensor]:
        """The family's tokenization, on the model's device, pixel values in the model's dtype."""
        encoded = self.loaded.family.encode(self.loaded.processor, rendered, images)
        return {k: self._to_device(k, v) for k, v in encoded.items()}

    def _to_device(self, key: str, value: torch.Tensor) -> torch.Tensor:
        value = value.to(self.loaded.device)
        if key == "pixel_values":
            value = value.to(self.loaded.dtype)
        return value

    def last_token_margins(self, logits: torch.Tensor, last: torch.Tensor) -> list[float]:
        """Margins at each row's last real position (rows are right-padded)."""
        rows = torch.arange(logits.shape[0], device=logits.device)
        picked = logits[rows, last]
        return margins_from_logits(picked, self.loaded.answer_tokens).tolist()

    @torch.inference_mode()
    def full_forward_margins(self, rendered: Sequence[str], images) -> list[float]:
        """One padded forward over whole prompts (image included): the plain way every family supports."""
        inputs = self.encode(rendered, images)
        logits = self.loaded.model(**inputs).logits
        last = inputs["attention_mask"].sum(dim=1) - 1
        return self.last_token_margins(logits, last)

    @torch.inference_mode()
    def generate(self, requests: Sequence[ScoreRequest], max_new_tokens: int = 8) -> list[str]:
        texts = []
        tokenizer = self.loaded.processor.tokenizer
        for request in requests:
            images = None if request.image is None else [request.image]
            inputs = self.encode([request.rendered], images)
            output = self.loaded.model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
            new_tokens = output[0, inputs["input_ids"].shape[1] :]
            texts.append(tokenizer.decode(new_tokens, skip_special_tokens=True).strip())
        return texts
