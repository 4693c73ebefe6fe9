"""The fast path: the image and everything before the question run once per study, and all phrasings run
as one batch on that prefix's KV cache (SPEC, Performance).

The shared prefix is the longest common prefix of the tokenized with-image prompts, found on token ids
(tokenizing a prefix string on its own can merge differently at the boundary). Studies whose prefixes
have the same length share one prefix call, so a dataset batch costs one vision pass per study and two
forwards in all. Families whose image attention is not causal (PaliGemma's prefix-LM) encode the image
once and run one batched full forward instead; a self-check on first use compares the cached path with a
full forward and falls back to the batched path above 1e-4, because attention semantics cannot be seen
from outside.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..answers import margins_from_logits
from .base import ScoreRequest, ScoreResult, group_by_image
from .torch_common import TorchScorer

log = logging.getLogger(__name__)

# Within fp32 rounding the cached path is exact (measured ~3e-7); half precision rounds both paths
# differently by ~1e-2, so the check there only catches gross attention differences.
SELF_CHECK_TOLERANCE = {torch.float32: 1e-4}
HALF_PRECISION_TOLERANCE = 5e-2
PREFIX = "prefix-shared"
BATCHED = "batched"


@dataclass
class _Study:
    """One study's with-image prompts, tokenized, with the length of their shared prefix."""

    indices: list[int]
    inputs: dict[str, torch.Tensor]
    prefix_len: int

    @property
    def lengths(self) -> torch.Tensor:
        return self.inputs["attention_mask"].sum(dim=1)


