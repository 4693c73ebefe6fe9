"""`quadrant export onnx`: a model (LoRA merged first) as a set of files ONNX Runtime serves with no
PyTorch checkpoint, built around the runtime's two-pass fast path.

What an export folder holds (README, "Export"):
- `vision.onnx`: the family's vision graph (`Family.image_features`), its inputs as `Family.vision_inputs`
  names them -> projected image features (and, for Qwen3-VL, the deepstack features);
- `decoder.onnx`: ONE decoder graph, (inputs_embeds, attention_mask [B, 1, Q, P+Q] additive, position_ids
  ([B, Q], or [3, B, Q] for M-RoPE), read_index [B, R], [deepstack_embeds,] past key/values per layer
  [B, kv_heads, P, head_dim]) -> (logits at the read positions [B, R, vocab], present key/values). With
  P = 0 it is the prefix pass (and a plain full forward); with the prefix's key/values it is the packed
  suffix pass;
- `*.onnx.data`: the graphs' weights as external data (always, so a 7B model's 14 GB fit past
  protobuf's 2 GB limit the same way a tiny model's do);
- `embeddings.safetensors`: the token embedding matrix as the model's embedding module computes it (so a
  family that scales embeddings, such as Gemma3, is exact), gathered with numpy at run time, and any other
  weight the runtime needs beside the graphs (`Family.onnx_extras`);
- the processor's files (tokenizer, processor config, chat template) and `config.json`, so the runtime
  rebuilds the processor offline;
- `validation.json`, when verdicts were compared (`--validate-on`): the export against its PyTorch source,
  study by study;
- `quadrant_onnx.json`: the manifest (its format and reader: `quadrant.backends.onnx_format`).

Why the mask is a 4-D additive input rather than built inside the graph: one input then expresses every
attention pattern the runtime needs (causal prefix, Gemma3's bidirectional image block, PaliGemma's
bidirectional prompt, the block-diagonal packed suffixes that see the prefix, text-only prompts that see
only themselves), the graph stays free of data-dependent mask construction, and the runtime builds the very
mask the PyTorch fast path builds (`quadrant.backends.packing`), so both paths share one definition of the
packing. Positions are inputs for the same reason: Qwen's multimodal rotary positions depend on where the
image sits and how large it is, which the host knows.

The export is validated before it is kept: ONNX Runtime's margins on the fast path (prefix, packed
suffixes, text-only) against the PyTorch fast path and a plain Hugging Face forward, refused above 1e-4
in float32. float16 is held to 5e-2, the tolerance of the PyTorch backend's half-precision self-check:
fp16 keeps 11 significant bits (relative rounding about 5e-4 per operation), and through a decoder's
layers that moves logits of magnitude 10-30 by about 1e-2, so a tighter bound would refuse correct
exports while 5e-2 still catches a wrong mask or a misplaced image (errors of 1e-1 and more). A quantized
export's margins move by more than any such bound, by design: it is judged on verdicts instead
(`export/verdicts.py`), and refused below `--min-agreement`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import logging
import math
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers.cache_utils import Cache, DynamicLayer

from quadrant import __version__
from quadrant.backends import BACKENDS, ScoreRequest, load_model
from quadrant.backends.last_layer import last_layer_reads_only
from quadrant.backends.onnx_format import (
    EMBEDDINGS,
    FORMAT,
    MANIFEST_NAME,
    QUANTIZATIONS,
    VALIDATION_NAME,
    OnnxManifest,
    decoder_names,
    is_export,
    read_manifest,
    write_manifest,
)
from quadrant.errors import ModelError, OptionError, UnsupportedModelError, one_line, require
from quadrant.loading import LoadedModel, ModelSpec, resolve_source

from .quantize import quantize_graphs
from .verdicts import ValidationSet, validate_verdicts

DTYPES = {"float32": torch.float32, "float16": torch.float16}
TOLERANCE = {"float32": 1e-4, "float16": 5e-2}
DEFAULT_OPSET = 18
DEFAULT_MIN_AGREEMENT = 0.98
VISION, DECODER = "vision.onnx", "decoder.onnx"
# Example sizes for tracing: at least 2 and all different, or the exporter fixes an axis or merges two
EXAMPLE = {"batch": 3, "query": 11, "past": 13, "reads": 5, "images": 2}


def export_onnx(model: str, adapter: str | None, out_dir: str | Path, dtype: str = "float32",
                quantize: str | None = None, opset: int = DEFAULT_OPSET, validate_on: ValidationSet | None = None,
                min_agreement: float = DEFAULT_MIN_AGREEMENT, device: str = "cpu",
                log: Callable[[str], None] = print) -> OnnxManifest:
    """Export, validate, and move into out_dir only if every validation passes; return the manifest.

    `quantize` (int8: dynamic, weights and activations; int4: weights only) shrinks the float32 graphs with
    onnxruntime's own quantizers. A half-precision or quantized export changes margins by design, so it
    needs `validate_on`: its verdicts are compared with its PyTorch source's and it is kept only if at least
    `min_agreement` of them fall in the same quadrant. `device` is where the PyTorch model is traced and both
    sides of every validation run (cpu, or cuda for a model too large for the CPU)."""
    require("onnxruntime", "onnx")
    require("onnxscript", "onnx")
    out = Path(out_dir)
    _check_options(out, dtype, quantize, opset, validate_on, min_agreement)
    base = _existing_export(model, quantize)
    if base is not None:  # quantize the graphs of a float32 export already made and validated
        model, adapter = base[1].source["model"], base[1].source["adapter"]
    spec = ModelSpec(model=model, adapter=adapter, device=device, dtype="float32", backend="torch")
    source = resolve_source(spec)
    loaded = load_model(spec)
    family = loaded.family
    if base is not None and loaded.fingerprint != base[1].source["fingerprint"]:
        raise ModelError(f"the model {model} that export was made from has changed since (its fingerprint differs); "
                         "export it again from the model itself")
    if not family.onnx_exportable:
        raise UnsupportedModelError(f"the {family.name} family cannot be exported to ONNX: {family.onnx_refusal}")
    if loaded.answer_tokens is None:  # the validation compares margins, which need them
        raise UnsupportedModelError(f"cannot export {model}: {loaded.answer_tokens_problem}")
    merge_error = None if source.adapter is None else _check_merge(loaded, source.source, source.adapter, log)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        if base is None:  # traced, and held to 1e-4 (float32) or 5e-2 (float16) before anything else
            manifest = _write_export(loaded, source.source, source.adapter, partial, dtype, opset, log)
            manifest = dataclasses.replace(manifest, validation=_validate(loaded, partial, manifest, device, log))
        else:  # the float32 export's graphs and its validation, as they were
            manifest = _copy_export(*base, partial)
        manifest.validation["merged_vs_unmerged"] = merge_error
        if quantize:
            unquantized = dict(manifest.sizes)
            quantize_graphs(partial, [VISION, DECODER], quantize, log)
            manifest = dataclasses.replace(manifest, quantization=quantize, sizes=_sizes(partial),
                                           unquantized_sizes=unquantized)
            manifest.validation["quantized"] = _validate(loaded, partial, manifest, device, log)
        if validate_on is not None:
            write_manifest(partial, manifest)  # the runtime reads what it will ship
            verdicts = validate_verdicts(loaded, partial, validate_on, manifest.precision, min_agreement, device, log)
            manifest.validation["verdicts"] = verdicts
            manifest = dataclasses.replace(manifest, sizes=_sizes(partial))
        write_manifest(partial, manifest)
        out.mkdir(parents=True, exist_ok=True)
        for item in partial.iterdir():
            item.rename(out / item.name)
        partial.rmdir()
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return manifest


def _existing_export(model: str, quantize: str | None) -> tuple[Path, OnnxManifest] | None:
    """The manifest of the export `--model` names, where it names one: only a float32 export may be
    quantized further (tracing again would cost minutes and give the same graphs)."""
    path = Path(model).expanduser()
    if not is_export(path):
        return None
    base = read_manifest(path)
    if not quantize or base.precision != "fp32":
        raise OptionError(f"{model} is already an ONNX export ({base.precision}): export from the model itself, or "
                          "give a float32 export with --quantize to quantize its graphs")
    return path, base


def _copy_export(directory: Path, base: OnnxManifest, out: Path) -> OnnxManifest:
    """An export's files copied as they are (its validation report aside: the new export gets its own)."""
    for name in base.sizes:
        if name != VALIDATION_NAME:
            shutil.copy2(directory / name, out / name)
    validation = {k: v for k, v in base.validation.items() if k != "verdicts"}
    return dataclasses.replace(base, sizes=_sizes(out), validation=validation, versions=_versions())


