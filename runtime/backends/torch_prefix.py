"""The fast path: a whole check in two forwards, exact to fp32 rounding (SPEC, Performance).

1. The prefix pass: the image and everything before the question, once per study. The shared prefix is
   the longest common prefix of the tokenized with-image prompts, found on token ids (tokenizing a prefix
   string on its own can merge differently at the boundary); studies whose prefixes have the same length
   share this call, so a dataset batch costs one vision pass per study.
2. The suffix pass, on the prefix's KV cache: every phrasing's remaining tokens laid end to end in its
   study's row, under a block mask, plus the text-only prompts, each attending to itself alone. Positions
   restart at the prefix for each suffix; a family whose rotary positions are not one per token (Qwen's
   M-RoPE, where text after the image is offset by a rope delta) maps them in `packed_position_ids`, and
   one that flattens images into patches or tiles says which belong to one prompt (`prefix_image_inputs`).

Families whose image attention is not causal (PaliGemma's prefix-LM) run one batched full forward instead.
A self-check when the scorer is prepared compares both passes with full forwards and falls back to the
batched path above 1e-4 (in float32, also for a half-precision model), because attention semantics cannot be
seen from outside.
"""

from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from PIL import Image

from ..answers import margins_from_logits
from ..errors import one_line
from ..kept import kept
from ..loading import LoadedModel
from .base import ScoreRequest, ScoreResult, group_by_image
from .torch_common import TorchScorer

log = logging.getLogger(__name__)

# Within fp32 rounding the cached path is exact (measured ~3e-7); half precision rounds both paths
# differently by ~1e-2, so a half-precision model's semantics are checked in float32 (see _self_check)
# and its own kernels only for gross differences.
SELF_CHECK_TOLERANCE = {torch.float32: 1e-4}
HALF_PRECISION_TOLERANCE = 5e-2
PREFIX = "prefix-shared"
PACKED = "packed"  # a text-only prompt scored inside the suffix pass, attending to itself alone
REUSED = "prefix-reused"  # a content-free reference whose prefix was computed once, in an earlier call
BATCHED = "batched"
#: prefixes of content-free reference images kept per model (one per image size where the family resizes
#: dynamically; a fixed-size family needs one per mode)
REUSED_PREFIXES = 8
REUSED_STUDIES = 64  # tokenized reference prompts kept (a few hundred token ids each)


@dataclass
class _Study:
    """One study's with-image prompts, tokenized, with the length of their shared prefix."""

    indices: list[int]
    inputs: dict[str, torch.Tensor]
    prefix_len: int
    reuse_key: str | None = None

    @property
    def lengths(self) -> torch.Tensor:
        return self.inputs["attention_mask"].sum(dim=1)


