"""The fast path's load-time self-check in half precision catches what it catches in float32.

A packed mask without its causal part (each phrasing's tokens seeing the later tokens of the same phrasing)
moves the margins by a few thousandths: the float32 self-check always saw it, but a bf16 tolerance wide
enough for rounding (5e-2) let it through. The self-check now runs a half-precision model's semantics in
float32 (see PrefixSharedScorer.self_check); these tests break the mask on purpose and expect a fallback,
keep a correct fast path in every dtype, and make sure the check leaves the weights bit for bit unchanged.
"""

from __future__ import annotations

import pytest
import torch

from quadrant.backends.packing import PackedRow
from quadrant.backends.torch_prefix import PrefixSharedScorer
from quadrant.backends import load_model
from quadrant.loading import ModelSpec

CACHED_FAMILIES = ["llava", "gemma3", "idefics3"]  # PaliGemma never uses the cache (prefix-LM attention)
DTYPES = ["float32", "bfloat16", "float16"]


def mask_without_causal_part(self: PackedRow, width: int, prefix_len: int, dtype: torch.dtype) -> torch.Tensor:
    """PackedRow.mask with one bug: a token sees its whole phrasing, later tokens included."""
    pad = width - len(self.ids)
    segment = torch.tensor(self.segment + [-1] * pad)
    sees_prefix = torch.tensor(self.sees_prefix + [True] * pad)
    same = (segment[:, None] == segment[None, :]) & (segment[:, None] >= 0)
    visible = torch.cat([sees_prefix[:, None].expand(width, prefix_len), same], dim=1)
    mask = torch.zeros(visible.shape, dtype=dtype)
    mask.masked_fill_(~visible, torch.finfo(dtype).min)
    return mask[None]


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    named = list(model.named_parameters()) + list(model.named_buffers())
    return {name: tensor.detach().clone() for name, tensor in named}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("family", CACHED_FAMILIES)
def test_a_mask_without_its_causal_part_is_caught(family, dtype, tiny_model, monkeypatch):
    loaded = load_model(ModelSpec(model=tiny_model(family), dtype=dtype))
    assert PrefixSharedScorer(loaded).prefix_ok() is True  # the correct fast path is kept
    monkeypatch.setattr(PackedRow, "mask", mask_without_causal_part)
    assert PrefixSharedScorer(loaded).prefix_ok() is False  # the broken one is not


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_the_float32_check_leaves_the_model_as_it_was(dtype, tiny_model):
    loaded = load_model(ModelSpec(model=tiny_model("gemma3"), dtype=dtype))
    before = _snapshot(loaded.model)
    assert PrefixSharedScorer(loaded).prefix_ok() is True
    after = _snapshot(loaded.model)
    assert before.keys() == after.keys()
    for name, tensor in before.items():
        assert after[name].dtype == tensor.dtype, name
        assert torch.equal(after[name], tensor), name
    assert loaded.model.dtype == getattr(torch, dtype)


def test_no_room_for_float32_falls_back_to_the_half_precision_comparison(tiny_model, monkeypatch, caplog):
    """A GPU without room for a float32 copy of the weights: the check says so and still compares the two
    ways in the model's own dtype (a fault injected where the copy would be made; the rest runs for real)."""
    loaded = load_model(ModelSpec(model=tiny_model("llava"), dtype="bfloat16"))

    def no_room(loaded):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(PrefixSharedScorer, "_in_float32", staticmethod(no_room))
    with caplog.at_level("WARNING"):
        assert PrefixSharedScorer(loaded).prefix_ok() is True
    assert "no room" in caplog.text and "bfloat16" in caplog.text