def _check_options(out: Path, dtype: str, quantize: str | None, opset: int, validate_on, min_agreement: float):
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OptionError(f"{out} is not empty; choose a new --out folder")
    if dtype not in DTYPES:
        raise OptionError(f"unknown export dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise OptionError(f"unknown quantization {quantize!r}; choose one of {', '.join(QUANTIZATIONS)}")
    if quantize and dtype != "float32":
        raise OptionError(f"--quantize {quantize} starts from the float32 graphs: drop --dtype {dtype}")
    if (quantize or dtype != "float32") and validate_on is None:
        raise OptionError(f"a {quantize or dtype} export changes margins by design, so its verdicts must be checked "
                          "against the PyTorch model's: give --validate-on MANIFEST (or phantoms)")
    if not 0 <= min_agreement <= 1:
        raise OptionError(f"--min-agreement is a share of verdicts, between 0 and 1; got {min_agreement}")
    if opset < DEFAULT_OPSET:
        raise OptionError(f"--opset {opset}: torch.onnx's exporter writes opset {DEFAULT_OPSET} or newer")


def _check_merge(loaded: LoadedModel, source: str, adapter_dir: str, log) -> float:
    """The adapter was merged at load; merge's own parity check proves it answers like the adapter."""
    from quadrant.export.merge import PARITY_TOLERANCE, parity

    error = parity(loaded, source, adapter_dir)
    log(f"LoRA merged: largest logit difference merged vs unmerged {error:.2e} (limit {PARITY_TOLERANCE})")
    if error > PARITY_TOLERANCE:
        raise ModelError(f"merged logits differ from the adapter's by {error:.2g} (> {PARITY_TOLERANCE}); not exported")
    return error


def _write_export(loaded: LoadedModel, source: str, adapter_dir: str | None, out: Path, dtype: str, opset: int,
                  log) -> OnnxManifest:
    torch_dtype = DTYPES[dtype]
    model = copy.deepcopy(loaded.model).to(torch_dtype).eval() if torch_dtype != torch.float32 else loaded.model
    with loaded.family.exporting(model):
        _export_vision(loaded, model, out / VISION, torch_dtype, opset, log)
        text = _export_decoder(loaded, model, out / DECODER, torch_dtype, opset, log)
    _save_embeddings(loaded, model, out / EMBEDDINGS)
    loaded.processor.save_pretrained(out)
    model.config.save_pretrained(out)
    text["image_token_id"] = loaded.family.image_token_id(model.config)
    return OnnxManifest(
        family=loaded.family.name,
        dtype=dtype,
        opset=opset,
        source={"model": source, "adapter": adapter_dir, "fingerprint": loaded.fingerprint},
        files={"vision": VISION, "decoder": DECODER, "embeddings": EMBEDDINGS},
        sizes=_sizes(out),
        graphs={"vision": _signature(out / VISION), "decoder": _signature(out / DECODER)},
        text=text,
        answer_tokens=loaded.answer_tokens.to_json(),
        prompt=loaded.prompt,
        generation=dataclasses.asdict(loaded.generation),
        versions=_versions(),
        format=FORMAT,
    )


def _sizes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST_NAME}