class PrefixSharedScorer(TorchScorer):
    name = "torch"

    def __init__(self, loaded, max_batch: int = 32):
        super().__init__(loaded, max_batch=max_batch)
        self._prefix_ok: bool | None = None  # decided by the self-check in prepare()
        self._reused: OrderedDict[tuple, object] = OrderedDict()  # (reuse key, prefix ids) -> KV cache
        self._reused_studies: OrderedDict[tuple, _Study] = OrderedDict()  # (reuse key, prompts) -> tokenized

    def margins(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        results: list[ScoreResult | None] = [None] * len(requests)
        groups = group_by_image(requests)
        text_only = groups.pop(None, [])
        use_prefix = self.prefix_ok()
        studies = [
            self._tokenize_study(requests, chunk, use_prefix)
            for indices in groups.values()
            for chunk in _chunks(indices, self.max_batch)
        ]
        reused = [s for s in studies if use_prefix and s.reuse_key is not None]
        batches = list(self._batches([s for s in studies if not (use_prefix and s.reuse_key)], by_prefix=use_prefix))
        for study in reused:
            for index, margin in zip(study.indices, self._reused_prefix_margins(study), strict=True):
                results[index] = ScoreResult(margin=margin, path=REUSED)
        if use_prefix and batches:
            # text-only prompts ride along in the suffix pass, each seeing only itself
            shares = _split(self._tokenize_text_only(requests, text_only), len(batches))
        else:
            shares = [[] for _ in batches]
            for chunk in _chunks(text_only, self.max_batch):
                margins = self.full_forward_margins([requests[i].rendered for i in chunk], None)
                for index, margin in zip(chunk, margins, strict=True):
                    results[index] = ScoreResult(margin=margin, path=BATCHED)
        for batch, share in zip(batches, shares, strict=True):
            if use_prefix:
                margins = self._prefix_margins(batch, [ids for _, ids in share])
                paths = [PREFIX] * (len(margins) - len(share)) + [PACKED] * len(share)
            else:
                margins = self._batched_margins(batch)
                paths = [BATCHED] * len(margins)
            indices = [i for s in batch for i in s.indices] + [i for i, _ in share]
            for index, margin, path in zip(indices, margins, paths, strict=True):
                results[index] = ScoreResult(margin=margin, path=path)
        return results

    def _tokenize_text_only(self, requests: Sequence[ScoreRequest], indices: list[int]) -> list[tuple[int, list[int]]]:
        if not indices:
            return []
        inputs = self.loaded.family.encode(self.loaded.processor, [requests[i].rendered for i in indices], None)
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        return [(i, inputs["input_ids"][row, :n].tolist()) for row, (i, n) in enumerate(zip(indices, lengths, strict=True))]

    # -- the self-check ------------------------------------------------------------------------------

    def prepare(self) -> None:
        self.prefix_ok()

    def prefix_ok(self) -> bool:
        """Whether the cached prefix reproduces a full forward on this model (checked once)."""
        if self._prefix_ok is None:
            self._prefix_ok = self.loaded.family.prefix_cache_exact and self._self_check()
        return self._prefix_ok

    def _self_check(self) -> bool:
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
        if self.loaded.dtype in SELF_CHECK_TOLERANCE:
            return self._paths_agree(SELF_CHECK_TOLERANCE[self.loaded.dtype])
        try:
            with self._in_float32(self.loaded) as exact:
                semantics_ok = type(self)(exact, max_batch=self.max_batch)._paths_agree(
                    SELF_CHECK_TOLERANCE[torch.float32])
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

    def _paths_agree(self, tolerance: float) -> bool:
        """The cached path against full forwards on two phrasings of one study and a text-only prompt."""
        rng = np.random.default_rng(0)
        image = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        family, processor = self.loaded.family, self.loaded.processor
        texts = ["Is there a pleural effusion?", "Does this chest radiograph show fluid in the pleural space?"]
        rendered = [
            family.render(processor, self.loaded.wrap(t), True, self.loaded.chat_template) for t in texts
        ]
        requests = [ScoreRequest(r, image) for r in rendered]
        if family.accepts_imageless:
            requests.append(ScoreRequest(family.render(processor, self.loaded.wrap(texts[0]), False,
                                                       self.loaded.chat_template), None))
        study = self._tokenize_study(requests, [0, 1], for_prefix=True)
        if study.prefix_len < 1:
            return False
        text_only = [ids for _, ids in self._tokenize_text_only(requests, list(range(2, len(requests))))]
        model_type = getattr(self.loaded.model.config, "model_type", "?")
        try:
            cached = self._prefix_margins([study], text_only)
        except (RuntimeError, ValueError, IndexError, TypeError, KeyError) as exc:
            log.warning("the prefix-shared path cannot run on model type %r (%s); using batched full forwards",
                        model_type, one_line(exc))
            return False
        full = self.full_forward_margins(rendered, [image, image])
        if text_only:
            full += self.full_forward_margins([requests[2].rendered], None)
        error = max(abs(a - b) for a, b in zip(cached, full, strict=True))
        if error > tolerance:
            log.warning("prefix cache is off by %.2g on model type %r in %s (its attention or positions differ "
                        "from a causal prefix's); using batched full forwards", error, model_type, self.loaded.dtype)
            return False
        return True

    # -- preparing studies ---------------------------------------------------------------------------

    def _tokenize_study(self, requests: Sequence[ScoreRequest], indices: list[int], for_prefix: bool) -> _Study:
        """Tokenize one study's prompts; for the cached path, with the image preprocessed only once. A
        content-free reference (a `reuse_key`) is tokenized once per set of prompts and kept: its image is
        the same every time, so preprocessing it again would only repeat the same pixels."""
        first = requests[indices[0]]
        rendered = [requests[i].rendered for i in indices]
        def make() -> _Study:
            return self._tokenize(rendered, first, for_prefix)

        if for_prefix and first.reuse_key is not None:
            study = kept(self._reused_studies, (first.reuse_key, tuple(rendered)), make, REUSED_STUDIES)
        else:
            study = make()
        return replace(study, indices=indices)

    def _tokenize(self, rendered: list[str], first: ScoreRequest, for_prefix: bool) -> _Study:
        """The prompts' tensors and shared prefix length (indices are the caller's to fill in)."""
        once = self.loaded.family.encode_one_image(self.loaded.processor, rendered, first.image) if for_prefix else None
        if once is None:
            inputs = self.encode(rendered, [first.image] * len(rendered))
        else:
            inputs = {k: self._to_device(k, v) for k, v in once.items()}
        return _Study(indices=[], inputs=inputs, reuse_key=first.reuse_key,
                      prefix_len=self._shared_prefix_len(inputs, image_only=first.reuse_key is not None))

    def _shared_prefix_len(self, inputs: dict[str, torch.Tensor], image_only: bool = False) -> int:
        """Longest common token prefix, leaving every row at least one token of its own, and covering
        every image token (else the prefix cannot hold the image and the batched path must run).

        `image_only` ends the prefix right after the last image token instead: a reused reference's prefix
        then holds the template's opening and the image alone, the same whatever the question, so one kept
        prefix serves every question asked of that reference image."""
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
            if len(positions) and image_only:
                return int(positions[-1]) + 1
        return prefix_len

    def _batches(self, studies: list[_Study], by_prefix: bool):
        """Studies in batches of at most max_batch prompts; with the cache, of equal prefix lengths."""
        key = self._prefix_key
        if by_prefix:
            studies = sorted(studies, key=key)
        batch: list[_Study] = []
        rows = 0
        for study in studies:
            n = len(study.indices)
            fits = rows + n <= self.max_batch and (not by_prefix or not batch or key(batch[0]) == key(study))
            if batch and not fits:
                yield batch
                batch, rows = [], 0
            batch.append(study)
            rows += n
        if batch:
            yield batch

    def _prefix_key(self, study: _Study) -> tuple:
        """Studies share a prefix call when their prefixes have the same length and their image tensors
        stack (tiled images can differ in their number of tiles)."""
        images = self.loaded.family.prefix_image_inputs(self.loaded.model, study.inputs)
        return study.prefix_len, tuple(sorted((k, tuple(v.shape[1:])) for k, v in images.items()))

    # -- the two computations ------------------------------------------------------------------------

    @torch.inference_mode()
    def _prefix_margins(self, batch: list[_Study], standalone: list[list[int]]) -> list[float]:
        """One prefix forward for the batch's studies, then one forward over all their suffixes, packed."""
        return self._suffix_margins(batch, *self._prefix_cache(batch), standalone)

    @torch.inference_mode()
    def _reused_prefix_margins(self, study: _Study) -> list[float]:
        """A content-free reference's suffixes on a prefix computed once per model and kept: the reference
        image is the same for every study of a size, so its prefix pass is paid once, not per check."""
        ids = study.inputs["input_ids"][0, : study.prefix_len].tolist()
        key = (study.reuse_key, tuple(ids))
        prefix_inputs, cache = kept(self._reused, key, lambda: self._prefix_cache([study]), REUSED_PREFIXES)
        # a forward appends to the cache in place: the kept one must stay the bare prefix
        return self._suffix_margins([study], prefix_inputs, copy.deepcopy(cache), [])

    def _prefix_cache(self, batch: list[_Study]) -> tuple[dict[str, torch.Tensor], object]:
        """The batch's prefix inputs and the KV cache of its shared prefixes (image and chat preamble), one
        row per study."""
        inputs = self._prefix_inputs(batch, batch[0].prefix_len)
        return inputs, self.loaded.model(**inputs, use_cache=True, logits_to_keep=1).past_key_values

    def _suffix_margins(self, batch: list[_Study], prefix_inputs: dict[str, torch.Tensor], cache,
                        standalone: list[list[int]]) -> list[float]:
        """All suffixes of the batch's studies in one forward on their prefix cache, packed.

        Each study's suffixes are laid end to end in one row after its prefix, with a block mask (each
        suffix sees the prefix and itself, causally) and positions restarting at the prefix length. The
        arithmetic is that of one row per suffix, but the cache is neither copied nor repeated and no
        compute goes to padding, which is most of what the suffix pass would otherwise cost. Standalone
        sequences (text-only prompts) are packed in too, seeing neither the prefix nor each other, at
        positions from 0: a whole forward saved. Margins come back suffixes first, then standalone ones.
        """
        model, device = self.loaded.model, self.loaded.device
        laid = _pack_batch(batch, standalone, self.loaded.dtype)
        position_ids = self.loaded.family.packed_position_ids(model, prefix_inputs, laid.positions.to(device),
                                                              laid.sees_prefix.to(device))
        logits = model(input_ids=laid.input_ids.to(device), position_ids=position_ids,
                       attention_mask=laid.mask.to(device), cache=cache, use_cache=True).logits
        rows, ends = (torch.tensor(column, device=device) for column in zip(*laid.answer_at, strict=True))
        return margins_from_logits(logits[rows, ends], self.loaded.answer_tokens).tolist()

    def _prefix_inputs(self, batch: list[_Study], prefix_len: int) -> dict[str, torch.Tensor]:
        """The shared prefix of each study, with its image tensors, stacked across studies."""
        family, model = self.loaded.family, self.loaded.model
        inputs = {
            key: torch.cat([s.inputs[key][:1, :prefix_len] for s in batch])
            for key in ("input_ids", "attention_mask") + family.prefix_keys
            if key in batch[0].inputs
        }
        images = [family.prefix_image_inputs(model, s.inputs) for s in batch]
        for key in images[0]:
            inputs[key] = torch.cat([i[key] for i in images])
        return inputs

    @torch.inference_mode()
    def _batched_margins(self, batch: list[_Study]) -> list[float]:
        """Each study's prompts as one padded full forward (exact for every family), the image encoded
        once where the family allows."""
        model, family = self.loaded.model, self.loaded.family
        margins: list[float] = []
        for study in batch:
            inputs = family.with_shared_image(model, study.inputs) or study.inputs
            logits = model(**inputs).logits
            margins += self.last_token_margins(logits, study.lengths - 1)
        return margins


@dataclass
class _Packed:
    """One row of the packed suffix pass: sequences laid end to end, which sequence each token belongs
    to, its position within that sequence, whether it sees the prefix, and where each sequence ends."""

    row: int
    ids: list[int] = field(default_factory=list)
    segment: list[int] = field(default_factory=list)
    offset: list[int] = field(default_factory=list)
    sees_prefix: list[bool] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    attached: int = 0  # the first `attached` sequences are suffixes of the prefix

    def add(self, ids: list[int], sees_prefix: bool) -> tuple[int, int]:
        """Append one sequence; returns (row, position of its last token): where its answer is read."""
        segment = len(self.ends)
        self.ids += ids
        self.segment += [segment] * len(ids)
        self.offset += list(range(len(ids)))
        self.sees_prefix += [sees_prefix] * len(ids)
        self.ends.append(len(self.ids) - 1)
        self.attached += sees_prefix
        return self.row, self.ends[-1]

    def padded_ids(self, width: int) -> torch.Tensor:
        return torch.tensor(self.ids + [0] * (width - len(self.ids)))

    def padded_sees_prefix(self, width: int) -> torch.Tensor:
        return torch.tensor(self.sees_prefix + [False] * (width - len(self.ids)))

    def padded_positions(self, width: int, prefix_len: int) -> torch.Tensor:
        positions = [o + (prefix_len if p else 0) for o, p in zip(self.offset, self.sees_prefix, strict=True)]
        return torch.tensor(positions + [prefix_len] * (width - len(self.ids)))

    def mask(self, width: int, prefix_len: int, dtype: torch.dtype) -> torch.Tensor:
        """Additive [1, width, prefix_len + width] mask: a token sees the earlier tokens of its own
        sequence, and the prefix if it is a suffix; padding sees the prefix (an all-hidden row gives NaN)."""
        pad = width - len(self.ids)
        segment = torch.tensor(self.segment + [-1] * pad)
        offset = torch.tensor(self.offset + [0] * pad)
        sees_prefix = torch.tensor(self.sees_prefix + [True] * pad)
        same = (segment[:, None] == segment[None, :]) & (segment[:, None] >= 0)
        causal = offset[None, :] <= offset[:, None]
        visible = torch.cat([sees_prefix[:, None].expand(width, prefix_len), same & causal], dim=1)
        mask = torch.zeros(visible.shape, dtype=dtype)
        mask.masked_fill_(~visible, torch.finfo(dtype).min)
        return mask[None]


@dataclass
class _PackedBatch:
    """A batch's suffix pass laid out on the host: one padded row per study (token ids, positions, whether
    each token sees the prefix, the additive block mask) and where each margin is read, (row, position), in
    margin order: every study's suffixes, then the standalone prompts. Both backends run it as it is."""

    input_ids: torch.Tensor
    positions: torch.Tensor
    sees_prefix: torch.Tensor
    mask: torch.Tensor
    answer_at: list[tuple[int, int]]


def _pack_batch(batch: list[_Study], standalone: list[list[int]], dtype: torch.dtype) -> _PackedBatch:
    """Each study's suffixes end to end in its row after the prefix; standalone prompts in the shortest rows."""
    prefix_len = batch[0].prefix_len
    packed = [_pack_suffixes(s, prefix_len, row) for row, s in enumerate(batch)]
    placed = [_shortest(packed).add(ids, sees_prefix=False) for ids in standalone]
    width = max(len(p.ids) for p in packed)
    return _PackedBatch(
        input_ids=torch.stack([p.padded_ids(width) for p in packed]),
        positions=torch.stack([p.padded_positions(width, prefix_len) for p in packed]),
        sees_prefix=torch.stack([p.padded_sees_prefix(width) for p in packed]),
        mask=torch.stack([p.mask(width, prefix_len, dtype) for p in packed]),
        answer_at=[(i, end) for i, p in enumerate(packed) for end in p.ends[: p.attached]] + placed,
    )


def _pack_suffixes(study: _Study, prefix_len: int, row: int) -> _Packed:
    packed = _Packed(row=row)
    for index, length in enumerate(study.lengths.tolist()):
        packed.add(study.inputs["input_ids"][index, prefix_len:length].tolist(), sees_prefix=True)
    return packed


def _shortest(rows: list[_Packed]) -> _Packed:
    return min(rows, key=lambda r: len(r.ids))


def _split(items: list, parts: int) -> list[list]:
    """items in `parts` contiguous, nearly equal shares."""
    size, extra = divmod(len(items), parts)
    shares, start = [], 0
    for part in range(parts):
        end = start + size + (part < extra)
        shares.append(items[start:end])
        start = end
    return shares


def _chunks(items: list[int], size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]
