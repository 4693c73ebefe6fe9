"""The prefix pass's last decoder layer reduced to what is read of it: its keys and values.

Nothing reads a prefix's own outputs. The suffix pass reads the prefix's keys and values at every layer, and
the prefix's hidden states after the last layer go only to a logit that is thrown away. In the last layer
those keys and values come from its input, before its attention; the attention itself, its output projection
and the MLP after it produce nothing that is read. So for the prefix pass the last layer's attention is
replaced by one that returns zeros without computing, and its output projection and MLP by modules that
return zeros: the cache gets the same keys and values to the bit, and a check skips most of a layer over
every prefix token (a fifth of the bench model's 4-layer prefix, under 3% of a 32-layer 7B model's). The
self-check that guards the fast path compares this pass with full forwards, so a family whose layers do not
take the replacement falls back like any other inexact prefix.

Every family's text decoder is transformers' standard shape (`get_decoder().layers`, each with `self_attn`,
`self_attn.o_proj` and `mlp`, the attention chosen by its config's `_attn_implementation`); a model that is
not is run whole. The model is changed for the duration of one forward, on the thread that runs every
forward of it (the app's model thread, an engine's worker).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from transformers import AttentionInterface

KEYS_ONLY = "quadrant_keys_only"


def _no_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  attention_mask: torch.Tensor | None, **kwargs) -> tuple[torch.Tensor, None]:
    """Zeros in the shape transformers' attention functions return ([batch, queries, heads, head width]),
    computed from nothing: the keys and values are already in the cache."""
    batch, heads, queries, _ = query.shape
    return query.new_zeros(batch, queries, heads, value.shape[-1]), None


AttentionInterface.register(KEYS_ONLY, _no_attention)


class _Zeros(nn.Module):
    """Zeros of the shape a layer would return (`width` features, or its input's), computed from nothing."""

    def __init__(self, width: int | None = None):
        super().__init__()
        self.width = width

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden.new_zeros(*hidden.shape[:-1], self.width or hidden.shape[-1])


@contextmanager
def last_layer_keys_only(model: nn.Module) -> Iterator[None]:
    """Within the block, `model`'s last decoder layer computes its keys and values only (see the module)."""
    layers = getattr(model.get_decoder(), "layers", None)
    layer = layers[-1] if layers else None
    attention = getattr(layer, "self_attn", None)
    projection = getattr(attention, "o_proj", None)
    if not (isinstance(projection, nn.Linear) and isinstance(getattr(layer, "mlp", None), nn.Module)
            and hasattr(attention, "config")):
        yield
        return
    kept = attention.config, projection, layer.mlp
    config = copy.copy(attention.config)  # the layer's own, so that the other layers keep their attention
    config._attn_implementation = KEYS_ONLY
    attention.config, attention.o_proj, layer.mlp = config, _Zeros(projection.out_features), _Zeros()
    try:
        yield
    finally:
        attention.config, attention.o_proj, layer.mlp = kept
