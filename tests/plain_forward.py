"""The oracle every fast path is compared with: a plain Hugging Face forward, one prompt a call.

It renders with the processor's own chat template, tokenizes with the processor, runs the model once per
prompt with no cache, batching or splicing, and reads the last position's logits. The one thing it takes
from Quadrant is how the processor is loaded (`quadrant.loading.load_processor`): `AutoProcessor` where it
loads, and for the families whose processor holds a video processor, the same class without it when
torchvision is absent (transformers' video processors need torchvision; Quadrant never scores video).
"""

from __future__ import annotations

import torch
from transformers import AutoModelForImageTextToText

from quadrant.loading import load_processor


class PlainForward:
    def __init__(self, directory: str):
        self.processor = load_processor(directory)
        self.model = AutoModelForImageTextToText.from_pretrained(directory, dtype=torch.float32).eval()

    def margin(self, rendered: str, image, yes: list[int], no: list[int]) -> float:
        """logsumexp over the "yes" tokens' logits minus that over the "no" tokens', at the last position."""
        kwargs = {"text": [rendered], "return_tensors": "pt"}
        if self.model.config.model_type != "paligemma":  # PaliGemma's processor writes <bos> itself
            bos = self.processor.tokenizer.bos_token
            kwargs["add_special_tokens"] = not (bos and rendered.startswith(bos))
        if image is not None:
            kwargs["images"] = [image]
        inputs = {k: v for k, v in self.processor(**kwargs).items() if k != "labels"}
        with torch.no_grad():
            logits = self.model(**inputs).logits[0, -1].double()
        return float(torch.logsumexp(logits[yes], 0) - torch.logsumexp(logits[no], 0))

    def render(self, text: str, with_image: bool) -> str:
        content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": text}]
        return self.processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
        )