# -- the two graphs -----------------------------------------------------------------------------------


class _VisionGraph(torch.nn.Module):
    """The family's `image_features` as a module with positional tensor inputs, for the exporter."""

    def __init__(self, model, family, names: list[str]):
        super().__init__()
        self.model, self.family, self.names = model, family, names

    def forward(self, *inputs):
        features = self.family.image_features(self.model, **dict(zip(self.names, inputs, strict=True)))
        return tuple(features.values()) if isinstance(features, dict) else features


class _DecoderGraph(torch.nn.Module):
    """The language model on input embeddings and past key/values, with its last layer's attention output,
    output projection and MLP, and the LM head, computed only at the read positions (no pass reads any other
    position's output, and every pass needs every position's keys and values: `last_layer_reads_only`).
    Qwen3-VL's deepstack features come in dense, [layers, B, Q, hidden], zero away from image tokens."""

    def __init__(self, model, deepstack: bool):
        super().__init__()
        self.decoder = model.get_decoder()
        self.head = model.get_output_embeddings()
        text = model.config.get_text_config()
        self.layers = text.num_hidden_layers
        self.softcap = getattr(text, "final_logit_softcapping", None)
        self.deepstack = deepstack

    def forward(self, inputs_embeds, attention_mask, position_ids, read_index, *rest):
        extra = {}
        if self.deepstack:
            deepstack, *rest = rest
            extra["deepstack_visual_embeds"] = list(deepstack)
        cache = Cache(layers=[_PastLayer(rest[2 * i], rest[2 * i + 1]) for i in range(self.layers)])
        with last_layer_reads_only(self.decoder, read_index):
            hidden = self.decoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                  position_ids=position_ids, cache=cache, use_cache=True, **extra).last_hidden_state
        picked = torch.gather(hidden, 1, read_index[:, :, None].expand(-1, -1, hidden.shape[-1]))
        logits = self.head(picked)
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return (logits, *[t for layer in cache.layers for t in (layer.keys, layer.values)])


