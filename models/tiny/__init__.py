"""Tiny, real Hugging Face image-text-to-text models, built offline with random weights.

Every model here is a genuine ``transformers`` class with a byte-level BPE tokenizer trained on the spot, a
processor and -- where the real checkpoints have one -- a chat template that follows the real checkpoint's
conventions. Nothing is downloaded: the test suite, the benchmark and the demo-model recipe all need models
that exist without a network, behave like the real families at the interfaces Quadrant touches (chat
template, processor, image-token expansion, special tokens, forward signature) and are small enough to build
in well under a second.

One module per family (its builder, chat template and tokenizer), what they share in `common`, and one
registry below: adding a family's tiny model is one new module and one line in `BUILDERS`; the groupings the
tests and the bench read are derived from it.

A saved directory reloads with ``AutoProcessor.from_pretrained(dir)`` and
``AutoModelForImageTextToText.from_pretrained(dir)``, weights in float32 safetensors.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Callable, Literal

from quadrant.families import FAMILIES as FAMILY_CLASSES

from . import gemma3, idefics3, internvl, llava, llava_next, llava_onevision, paligemma, qwen_vl, vipllava
from .common import TinySpec
from .llava import llava_15_7b_parts, llava_15_7b_shaped, llava_15_shaped
from .llava import llava_tokenizer as train_tokenizer
from .qwen_vl import qwen25_vl_7b_parts, qwen25_vl_7b_shaped

Builder = Callable[[TinySpec, Path], Path]

#: Every tiny family: its name (transformers' model type, the key of `quadrant.families.FAMILIES`) -> its
#: builder and its group. "first": the four the builders began with, each checked against its real
#: checkpoint's conventions in tests/test_tiny_models.py and run by the fast-path and parity tests; "later":
#: covered by tests/test_families.py. The order is the order of parametrized test ids and of the bench's rows.
BUILDERS: dict[str, tuple[Builder, Literal["first", "later"]]] = {
    "llava": (llava.build, "first"),
    "gemma3": (gemma3.build, "first"),
    "idefics3": (idefics3.build, "first"),
    "paligemma": (paligemma.build, "first"),
    "qwen2_vl": (functools.partial(qwen_vl.build, version="qwen2_vl"), "later"),
    "qwen2_5_vl": (functools.partial(qwen_vl.build, version="qwen2_5_vl"), "later"),
    "qwen3_vl": (functools.partial(qwen_vl.build, version="qwen3_vl"), "later"),
    "internvl": (internvl.build, "later"),
    "llava_onevision": (llava_onevision.build, "later"),
    "llava_next": (llava_next.build, "later"),
    "vipllava": (vipllava.build, "later"),
}


FAMILIES = tuple(name for name, (_, group) in BUILDERS.items() if group == "first")
_LATER = tuple(name for name, (_, group) in BUILDERS.items() if group == "later")
#: the later families that have a file in `quadrant.families`, and those with none, which the generic family serves
NEW_FAMILIES = tuple(name for name in _LATER if name in FAMILY_CLASSES)
GENERIC_FAMILIES = tuple(name for name in _LATER if name not in FAMILY_CLASSES)


def build_tiny(family: str, out_dir: str | Path, spec: TinySpec = TinySpec(), **overrides: Any) -> Path:
    """Build a tiny random-weight model of ``family`` and save it (model + processor) in ``out_dir``.

    ``overrides`` replace fields of ``spec`` (``build_tiny("llava", d, hidden=128)``). Weights depend
    only on the spec: ``torch.manual_seed(spec.seed)`` runs right before construction.
    """
    if family not in BUILDERS:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(BUILDERS)}")
    if overrides:
        unknown = set(overrides) - {f.name for f in dataclasses.fields(TinySpec)}
        if unknown:
            raise TypeError(f"unknown TinySpec field(s): {', '.join(sorted(unknown))}")
        if "extra_words" in overrides:
            overrides["extra_words"] = tuple(overrides["extra_words"])
        spec = dataclasses.replace(spec, **overrides)
    if spec.image_size % spec.patch_size:
        raise ValueError(f"image_size {spec.image_size} is not a multiple of patch_size {spec.patch_size}")
    build, _ = BUILDERS[family]
    return build(spec, Path(out_dir))


__all__ = [
    "BUILDERS", "FAMILIES", "GENERIC_FAMILIES", "NEW_FAMILIES", "TinySpec", "build_tiny", "llava_15_7b_parts",
    "llava_15_7b_shaped", "llava_15_shaped", "qwen25_vl_7b_parts", "qwen25_vl_7b_shaped", "train_tokenizer",
]
