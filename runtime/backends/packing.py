"""How the fast path lays out a batch: each study's prompts, tokenized, with the length of their shared prefix
(`Study`), and the suffix pass's rows (`pack_batch`): every phrasing's remaining tokens laid end to end in its
study's row after the prefix, under a block mask, plus the standalone (text-only) prompts, each attending to
itself alone.

Both backends run the packed batch exactly as laid out here (PyTorch on its KV cache, ONNX Runtime on the
exported decoder's past key/values), so the packing, the positions and the mask have one definition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Study:
    """One study's with-image prompts, tokenized, with the length of their shared prefix. `indices` are the
    requests' places in the caller's list; `reuse_key` marks a content-free reference and `study_key` a study's
    picture, whose prefixes may be kept across calls."""

    indices: list[int]
    inputs: dict[str, torch.Tensor]
    prefix_len: int
    reuse_key: str | None = None
    study_key: str | None = None

    @property
    def lengths(self) -> torch.Tensor:
        return self.inputs["attention_mask"].sum(dim=1)


@dataclass
class PackedRow:
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
class PackedBatch:
    """A batch's suffix pass laid out on the host: one padded row per study (token ids, positions, whether
    each token sees the prefix, the additive block mask) and where each margin is read, (row, position), in
    margin order: every study's suffixes, then the standalone prompts."""

    input_ids: torch.Tensor
    positions: torch.Tensor
    sees_prefix: torch.Tensor
    mask: torch.Tensor
    answer_at: list[tuple[int, int]]

    def read_index(self) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """The answer positions as a [rows, most reads in a row] index (short rows repeat position 0) and,
        for each margin in order, its (row, slot) in that index: for a backend that computes logits only
        where answers are read."""
        reads: list[list[int]] = [[] for _ in range(len(self.input_ids))]
        slots = []
        for row, end in self.answer_at:
            slots.append((row, len(reads[row])))
            reads[row].append(end)
        width = max(len(r) for r in reads)
        return torch.tensor([r + [0] * (width - len(r)) for r in reads]), slots


def pack_batch(batch: list[Study], standalone: list[list[int]], dtype: torch.dtype) -> PackedBatch:
    """Each study's suffixes end to end in its row after the prefix; standalone prompts in the shortest rows."""
    prefix_len = batch[0].prefix_len
    packed = [_pack_suffixes(s, prefix_len, row) for row, s in enumerate(batch)]
    placed = [_shortest(packed).add(ids, sees_prefix=False) for ids in standalone]
    width = max(len(p.ids) for p in packed)
    return PackedBatch(
        input_ids=torch.stack([p.padded_ids(width) for p in packed]),
        positions=torch.stack([p.padded_positions(width, prefix_len) for p in packed]),
        sees_prefix=torch.stack([p.padded_sees_prefix(width) for p in packed]),
        mask=torch.stack([p.mask(width, prefix_len, dtype) for p in packed]),
        answer_at=[(i, end) for i, p in enumerate(packed) for end in p.ends[: p.attached]] + placed,
    )


def _pack_suffixes(study: Study, prefix_len: int, row: int) -> PackedRow:
    packed = PackedRow(row=row)
    for index, length in enumerate(study.lengths.tolist()):
        packed.add(study.inputs["input_ids"][index, prefix_len:length].tolist(), sees_prefix=True)
    return packed


def _shortest(rows: list[PackedRow]) -> PackedRow:
    return min(rows, key=lambda r: len(r.ids))
