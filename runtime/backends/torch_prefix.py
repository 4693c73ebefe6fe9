"""`--backend torch`: the fast path (`fast_path.py`) on PyTorch, exact to fp32 rounding (README,
Performance), with a self-check that holds a half-precision model to float32's standard."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import torch

from ..loading import LoadedModel
from .fast_path import EXACT_TOLERANCE, HALF_PRECISION_TOLERANCE, FastPathScorer
from .torch_common import TorchSources, TorchSteps

log = logging.getLogger(__name__)


class PrefixSharedScorer(TorchSources, FastPathScorer):
    name = "torch"
    default = True
    steps_type = TorchSteps

    def self_check(self) -> bool:
        """Run one study both ways and keep the cached path only where it reproduces the full forward.

        In float32 the two ways agree to rounding (~3e-7), so 1e-4 catches any difference in what attends to
        what. In half precision both ways round differently by up to ~1e-2 on real logits, and a tolerance
        wide enough for that (5e-2) let through a packed mask without its causal part, whose margins were off
        by 0.0015-0.026: rounding hides a semantic error of the same size. So a half-precision model is
        checked twice. First the semantics, with no rounding to hide behind: the same prompts, the same
        code, the weights cast to float32 for the check and cast back (bf16 and fp16 values are exact in
        float32, so the model is bit for bit what it was), against 1e-4. Then its own kernels, in its own
        dtype, against the wide tolerance, for failures only half precision has (overflow, a kernel that
        mishandles the mask). A device without room for a float32 copy of the weights skips the first
        check, with a warning. Comparing the two ways in half precision against the spread the full path
        shows under a harmless change (another batch composition or padding) was measured too and not
        used: on the CPU that spread was 0 (to 1e-4, in bf16) while the two ways differed by up to 5e-4, so it
        gives no yardstick for rounding.
        """
        if self.loaded.dtype == torch.float32:
            return self._paths_agree(EXACT_TOLERANCE)
        try:
            with self._in_float32(self.loaded) as exact:
                semantics_ok = type(self)(exact, max_batch=self.max_batch)._paths_agree(EXACT_TOLERANCE)
        except torch.cuda.OutOfMemoryError:
            log.warning("no room to run the fast path's self-check in float32; checking it in %s only",
                        self.loaded.dtype)
            semantics_ok = True
        return semantics_ok and self._paths_agree(HALF_PRECISION_TOLERANCE)

    @staticmethod
    @contextmanager
    def _in_float32(loaded: LoadedModel) -> Iterator[LoadedModel]:
        """The loaded model with its half-precision weights and buffers in float32 for a moment, restored
        exactly afterwards (float32 holds every bf16 and fp16 value); other tensors are left as they are.
        In place, as model.float() is (a float32 copy beside the original would need half as much again):
        prepare a scorer before its model serves another thread."""
        tensors = [t for t in (*loaded.model.parameters(), *loaded.model.buffers()) if t.dtype == loaded.dtype]
        try:
            for tensor in tensors:
                tensor.data = tensor.data.float()
            yield replace(loaded, dtype=torch.float32)
        finally:
            for tensor in tensors:
                tensor.data = tensor.data.to(loaded.dtype)
