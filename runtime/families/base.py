"""What differs between VLM families, and nothing else: rendering a prompt, tokenizing it the processor's
way, and which extra tensors a forward needs. Backends stay family-agnostic by asking these methods."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image


def adds_special_tokens(tokenizer, rendered: Sequence[str]) -> bool:
    """The processor's rule, for with-image and text-only prompts alike: add special tokens unless the
    rendered text already starts with BOS (a text-only prompt must not lose, or double, its BOS)."""
    bos = getattr(tokenizer, "bos_token", None)
    return not (bos and all(r.startswith(bos) for r in rendered))


@dataclass(frozen=True)
class ReadImage:
    """A study's image as its family's processor read it once (`Family.read_image`): the image's tensors, and
    what the family needs to lay the image into any prompt's token ids (`Family.splice`). The fast path keeps
    it for a study named by its picture, so that a later question about it runs no processor on the image."""

    tensors: dict[str, torch.Tensor]
    splice: tuple


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
    #: the tokenizer attribute naming the image placeholder token, and the token when it has none
    placeholder_attribute = "image_token"
    placeholder_token = "<image>"

    # -- ONNX export (`quadrant export onnx`): opt-in, so a family nobody has split and checked is refused.
    # The split: a vision graph (`image_features`, fed `vision_inputs`), an embedding table, and one decoder
    # graph on input embeddings under a 4-D mask. What a model's forward decides from the token ids (where
    # images sit, which tokens see each other both ways, rotary positions) the runtime decides on the host
    # with the hooks below, and hands the graphs as inputs.
    #: True where `image_features` traces and one decoder graph under a 4-D mask reproduces the model
    onnx_exportable = False
    #: why a family that has not opted in cannot be exported (the refusal names the family and this)
    onnx_refusal = "nobody has written and checked its ONNX split (vision graph + one decoder graph) yet"
    #: rotary position streams the decoder takes: 0 for position ids [rows, length], 3 for Qwen's M-RoPE
    position_streams = 0

    def image_features(self, model, **vision_inputs: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """The vision graph: `vision_inputs` to projected image features whose rows, flattened, follow the
        image tokens in reading order; a family with more outputs returns them by name, the features first
        (Qwen3-VL's deepstack features). Tensor operations only, so that it traces with dynamic sizes."""
        raise NotImplementedError(f"{self.name} declares no ONNX vision graph")

    def vision_inputs(self, config, encoded: dict) -> dict[str, torch.Tensor]:
        """The vision graph's inputs, by name, for the images in a processor's output. Computed on the host:
        where a family needs tensors that follow an image's size (Qwen's rotary grid, attention windows),
        they are made here, by transformers' own functions, rather than traced."""
        return {"pixel_values": encoded["pixel_values"]}

    def vision_axes(self, config) -> dict[str, dict[int, str]]:
        """Which axes of each vision input vary from call to call, named: the number of images by default."""
        return {"pixel_values": {0: "images"}}

    def arrange_features(self, config, outputs: dict[str, torch.Tensor], encoded: dict,
                         extras: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The vision graph's outputs as one row per image token, in reading order: `image_features`
        [tokens, hidden] (and `deepstack_features` [layers, tokens, hidden] where the model has them)."""
        arranged = {"image_features": outputs["image_features"].reshape(-1, outputs["image_features"].shape[-1])}
        if "deepstack_features" in outputs:
            deepstack = outputs["deepstack_features"]
            arranged["deepstack_features"] = deepstack.reshape(deepstack.shape[0], -1, deepstack.shape[-1])
        return arranged

    def onnx_extras(self, model) -> dict[str, torch.Tensor]:
        """Weights the runtime needs besides the graphs and the embedding table (none by default)."""
        return {}

    def deepstack_layers(self, config) -> int:
        """Decoder layers that add image features again after the embedding (Qwen3-VL's deepstack): 0."""
        return 0

    def exporting(self, model):
        """A context in which the model traces as the ONNX split needs (an attention that reads its blocks
        from an input, say); the model is as it was when it ends."""
        return contextlib.nullcontext()

    def position_ids(self, config, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions of whole, right-padded prompts, as the model's forward computes them ([rows, length], or
        [streams, rows, length]), and each row's offset for tokens that follow the prompt [rows, 1]: one
        position per token from 0 by default."""
        ids = inputs["input_ids"]
        return torch.arange(ids.shape[1]).expand(ids.shape[0], -1), torch.zeros(ids.shape[0], 1, dtype=torch.long)

    def attention_blocks(self, config, inputs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Which tokens see each other both ways: a block number per token [rows, length] (tokens of the same
        block > 0 see each other; 0 is causal), or None where attention is causal throughout."""
        return None

    def render(self, processor, text: str, with_image: bool, chat_template: str | None = None) -> str:
        """The chat-templated prompt with the generation prompt added; image placeholders unexpanded."""
        content = [{"type": "image"}] if with_image else []
        content.append({"type": "text", "text": text})
        messages = [{"role": "user", "content": content}]
        return processor.apply_chat_template(
            messages, chat_template=chat_template, add_generation_prompt=True, tokenize=False
        )

    def encode(self, processor, rendered: Sequence[str], images: Sequence[Image.Image | np.ndarray] | None) -> dict:
        """Tokenize like the processor: special tokens added unless the text already starts with BOS.

        One rule for with-image and text-only prompts, so a text-only prompt never silently loses the BOS
        its with-image twin has (the verdict JSON shows both). Rows are right-padded: the real tokens of every row
        then sit at positions 0..len-1, exactly where an unpadded forward puts them.
        """
        kwargs = {"text": list(rendered), "return_tensors": "pt", "padding": True,
                  "add_special_tokens": adds_special_tokens(processor.tokenizer, rendered)}
        if images is not None:
            kwargs["images"] = self.images_argument(images)
        encoded = processor(**kwargs)
        return {k: v for k, v in encoded.items() if k in self.forward_keys and isinstance(v, torch.Tensor)}

    def encode_one_image(self, processor, rendered: Sequence[str], image: Image.Image | np.ndarray) -> dict | None:
        """All prompts of one study with the image preprocessed once, or None where that is not exact: the
        image read with prompt 0 (`read_image`), every prompt spliced with it (`splice`)."""
        read = self.read_image(processor, rendered[0], image)
        return None if read is None else self.splice(processor, rendered, read)

    def read_image(self, processor, rendered: str, image: Image.Image | np.ndarray) -> ReadImage | None:
        """The image through the processor once, with one prompt, and what the other prompts of its study need
        to be spliced with it (`splice`); None where splicing would not be exact.

        The processor expands the image placeholder into image tokens; it does so identically for every
        prompt of a study. So the other prompts are tokenized as text with this expansion spliced in at the
        placeholder. That is exact when the expansion ends on a special token (the text after it is then
        tokenized on its own in both forms), which is checked here, on this prompt, rather than assumed; so
        are the per-token tensors rebuilt for spliced rows, against the processor's own."""
        first = self.encode(processor, [rendered], [image])
        tokenizer = processor.tokenizer
        raw = tokenizer([rendered], add_special_tokens=adds_special_tokens(tokenizer, [rendered]))["input_ids"][0]
        expanded = first["input_ids"][0].tolist()
        placeholder = self.placeholder_id(tokenizer)
        if placeholder is None or raw.count(placeholder) != 1:
            return None
        at = raw.index(placeholder)
        span = len(expanded) - len(raw) + 1
        expansion = expanded[at : at + span]
        if not (span >= 1 and expanded[:at] == raw[:at] and expanded[at + span :] == raw[at + 1 :]
                and expansion[-1] in tokenizer.added_tokens_decoder):  # special and added tokens alike
            return None
        per_token = {k: v for k, v in first.items() if k in self.prefix_keys}
        tensors = {k: v for k, v in first.items() if k not in ("input_ids", "attention_mask", *per_token)}
        read = ReadImage(tensors, (tuple(raw[:at]), tuple(expansion), tuple(per_token)))
        if per_token:  # rebuilt for the spliced rows, and checked on this prompt against the processor's
            spliced = self.splice(processor, [rendered], read)
            if spliced is None or not all(
                torch.equal(spliced[k][:1, : v.shape[1]].to(v.dtype), v) for k, v in per_token.items()
            ):
                return None
        return read

    def splice(self, processor, rendered: Sequence[str], read: ReadImage) -> dict | None:
        """The prompts' tensors with the image as `read_image` read it, the processor not run again; None
        where a prompt does not have the placeholder where that read found it, after the same tokens."""
        before, expansion, per_token = read.splice
        tokenizer = processor.tokenizer
        raw = tokenizer(list(rendered), add_special_tokens=adds_special_tokens(tokenizer, rendered))["input_ids"]
        placeholder, at = self.placeholder_id(tokenizer), len(before)
        if not all(r.count(placeholder) == 1 and r.index(placeholder) == at and tuple(r[:at]) == before for r in raw):
            return None
        rows = [r[:at] + list(expansion) + r[at + 1 :] for r in raw]
        width = max(len(r) for r in rows)
        pad = tokenizer.pad_token_id or 0
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for row, ids in enumerate(rows):  # row by row from NumPy: a nested list is converted element by element
            input_ids[row, : len(ids)] = torch.from_numpy(np.asarray(ids, dtype=np.int64))
            attention_mask[row, : len(ids)] = 1
        encoded = {"input_ids": input_ids, "attention_mask": attention_mask, **read.tensors}
        if per_token:
            rebuilt = self.per_token_inputs(processor, input_ids, attention_mask)
            if rebuilt is None or set(rebuilt) != set(per_token):
                return None
            encoded.update(rebuilt)
        return encoded

    def per_token_inputs(self, processor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict | None:
        """Per-token tensors (`prefix_keys`) for spliced rows, or None where the family cannot rebuild them
        (the processor then runs on every prompt)."""
        return None

    def configure(self, processor, chat_template: str | None) -> None:
        """Called once the processor is loaded; a family that learns its settings from it does so here."""

    def prefix_image_inputs(self, config, inputs: dict) -> dict:
        """The image tensors of a study's first prompt (every prompt of a study shows the same image), for
        the prefix call. Most processors return them one row per prompt; families that flatten images
        into patches or tiles override this."""
        skip = ("input_ids", "attention_mask") + self.prefix_keys
        return {k: v[:1] for k, v in inputs.items() if k in self.forward_keys and k not in skip}

    def packed_position_ids(self, config, prefix_inputs: dict, positions: torch.Tensor,
                            sees_prefix: torch.Tensor) -> torch.Tensor:
        """Position ids for the packed suffix pass. `positions` [rows, width] count tokens: a suffix token
        from the prefix length, a standalone (text-only) token from 0; `sees_prefix` marks the suffix
        tokens. Families with one rotary position per token use them as they are."""
        return positions

    def with_shared_image(self, model, inputs: dict) -> dict | None:
        """Forward inputs for rows that all show one image, with the image encoded once instead of per
        row; None where the family does not support it (the rows then carry the pixels themselves)."""
        return None

    def placeholder_id(self, tokenizer) -> int | None:
        """The token id of the image placeholder as the rendered template writes it."""
        token = getattr(tokenizer, self.placeholder_attribute, None) or self.placeholder_token
        token_id = tokenizer.convert_tokens_to_ids(token)
        return None if token_id is None or token_id == tokenizer.unk_token_id else token_id

    def images_argument(self, images: Sequence[Image.Image | np.ndarray]):
        """One image per text, nested per text: the form every family's processor accepts."""
        return [[image] for image in images]

    def image_token_id(self, config) -> int | None:
        """The image token's id, from the model's config."""
        for name in ("image_token_id", "image_token_index"):
            value = getattr(config, name, None)
            if value is not None:
                return int(value)
        return None