class PrefixSharedScorer(TorchScorer):
    name = "torch"

    def __init__(self, loaded, max_batch: int = 32):
        super().__init__(loaded, max_batch=max_batch)
        self._prefix_ok: bool | None = None  # decided by the self-check on first use

    def margins(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        results: list[ScoreResult | None] = [None] * len(requests)
        groups = group_by_image(requests)
        text_only = groups.pop(None, [])
        for chunk in _chunks(text_only, self.max_batch):
            margins = self.full_forward_margins([requests[i].rendered for i in chunk], None)
            for index, margin in zip(chunk, margins):
                results[index] = ScoreResult(margin=margin, path=BATCHED)
        use_prefix = self.prefix_ok()
        studies = [
            self._tokenize_study(requests, chunk, use_prefix)
            for indices in groups.values()
            for chunk in _chunks(indices, self.max_batch)
        ]
        for batch in self._batches(studies, by_prefix=use_prefix):
            margins = self._prefix_margins(batch) if use_prefix else self._batched_margins(batch)
            path = PREFIX if use_prefix else BATCHED
            for index, margin in zip([i for s in batch for i in s.indices], margins):
                results[index] = ScoreResult(margin=margin, path=path)
        return results

    # -- the self-check ------------------------------------------------------------------------------

    def prepare(self) -> None:
        self.prefix_ok()

    def prefix_ok(self) -> bool:
        """Whether the cached prefix reproduces a full forward on this model (checked once)."""
        if self._prefix_ok is None:
            self._prefix_ok = self.loaded.family.prefix_cache_exact and self._self_check()
        return self._prefix_ok

    def _self_check(self) -> bool:
        rng = np.random.default_rng(0)
        image = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        family, processor = self.loaded.family, self.loaded.processor
        texts = ["Is there a pleural effusion?", "Does this chest radiograph show fluid in the pleural space?"]
        rendered = [
            family.render(processor, self.loaded.wrap(t), True, self.loaded.chat_template) for t in texts
        ]
        study = self._tokenize_study([ScoreRequest(r, image) for r in rendered], [0, 1], for_prefix=True)
        if study.prefix_len < 1:
            return False
        cached = self._prefix_margins([study])
        full = self.full_forward_margins(rendered, [image, image])
        error = max(abs(a - b) for a, b in zip(cached, full))
        if error > SELF_CHECK_TOLERANCE.get(self.loaded.dtype, HALF_PRECISION_TOLERANCE):
            log.warning("prefix cache is off by %.2g on this model; using batched full forwards", error)
            return False
        return True

    # -- preparing studies ---------------------------------------------------------------------------

    def _tokenize_study(self, requests: Sequence[ScoreRequest], indices: list[int], for_prefix: bool) -> _Study:
        """Tokenize one study's prompts; for the cached path, with the image preprocessed only once."""
        image = requests[indices[0]].image
        rendered = [requests[i].rendered for i in indices]
        inputs = None
        if for_prefix:
            inputs = self.loaded.family.encode_one_image(self.loaded.processor, rendered, image)
        if inputs is None:
            inputs = self.loaded.family.encode(self.loaded.processor, rendered, [image] * len(indices))
        inputs = {k: self._to_device(k, v) for k, v in inputs.items()}
        return _Study(indices=indices, inputs=inputs, prefix_len=self._shared_prefix_len(inputs))

    def _shared_prefix_len(self, inputs: dict[str, torch.Tensor]) -> int:
        """Longest common token prefix, leaving every row at least one token of its own, and covering
        every image token (else the prefix cannot hold the image and the batched path must run)."""
        ids, lengths = inputs["input_ids"], inputs["attention_mask"].sum(dim=1)
        shortest = int(lengths.min())
        same = (ids[:, :shortest] == ids[:1, :shortest]).all(dim=0)
        differing = torch.nonzero(~same)
        common = int(differing[0]) if len(differing) else shortest
        prefix_len = min(common, shortest - 1)
        image_token = self.loaded.family.image_token_id(self.loaded.model)
        if image_token is not None:
            positions = torch.nonzero(ids[0] == image_token)
            if len(positions) and int(positions[-1]) >= prefix_len:
                return 0
        return prefix_len

    def _batches(self, studies: list[_Study], by_prefix: bool):
        """Studies packed into batches of at most max_batch rows; with the cache, equal prefix lengths."""
        if by_prefix:
            studies = sorted(studies, key=lambda s: s.prefix_len)
        batch: list[_Study] = []
        rows = 0
        for study in studies:
            n = len(study.indices)
            fits = rows + n <= self.max_batch and (not by_prefix or not batch or batch[0].prefix_len == study.prefix_len)
            if batch and not fits:
                yield batch
                batch, rows = [], 0
            batch.append(study)
            rows += n
        if batch:
            yield batch

    # -- the two computations ------------------------------------------------------------------------

    @torch.inference_mode()
    def _prefix_margins(self, batch: list[_Study]) -> list[float]:
        """One prefix forward for the batch's studies, then one forward over every suffix on its cache."""
        model, family = self.loaded.model, self.loaded.family
        prefix_len = batch[0].prefix_len
        prefix_inputs = {
            "input_ids": torch.cat([s.inputs["input_ids"][:1, :prefix_len] for s in batch]),
            "attention_mask": torch.cat([s.inputs["attention_mask"][:1, :prefix_len] for s in batch]),
        }
        for key in family.forward_keys:
            if key in ("input_ids", "attention_mask") or key not in batch[0].inputs:
                continue
            per_study = [s.inputs[key][:1] for s in batch]
            if key in family.prefix_keys:
                per_study = [t[:, :prefix_len] for t in per_study]
            prefix_inputs[key] = torch.cat(per_study)
        cache = model(**prefix_inputs, use_cache=True, logits_to_keep=1).past_key_values
        repeats = torch.tensor([len(s.indices) for s in batch], device=self.loaded.device)
        cache.batch_select_indices(torch.repeat_interleave(torch.arange(len(batch), device=repeats.device), repeats))

        suffix_width = max(int(s.lengths.max()) for s in batch) - prefix_len
        suffix_inputs = {
            "input_ids": _stack_suffixes(batch, "input_ids", prefix_len, suffix_width, pad=0),
            "attention_mask": torch.cat(
                [
                    torch.ones(int(repeats.sum()), prefix_len, dtype=torch.long, device=self.loaded.device),
                    _stack_suffixes(batch, "attention_mask", prefix_len, suffix_width, pad=0),
                ],
                dim=1,
            ),
        }
        for key in family.prefix_keys:
            suffix_inputs[key] = _stack_suffixes(batch, key, prefix_len, suffix_width, pad=0)
        logits = model(**suffix_inputs, cache=cache, use_cache=True).logits
        last = torch.cat([s.lengths for s in batch]) - 1 - prefix_len
        rows = torch.arange(logits.shape[0], device=logits.device)
        return margins_from_logits(logits[rows, last], self.loaded.answer_tokens).tolist()

    @torch.inference_mode()
    def _batched_margins(self, batch: list[_Study]) -> list[float]:
        """Each study's prompts as one padded full forward (exact for every family)."""
        margins: list[float] = []
        for study in batch:
            logits = self.loaded.model(**study.inputs).logits
            margins += self.last_token_margins(logits, study.lengths - 1)
        return margins


def _stack_suffixes(batch: list[_Study], key: str, start: int, width: int, pad: int) -> torch.Tensor:
    """Every row's tokens from `start` on, right-padded to `width`, all studies stacked."""
    rows = []
    for study in batch:
        part = study.inputs[key][:, start : start + width]
        if part.shape[1] < width:
            filler = torch.full((part.shape[0], width - part.shape[1]), pad, dtype=part.dtype, device=part.device)
            part = torch.cat([part, filler], dim=1)
        rows.append(part)
    return torch.cat(rows)


def _chunks(items: list[int], size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]