class _PastLayer(DynamicLayer):
    """A cache layer filled from graph inputs; its length is read from the key shape, never from a
    data-dependent emptiness test (which would fix the past length at the example's when traced)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        super().__init__()
        self.keys, self.values, self.device, self.is_initialized = keys, values, keys.device, True

    def get_seq_length(self) -> int:
        return self.keys.shape[-2]


def _export_vision(loaded: LoadedModel, model, path: Path, dtype: torch.dtype, opset: int, log) -> None:
    family = loaded.family
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 256, (60, 72, 3), dtype=np.uint8)) for _ in range(EXAMPLE["images"])]
    rendered = family.render(loaded.processor, loaded.wrap("Is there a pleural effusion?"), True)
    encoded = family.encode(loaded.processor, [rendered] * len(images), images)
    inputs = family.vision_inputs(model.config, encoded)
    inputs = {k: (v.to(dtype) if v.is_floating_point() else v).to(loaded.device) for k, v in inputs.items()}
    names = list(inputs)
    axes = family.vision_axes(model.config)
    graph = _VisionGraph(model, family, names)
    with torch.no_grad():
        traced = graph(*inputs.values())
    outputs = ["image_features", "deepstack_features"][: len(traced) if isinstance(traced, tuple) else 1]
    dynamic = (tuple(axes.get(name, {}) for name in names),)  # forward(*inputs): one structure for the varargs
    try:
        _export(graph, tuple(inputs.values()), path, names, outputs, dynamic, opset, log)
    except ModelError as exc:
        if family.name != "generic":
            raise
        raise ModelError(f"model type {family.model_type!r} has no family file, and the generic family's vision graph "
                         f"(its own get_image_features) does not trace with free image sizes: {exc}") from exc


def _export_decoder(loaded: LoadedModel, model, path: Path, dtype: torch.dtype, opset: int, log) -> dict:
    text = model.config.get_text_config()
    family = loaded.family
    layers = text.num_hidden_layers
    kv_heads = text.num_key_value_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    deepstack = family.deepstack_layers(model.config)
    b, q, p, r = (EXAMPLE[k] for k in ("batch", "query", "past", "reads"))
    causal = torch.ones(q, p + q, dtype=torch.bool).tril(diagonal=p)
    mask = torch.zeros(b, 1, q, p + q, dtype=dtype).masked_fill(~causal, torch.finfo(dtype).min)
    positions = torch.arange(p, p + q)[None].repeat(b, 1)
    position_axes = {0: "batch", 1: "query"}
    if family.position_streams:
        positions = positions[None].repeat(family.position_streams, 1, 1)
        position_axes = {1: "batch", 2: "query"}
    extra, extra_axes = [], []
    if deepstack:
        extra, extra_axes = [torch.randn(deepstack, b, q, text.hidden_size, dtype=dtype)], [{1: "batch", 2: "query"}]
    example = (
        torch.randn(b, q, text.hidden_size, dtype=dtype),
        mask,
        positions,
        torch.arange(r)[None].repeat(b, 1),
        *extra,
        *[torch.randn(b, kv_heads, p, head_dim, dtype=dtype) for _ in range(2 * layers)],
    )
    example = tuple(t.to(loaded.device) for t in example)
    inputs, outputs = decoder_names(layers, deepstack=bool(deepstack))
    rest = (*extra_axes, *({0: "batch", 2: "past"} for _ in range(2 * layers)))  # forward's *rest, one structure
    dynamic = ({0: "batch", 1: "query"}, {0: "batch", 2: "query", 3: "total"}, position_axes, {0: "batch", 1: "reads"},
               rest)
    _export(_DecoderGraph(model, deepstack=bool(deepstack)), example, path, inputs, outputs, dynamic, opset, log)
    return {"layers": layers, "kv_heads": kv_heads, "head_dim": head_dim, "hidden": text.hidden_size,
            "vocab": model.get_input_embeddings().weight.shape[0], "position_streams": family.position_streams,
            "deepstack_layers": deepstack,
            # the mask does not apply a sliding window: exact only for positions inside it
            "sliding_window": getattr(text, "sliding_window", None)}


def _export(module: torch.nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], dynamic,
            opset: int, log) -> None:
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # e.g. "torchvision is not installed" per export
    started = time.perf_counter()
    chatter = io.StringIO()  # the exporter prints its progress (and, when it fails, the graph it traced so far)
    try:
        with (torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(chatter),
              contextlib.redirect_stderr(chatter)):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, args, dynamo=True, opset_version=opset, input_names=inputs,
                                        output_names=outputs, dynamic_shapes=dynamic, verbose=False)
            program.save(str(path), external_data=True)
    except Exception as exc:  # the exporter's errors are long; one line and the cause for QUADRANT_DEBUG
        reason = str(exc).split("## Exception summary")[-1]  # the exporter leads with generic advice
        raise ModelError(f"torch.onnx could not export {path.name}: {one_line(RuntimeError(reason), 400)}") from exc
    log(f"exported {path.name} in {time.perf_counter() - started:.1f} s")


def _signature(path: Path) -> dict:
    """A graph's inputs and outputs as the saved file declares them: names, shapes (a named axis varies),
    element types. The runtime feeds and reads the graph by these names."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph

    def describe(value) -> dict:
        tensor = value.type.tensor_type
        shape = [d.dim_param or d.dim_value for d in tensor.shape.dim]
        return {"name": value.name, "shape": shape, "dtype": onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name}

    return {"inputs": [describe(v) for v in graph.input], "outputs": [describe(v) for v in graph.output]}


