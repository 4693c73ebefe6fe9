"""What every PyTorch backend shares: the sources they run and how they load them (`TorchSources`), and the
forward steps of the fast path on a transformers model (`TorchSteps`)."""

from __future__ import annotations

import copy

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer, DynamicSlidingWindowLayer

from ..answers import margins_from_logits
from ..errors import OptionError
from ..loading import LoadedModel, ModelSource, ModelSpec, load_transformers
from .fast_path import ForwardSteps, Prefix
from .last_layer import last_layer_reads_only
from .onnx_format import is_export
from .packing import PackedBatch


#: the most prefix tokens in one forward on a CPU. An evidence map's 64 copies of a 580-token LLaVA-1.5 prefix
#: took 73 ms a copy in forwards of 32 and 52-56 ms in forwards of 3 to 13 (2-core EPYC): a batch's activations
#: outgrow the caches and its matrix products slow down per token. 4096 holds 7 such prefixes, and any
#: number up to 32 of the demo model's (ONNX Runtime's time was the same at every batch size)
CPU_PREFIX_TOKENS = 4096

#: cache layers whose update rebinds new tensors rather than writing into the old (see `TorchSteps.fork`)
_REBINDING_LAYERS = (DynamicLayer, DynamicSlidingWindowLayer)


class TorchSources:
    """The PyTorch backends run any transformers checkpoint (a directory or a hub id): every source but an
    ONNX export folder."""

    source_kind = "a PyTorch (transformers) model"

    @classmethod
    def serves(cls, source: str) -> bool:
        return not is_export(source)

    @classmethod
    def load(cls, spec: ModelSpec, resolved: ModelSource) -> LoadedModel:
        return load_transformers(spec, resolved)


class TorchSteps(ForwardSteps):
    """The fast path's forwards on the loaded transformers model, with its own KV cache."""

    def __init__(self, loaded: LoadedModel):
        if not isinstance(loaded, LoadedModel):
            raise OptionError(f"a PyTorch backend runs a PyTorch model, and {loaded.name} was loaded for "
                              f"--backend {loaded.backend}")
        super().__init__(loaded)
        self.model = loaded.model
        if loaded.device.type == "cpu":
            self.prefix_tokens = CPU_PREFIX_TOKENS

    def place(self, key: str, value: torch.Tensor) -> torch.Tensor:
        """On the model's device, pixel values in the model's dtype."""
        value = value.to(self.loaded.device)
        if key == "pixel_values":
            value = value.to(self.loaded.dtype)
        return value

    @torch.inference_mode()
    def run_prefix(self, tokens: dict[str, torch.Tensor], images: list[dict[str, torch.Tensor]]) -> Prefix:
        inputs = dict(tokens)
        for key in images[0]:
            inputs[key] = torch.cat([i[key] for i in images])
        with last_layer_reads_only(self.model.get_decoder()):  # nothing reads the prefix's own outputs
            return Prefix(inputs, self.model(**inputs, use_cache=True, logits_to_keep=1).cache)

    @torch.inference_mode()
    def run_suffixes(self, prefix: Prefix, laid: PackedBatch) -> list[float]:
        """All suffixes in one forward on the prefix's cache, packed: the arithmetic of one row per suffix,
        but the cache is neither copied nor repeated and no compute goes to padding."""
        device, family = self.loaded.device, self.loaded.family
        position_ids = family.packed_position_ids(self.loaded.config, prefix.inputs, laid.positions.to(device),
                                                  laid.sees_prefix.to(device))
        keep, rows, columns = _read_at(laid.answer_at, device)
        reads = keep[None].expand(len(laid.input_ids), -1)
        with last_layer_reads_only(self.model.get_decoder(), reads):
            logits = self.model(input_ids=laid.input_ids.to(device), position_ids=position_ids,
                                attention_mask=laid.mask.to(device), cache=prefix.cache, use_cache=True,
                                logits_to_keep=keep).logits
        return margins_from_logits(logits[rows, columns], self.loaded.answer_tokens).tolist()

    @torch.inference_mode()
    def run_full(self, inputs: dict[str, torch.Tensor], one_image: bool) -> list[float]:
        if one_image:
            inputs = self.loaded.family.with_shared_image(self.model, inputs) or inputs
        last = (inputs["attention_mask"].sum(dim=1) - 1).tolist()
        keep, rows, columns = _read_at(list(enumerate(last)), self.loaded.device)
        logits = self.model(**inputs, logits_to_keep=keep).logits
        return margins_from_logits(logits[rows, columns], self.loaded.answer_tokens).tolist()

    @torch.inference_mode()
    def generate(self, inputs: dict[str, torch.Tensor], max_new_tokens: int) -> list[int]:
        output = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=self.loaded.processor.tokenizer.pad_token_id)
        return output[0, inputs["input_ids"].shape[1] :].tolist()

    def nbytes(self, prefix: Prefix) -> int:
        """The key/values' bytes, layer by layer."""
        tensors = ((getattr(layer, "keys", None), getattr(layer, "values", None))
                   for layer in getattr(prefix.cache, "layers", ()))
        return sum(t.nbytes for pair in tensors for t in pair if isinstance(t, torch.Tensor))

    def fork(self, prefix: Prefix) -> Prefix:
        """A forward appends to the cache in place: the kept one must stay the bare prefix. Transformers'
        dynamic layers grow by rebinding their keys and values to new tensors (torch.cat), never by writing
        into the ones they hold, so fresh layer objects sharing the kept tensors suffice, and a check does not
        copy the prefix's key/values (1 ms a copy on the bench model, the size of the prefix on a GPU). Any
        other cache is copied whole."""
        cache = prefix.cache
        if type(cache) is not DynamicCache or any(type(layer) not in _REBINDING_LAYERS for layer in cache.layers):
            return Prefix(prefix.inputs, copy.deepcopy(cache))
        forked = copy.copy(cache)
        forked.layers = [copy.copy(layer) for layer in cache.layers]
        return Prefix(prefix.inputs, forked)


def _read_at(answer_at: list[tuple[int, int]],
             device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where a forward's answers are read, (row, position) each, as `logits_to_keep` (the distinct positions:
    transformers keeps the same ones in every row) and each answer's (row, column) among the logits kept.

    The language model head is the widest matrix a forward multiplies by (152k outputs on Qwen2-VL, 257k on
    PaliGemma): applied at every position of a batch of 600-token prompts it costs 8% of a 7B forward
    and gigabytes of logits, of which a margin reads one position a prompt."""
    positions = sorted({position for _, position in answer_at})
    column = {position: index for index, position in enumerate(positions)}
    rows = torch.tensor([row for row, _ in answer_at], device=device)
    columns = torch.tensor([column[position] for _, position in answer_at], device=device)
    return torch.tensor(positions, device=device), rows, columns
