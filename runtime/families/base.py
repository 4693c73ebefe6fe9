"""What differs between VLM families, and nothing else: rendering a prompt, tokenizing it the processor's
way, and which extra tensors a forward needs. Backends stay family-agnostic by asking these methods."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image


class Family:
    """A chat-templated image-text-to-text family (LLaVA-like by default).

    Subclasses override only what their processor does differently. `accepts_imageless` says whether the
    template can render a prompt with the image taken out (ablation `none`); `prefix_cache_exact` says
    whether the image prefix's KV cache can be reused for the question suffixes (causal attention over
    the image); `prefix_keys` are per-token tensors besides input_ids the prefix call needs.
    """

    name = "base"
    accepts_imageless = True
    prefix_cache_exact = True
    prefix_keys: tuple[str, ...] = ()
    #: tensors a forward may take from the processor's output
    forward_keys: tuple[str, ...] = ("input_ids", "attention_mask", "pixel_values")

    def render(self, processor, text: str, with_image: bool, chat_template: str | None = None) -> str:
        """The chat-templated prompt with the generation prompt added; image placeholders unexpanded."""
        content = [{"type": "image"}] if with_image else []
        content.append({"type": "text", "text": text})
        messages = [{"role": "user", "content": content}]
        return processor.apply_chat_template(
            messages, chat_template=chat_template, add_generation_prompt=True, tokenize=False
        )

    def encode(self, processor, rendered: Sequence[str], images: Sequence[Image.Image] | None) -> dict:
        """Tokenize like the processor: special tokens added unless the text already starts with BOS.

        One rule for with-image and text-only prompts, so a text-only prompt never silently loses the BOS
        its with-image twin has (SPEC, Verdict JSON). Rows are right-padded: the real tokens of every row
        then sit at positions 0..len-1, exactly where an unpadded forward puts them.
        """
        bos = getattr(processor.tokenizer, "bos_token", None)
        add_special = not (bos and all(r.startswith(bos) for r in rendered))
        kwargs = {"text": list(rendered), "return_tensors": "pt", "padding": True, "add_special_tokens": add_special}
        if images is not None:
            kwargs["images"] = self.images_argument(images)
        encoded = processor(**kwargs)
        return {k: v for k, v in encoded.items() if k in self.forward_keys and isinstance(v, torch.Tensor)}

    def images_argument(self, images: Sequence[Image.Image]):
        """One image per text, nested per text: the form every family's processor accepts."""
        return [[image] for image in images]

    def image_token_id(self, model) -> int | None:
        config = model.config
        for name in ("image_token_id", "image_token_index"):
            value = getattr(config, name, None)
            if value is not None:
                return int(value)
        return None
