"""A tiny real LLaVA whose weights are set by hand so that its yes/no answer is known in advance.

The verdict tests need studies that land in a chosen quadrant, with phrasings that agree or disagree on
purpose. A random tiny model cannot promise that, and the bundled demo model never answers an inverted
phrasing the opposite way (it reads the finding's words and ignores the negation), so the cell "consistent
only once the inverted phrasing is negated, and not image-reliant" cannot be reached with it. This toy can:

- the image: every patch of a BRIGHT image (above CLIP's mean pixel) pushes the answer to "yes", every
  patch of a DARK one to "no" (the vision tower passes each patch's mean brightness through, the projector
  turns its sign into the image token's feature);
- no image (ablation `none`): "no", from a constant prior;
- the words: a phrasing holding the word "fluid" is answered "yes", one holding "angles" "no", whatever the
  image (the word outweighs the image), and negation is ignored, as the demo model ignores it.

So under the paper's flip rule a bright study is image-reliant (yes with the image, no without) and a dark
one is not (no either way), and the phrasings pick consistency. How: the language model's first attention
layer attends uniformly (its queries are zero), so the answer position receives the mean over every token
of three channels (image brightness, "fluid", "angles"), which the output projection writes into the one
direction the yes/no rows of lm_head read; every other layer and MLP adds nothing. It is a real
`LlavaForConditionalGeneration`, saved and reloaded like any model, so the fast path, the naive path and the
command line all run it unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from quadrant.models.tiny import build_tiny

YES_WORD, NO_WORD = "fluid", "angles"
_ANSWER, _IMAGE, _YES, _NO = 0, 1, 2, 3  # hidden dimensions: read by lm_head; the three channels
PRIOR = -1.0  # the answer direction every token carries: "no" when nothing else speaks
IMAGE_GAIN, WORD_GAIN, HEAD_GAIN = 1.0, 100.0, 0.3


def toy_picture(bright: bool) -> Image.Image:
    """A 64 x 64 study (in scope: MIN_SIDE) the toy reads as bright or dark: a gradient whose every patch is
    above CLIP's mean pixel (about 123) or below it. Not one flat gray, which Quadrant refuses as blank; the toy
    reads only each patch's sign, so its answers are those of a flat 255 or 0."""
    low, high = (160, 255) if bright else (0, 90)
    row = np.linspace(low, high, 64).round().astype(np.uint8)
    return Image.fromarray(np.repeat(np.tile(row, (64, 1))[..., None], 3, axis=2))


def build_toy_reader(out_dir: str | Path) -> Path:
    out = build_tiny("llava", out_dir, extra_words=(YES_WORD, NO_WORD))
    model = AutoModelForImageTextToText.from_pretrained(out)
    tokenizer = AutoProcessor.from_pretrained(out).tokenizer
    with torch.no_grad():
        _vision_passes_brightness(model)
        _language_model_reads_channels(model, tokenizer)
    model.save_pretrained(out)
    return out


def _vision_passes_brightness(model) -> None:
    """Each patch's mean (normalized) brightness m lands as (m, -m, 0, ...) after the patch embedding; the
    pre-layernorm turns that into sign(m) * sqrt(H / 2) on channel 0; every encoder layer is the identity;
    the projector maps gelu(x) - gelu(-x) = x onto the image channel of the language model."""
    vision = model.model.vision_tower
    conv = vision.embeddings.patch_embedding
    conv.weight.zero_()
    per_pixel = 1.0 / conv.weight[0].numel()
    conv.weight[0].fill_(per_pixel)
    conv.weight[1].fill_(-per_pixel)
    vision.embeddings.position_embedding.weight.zero_()
    vision.embeddings.class_embedding.zero_()
    vision.pre_layrnorm.weight.fill_(1.0)
    vision.pre_layrnorm.bias.zero_()
    for layer in vision.encoder.layers:
        for linear in (layer.self_attn.out_proj, layer.mlp.fc2):
            linear.weight.zero_()
            linear.bias.zero_()
    projector = model.model.multi_modal_projector
    projector.linear_1.weight.zero_()
    projector.linear_1.bias.zero_()
    projector.linear_1.weight[0, 0] = 1.0
    projector.linear_1.weight[1, 0] = -1.0
    projector.linear_2.weight.zero_()
    projector.linear_2.bias.zero_()
    projector.linear_2.weight[_IMAGE, 0] = 1.0
    projector.linear_2.weight[_IMAGE, 1] = -1.0


def _language_model_reads_channels(model, tokenizer) -> None:
    language = model.model.language_model
    embeddings = language.embed_tokens.weight
    embeddings[:, _ANSWER:_NO + 1] = 0.0
    embeddings[:, _ANSWER] = PRIOR
    for word, channel in ((YES_WORD, _YES), (NO_WORD, _NO)):
        for token in _word_tokens(tokenizer, word):
            embeddings[token] = 0.0
            embeddings[token, _ANSWER] = PRIOR
            embeddings[token, channel] = 1.0
    for layer in language.layers:
        layer.self_attn.o_proj.weight.zero_()
        layer.mlp.down_proj.weight.zero_()
    first = language.layers[0].self_attn
    first.q_proj.weight.zero_()  # every score 0: uniform attention over what each position may see
    first.v_proj.weight.zero_()
    for value, channel in enumerate((_IMAGE, _YES, _NO)):
        first.v_proj.weight[value, channel] = 1.0  # kv head 0 carries the three channels
    # query head 0 reads kv head 0; the output projection writes its channels onto the answer direction
    first.o_proj.weight[_ANSWER, 0] = IMAGE_GAIN
    first.o_proj.weight[_ANSWER, 1] = WORD_GAIN
    first.o_proj.weight[_ANSWER, 2] = -WORD_GAIN
    head = model.lm_head.weight
    head.zero_()
    yes_ids, no_ids = _answer_ids(tokenizer)
    head[yes_ids, _ANSWER] = HEAD_GAIN
    head[no_ids, _ANSWER] = -HEAD_GAIN


def _word_tokens(tokenizer, word: str) -> list[int]:
    """The word as it appears inside a sentence: one token (the tokenizer was trained with it)."""
    ids = tokenizer.encode(" " + word, add_special_tokens=False)
    if len(ids) != 1:
        raise AssertionError(f"the toy's marker {word!r} is not one token: {ids}")
    return ids


def _answer_ids(tokenizer) -> tuple[list[int], list[int]]:
    from quadrant.answers import find_answer_tokens

    tokens = find_answer_tokens(tokenizer)
    return list(tokens.yes), list(tokens.no)