def _save_embeddings(loaded: LoadedModel, model, path: Path) -> None:
    """The embedding module's output for every token id (its weight times whatever scale it applies), and
    the family's other runtime weights."""
    from safetensors.torch import save_file

    embed = model.get_input_embeddings()
    with torch.no_grad():
        table = embed(torch.arange(embed.weight.shape[0]))
    extras = {k: v.detach().contiguous() for k, v in loaded.family.onnx_extras(model).items()}
    save_file({"embeddings": table.contiguous(), **extras}, str(path))


# -- validation ---------------------------------------------------------------------------------------


def _validate(loaded: LoadedModel, directory: Path, manifest: OnnxManifest, device: str, log) -> dict:
    """ONNX Runtime against the PyTorch fast path and a plain forward, on two studies (one of them not
    square) with three phrasings each and a text-only prompt; refused above the tolerance in float32 and
    float16. A quantized export's differences are reported (and judged on verdicts). The paths it records
    say whether the float32 graphs' self-check found the fast path exact: what a quantized export inherits."""
    write_manifest(directory, manifest)  # the loader reads what it will ship
    onnx_loaded = load_model(ModelSpec(model=str(directory), device=device))
    requests = _probe_requests(loaded)
    ort = BACKENDS.get("onnx")(onnx_loaded).margins(requests)
    torch_scorer = BACKENDS.get("torch")(loaded)
    fast = torch_scorer.margins(requests)
    plain = [torch_scorer.full_forward_margins([r.rendered], None if r.image is None else [r.image])[0]
             for r in requests]
    log(f"validation ({manifest.precision}, ONNX Runtime {onnx_loaded.extra['provider']}):")
    log("  prompt  path           ONNX Runtime     PyTorch   plain HF   |diff|")
    for index, (o, t, p) in enumerate(zip(ort, fast, plain, strict=True)):
        log(f"  {index:6d}  {o.path:13s}  {o.margin:+11.6f}  {t.margin:+10.6f}  {p:+9.6f}   {abs(o.margin - p):.1e}")
    vs_torch = _largest(abs(o.margin - t.margin) for o, t in zip(ort, fast, strict=True))
    vs_plain = _largest(abs(o.margin - p) for o, p in zip(ort, plain, strict=True))
    tolerance = None if manifest.quantization else TOLERANCE[manifest.dtype]
    bound = "judged on verdicts" if tolerance is None else f"limit {tolerance:g}"
    log(f"  largest difference: {vs_torch:.2e} vs the PyTorch fast path, {vs_plain:.2e} vs a plain forward ({bound})")
    worst = max(vs_torch, vs_plain)
    if tolerance is not None and not worst <= tolerance:  # NaN fails too
        raise ModelError(f"ONNX Runtime's margins differ from PyTorch's by {worst:.2g} (> {tolerance:g} in "
                         f"{manifest.dtype}); the export was not kept")
    if not np.isfinite(worst):
        raise ModelError(f"ONNX Runtime's margins are not finite on the {manifest.precision} export; not kept")
    paths = sorted({o.path for o in ort})
    return {"prompts": len(requests), "paths": paths, "max_diff_vs_torch": vs_torch, "max_diff_vs_plain": vs_plain,
            "tolerance": tolerance, "provider": onnx_loaded.extra["provider"]}


def _largest(differences) -> float:
    """The largest difference, NaN if any is (max() would pass over a NaN that is not first)."""
    differences = list(differences)
    return math.nan if any(math.isnan(d) for d in differences) else max(differences)


def _probe_requests(loaded: LoadedModel) -> list[ScoreRequest]:
    rng = np.random.default_rng(7)
    family, processor = loaded.family, loaded.processor
    questions = ["Is there a pleural effusion?", "Does this chest film show fluid in the pleural space?",
                 "Any evidence of cardiomegaly?"]
    requests = []
    for shape in ((64, 64, 3), (60, 72, 3)):
        image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
        requests += [ScoreRequest(family.render(processor, loaded.wrap(q), True, loaded.chat_template), image)
                     for q in questions]
    if family.accepts_imageless:
        requests.append(ScoreRequest(family.render(processor, loaded.wrap(questions[0]), False,
                                                   loaded.chat_template), None))
    return requests


def _versions() -> dict:
    import onnx
    import onnxruntime
    import onnxscript
    import transformers

    return {"quadrant": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "onnx": onnx.__version__, "onnxscript": onnxscript.__version__, "onnxruntime": onnxruntime.__version__}
