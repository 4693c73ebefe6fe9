"""The last decoder layer reduced to what a pass reads of it.

A margin reads the logits at one position a prompt, and the logits come from the last layer's output there and
nowhere else. The last layer's keys and values come from its input, before its attention; its attention output,
output projection and MLP at any other position produce nothing that is read. So for the duration of a forward
`last_layer_reads_only(decoder, reads)` runs those three at the read positions alone:

- a prefix pass reads nothing of its own (its keys and values are what the suffix pass reads, at every layer),
  so with `reads=None` the three return zeros computed from nothing: the cache gets the same keys and values to
  the bit, and a check skips most of a layer over every prefix token;
- a suffix pass (PyTorch) or any decoder call (the ONNX export, traced with its `read_index` input) gives the
  read positions, [rows, reads], and the three run on those rows only, their results scattered back into zeros.

The attention at a read position is the one the model would compute (the model's own attention function, on the
query rows and mask rows of those positions), so every margin is the same to rounding; the fast path's
self-check compares its passes with full forwards, and a family whose layers do not take the replacement
falls back like any other inexact prefix. What it saves is most of one layer of each pass: a fifth of the
bench model's 4 layers, under 3% of a 32-layer 7B model's. An attention kernel that takes no [batch, 1, queries,
keys] mask (flash attention) cannot be given the rows picked, and its layer runs whole where reads are given.

Every family's text decoder is transformers' standard shape (`get_decoder().layers`, each with `self_attn`,
`self_attn.o_proj` and `mlp`, the attention chosen by its config's `_attn_implementation`); a model that is
not is run whole. The model is changed for the duration of one forward, on the thread that runs every
forward of it (the app's model thread, an engine's worker), or of one export.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

READS_ONLY = "quadrant_reads_only"


def _attention_at_reads(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        attention_mask: torch.Tensor | None, **kwargs) -> tuple[torch.Tensor, None]:
    """The layer's own attention at the read positions, zeros elsewhere, in the shape transformers' attention
    functions return ([batch, queries, heads, head width]); all zeros, computed from nothing, without reads."""
    batch, heads, queries, width = query.shape
    reads = module.quadrant_reads
    if reads is None:
        return query.new_zeros(batch, queries, heads, value.shape[-1]), None
    if attention_mask is None:  # a causal kernel's square, no rows to pick by: attend everywhere
        return module.quadrant_attention(module, query, key, value, None, **kwargs)
    picked = query.gather(2, reads[:, None, :, None].expand(-1, heads, -1, width))
    mask = attention_mask.gather(2, reads[:, None, :, None].expand(-1, attention_mask.shape[1], -1,
                                                                   attention_mask.shape[-1]))
    kwargs.pop("is_causal", None)  # the rows picked are not the square that a causal kernel assumes
    output, _ = module.quadrant_attention(module, picked, key, value, mask, is_causal=False, **kwargs)
    return _in_rows(output, reads, queries), None


AttentionInterface.register(READS_ONLY, _attention_at_reads)


class _AtReads(nn.Module):
    """`inner` at the read rows of its input, zeros elsewhere; all zeros, computed from nothing, without reads
    (`width` features, or the input's)."""

    def __init__(self, inner: nn.Module, reads: torch.Tensor | None, width: int | None = None):
        super().__init__()
        self.inner, self.reads, self.width = inner, reads, width

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.reads is None:
            return hidden.new_zeros(*hidden.shape[:-1], self.width or hidden.shape[-1])
        picked = hidden.gather(1, self.reads[:, :, None].expand(-1, -1, hidden.shape[-1]))
        return _in_rows(self.inner(picked), self.reads, hidden.shape[1])


def _in_rows(output: torch.Tensor, reads: torch.Tensor, rows: int) -> torch.Tensor:
    """`output` ([batch, reads, ...]) placed at its read rows of zeros [batch, rows, ...]."""
    index = reads.reshape(*reads.shape, *[1] * (output.dim() - 2)).expand_as(output)
    return output.new_zeros(output.shape[0], rows, *output.shape[2:]).scatter(1, index, output)


def _own_attention(attention: nn.Module) -> Callable | None:
    """The attention function the layer would call, where it takes the [batch, 1, queries, keys] mask that the
    rows picked need: PyTorch's SDPA, or the modeling file's eager one (flash kernels take no such mask)."""
    implementation = attention.config._attn_implementation
    if implementation == "sdpa":
        return ALL_ATTENTION_FUNCTIONS["sdpa"]
    if implementation in (None, "eager"):
        return getattr(sys.modules.get(type(attention).__module__), "eager_attention_forward", None)
    return None


@contextmanager
def last_layer_reads_only(decoder: nn.Module, reads: torch.Tensor | None = None) -> Iterator[None]:
    """Within the block, the last layer of `decoder` (a model's `get_decoder()`) computes its keys and values at
    every position, and its attention, output projection and MLP only at `reads` ([rows, reads] positions within
    the forward's input; None: nowhere). See the module."""
    layers = getattr(decoder, "layers", None)
    layer = layers[-1] if layers else None
    attention = getattr(layer, "self_attn", None)
    projection = getattr(attention, "o_proj", None)
    standard = (isinstance(projection, nn.Linear) and isinstance(getattr(layer, "mlp", None), nn.Module)
                and hasattr(attention, "config"))
    own = _own_attention(attention) if standard else None
    if not standard or (reads is not None and own is None):
        yield
        return
    kept = attention.config, projection, layer.mlp
    config = copy.copy(attention.config)  # the layer's own, so that the other layers keep their attention
    config._attn_implementation = READS_ONLY
    attention.config, attention.quadrant_reads, attention.quadrant_attention = config, reads, own
    attention.o_proj = _AtReads(projection, reads, projection.out_features)
    layer.mlp = _AtReads(layer.mlp, reads)
    try:
        yield
    finally:
        attention.config, attention.o_proj, layer.mlp = kept
        del attention.quadrant_reads, attention.quadrant_attention
