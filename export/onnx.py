"""`quadrant export onnx`: a model (LoRA merged first) as a set of files ONNX Runtime serves with no
PyTorch checkpoint, built around the runtime's two-pass fast path.

What an export folder holds (README, "Export"):
- `vision.onnx`: the family's vision graph, pixels (and, for Idefics3, the pixel mask) -> projected image
  features [images, tokens, hidden];
- `decoder.onnx`: ONE decoder graph, (inputs_embeds, attention_mask [B, 1, Q, P+Q] additive,
  position_ids, read_index [B, R], past key/values per layer [B, kv_heads, P, head_dim]) -> (logits at
  the read positions [B, R, vocab], present key/values). With P = 0 it is the prefix pass (and a plain full
  forward); with the prefix's key/values it is the packed suffix pass;
- `*.onnx.data`: the graphs' weights as external data (always, so a 7B model's 14 GB fit past
  protobuf's 2 GB limit the same way a tiny model's do);
- `embeddings.safetensors`: the token embedding matrix as the model's embedding module computes it (so a
  family that scales embeddings, such as Gemma3, is exact), gathered with numpy at run time;
- the processor's files (tokenizer, processor config, chat template) and `config.json`, so the runtime
  rebuilds the processor offline;
- `quadrant_onnx.json`: the manifest (its format and reader: `quadrant.backends.onnx_format`).

Why the mask is a 4-D additive input rather than segment ids built into the graph: one input then
expresses every attention pattern the runtime needs (causal prefix, Gemma3's bidirectional image block,
the block-diagonal packed suffixes that see the prefix, text-only prompts that see only themselves), the
graph stays free of data-dependent mask construction, and the runtime builds the very mask the PyTorch
fast path builds (`quadrant.backends.packing`), so both paths share one definition of the packing.

The export is validated before it is kept: ONNX Runtime's margins on the fast path (prefix, packed
suffixes, text-only) against the PyTorch fast path and a plain Hugging Face forward, refused above 1e-4
in float32. float16 is held to 5e-2, the tolerance of the PyTorch backend's half-precision self-check:
fp16 keeps 11 significant bits (relative rounding about 5e-4 per operation), and through a decoder's
layers that moves logits of magnitude 10-30 by about 1e-2, so a tighter bound would refuse correct
exports while 5e-2 still catches a wrong mask or a misplaced image (errors of 1e-1 and more).
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers.cache_utils import Cache, DynamicLayer

from quadrant import __version__
from quadrant.errors import ModelError, OptionError, UnsupportedModelError, one_line, require
from quadrant.backends.onnx_format import FORMAT, MANIFEST_NAME, OnnxManifest, decoder_names, write_manifest
from quadrant.backends import BACKENDS, load_model
from quadrant.loading import LoadedModel, ModelSpec, resolve_source

DTYPES = {"float32": torch.float32, "float16": torch.float16}
TOLERANCE = {"float32": 1e-4, "float16": 5e-2}
DEFAULT_OPSET = 18
VISION, DECODER, EMBEDDINGS = "vision.onnx", "decoder.onnx", "embeddings.safetensors"
# Example sizes for tracing: at least 2 and all different, or the exporter fixes an axis or merges two
EXAMPLE = {"batch": 3, "query": 11, "past": 13, "reads": 5, "images": 2}


def export_onnx(model: str, adapter: str | None, out_dir: str | Path, dtype: str = "float32",
                opset: int = DEFAULT_OPSET, log: Callable[[str], None] = print) -> OnnxManifest:
    """Export, validate, and move into out_dir only if the validation passes; return the manifest."""
    require("onnxruntime", "onnx")
    require("onnxscript", "onnx")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OptionError(f"{out} is not empty; choose a new --out folder")
    if dtype not in DTYPES:
        raise OptionError(f"unknown export dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if opset < DEFAULT_OPSET:
        raise OptionError(f"--opset {opset}: torch.onnx's exporter writes opset {DEFAULT_OPSET} or newer")
    spec = ModelSpec(model=model, adapter=adapter, device="cpu", dtype="float32")
    _, source, adapter_dir, _ = resolve_source(spec)
    loaded = load_model(spec)
    family = loaded.family
    if not family.onnx_exportable:
        raise UnsupportedModelError(f"the {family.name} family cannot be exported to ONNX: {family.onnx_refusal}")
    if loaded.answer_tokens is None:  # the validation compares margins, which need them
        raise UnsupportedModelError(f"cannot export {model}: {loaded.answer_tokens_problem}")
    merge_error = None if adapter_dir is None else _check_merge(loaded, source, adapter_dir, log)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        manifest = _write_export(loaded, source, adapter_dir, partial, dtype, opset, log)
        manifest = _validate(loaded, partial, manifest, log)
        manifest.validation["merged_vs_unmerged"] = merge_error
        write_manifest(partial, manifest)
        out.mkdir(parents=True, exist_ok=True)
        for item in partial.iterdir():
            item.rename(out / item.name)
        partial.rmdir()
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return manifest


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
    vision_io = _export_vision(loaded, model, out / VISION, torch_dtype, opset, log)
    decoder_io, text = _export_decoder(loaded, model, out / DECODER, torch_dtype, opset, log)
    _save_embeddings(model, out / EMBEDDINGS)
    loaded.processor.save_pretrained(out)
    model.config.save_pretrained(out)
    text["image_token_id"] = loaded.family.image_token_id(model.config)
    return OnnxManifest(
        family=loaded.family.name,
        dtype=dtype,
        opset=opset,
        source={"model": source, "adapter": adapter_dir, "fingerprint": loaded.fingerprint},
        files={"vision": VISION, "decoder": DECODER, "embeddings": EMBEDDINGS},
        sizes={p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file() and p.name != MANIFEST_NAME},
        graphs={"vision": vision_io, "decoder": decoder_io},
        text=text,
        answer_tokens=loaded.answer_tokens.to_json(),
        prompt=loaded.prompt,
        generation=dataclasses.asdict(loaded.generation),
        versions=_versions(),
        format=FORMAT,
    )


# -- the two graphs -----------------------------------------------------------------------------------


class _VisionGraph(torch.nn.Module):
    """The family's `image_features` as a module with positional tensor inputs, for the exporter."""

    def __init__(self, model, family, names: list[str]):
        super().__init__()
        self.model, self.family, self.names = model, family, names

    def forward(self, pixel_values, *extra):
        return self.family.image_features(self.model, pixel_values, **dict(zip(self.names[1:], extra, strict=True)))


class _DecoderGraph(torch.nn.Module):
    """The language model on input embeddings and past key/values, with the LM head applied only at the
    read positions (so the prefix pass does not pay for a vocabulary-wide projection of every token)."""

    def __init__(self, model):
        super().__init__()
        self.decoder = model.get_decoder()
        self.head = model.get_output_embeddings()
        text = model.config.get_text_config()
        self.layers = text.num_hidden_layers
        self.softcap = getattr(text, "final_logit_softcapping", None)

    def forward(self, inputs_embeds, attention_mask, position_ids, read_index, *past):
        cache = Cache(layers=[_PastLayer(past[2 * i], past[2 * i + 1]) for i in range(self.layers)])
        hidden = self.decoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                              position_ids=position_ids, cache=cache, use_cache=True).last_hidden_state
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



def _export_vision(loaded: LoadedModel, model, path: Path, dtype: torch.dtype, opset: int, log) -> dict:
    family = loaded.family
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 256, (60, 72, 3), dtype=np.uint8)) for _ in range(EXAMPLE["images"])]
    rendered = family.render(loaded.processor, loaded.wrap("Is there a pleural effusion?"), True)
    encoded = family.encode(loaded.processor, [rendered] * len(images), images)
    inputs = family.vision_inputs(encoded)
    inputs = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in inputs.items()}
    names = list(inputs)
    graph = _VisionGraph(model, family, names)
    dynamic = ({0: "images"},) + ((tuple({0: "images"} for _ in names[1:]),) if names[1:] else ())  # (x, *extra)
    _export(graph, tuple(inputs.values()), path, names, ["image_features"], dynamic, opset, log)
    with torch.no_grad():
        features = graph(*inputs.values())
    return {"inputs": [_io(n, ["images", *v.shape[1:]], v.dtype) for n, v in inputs.items()],
            "outputs": [_io("image_features", ["images", *features.shape[1:]], features.dtype)]}


def _export_decoder(loaded: LoadedModel, model, path: Path, dtype: torch.dtype, opset: int, log) -> tuple[dict, dict]:
    text = model.config.get_text_config()
    layers = text.num_hidden_layers
    kv_heads = text.num_key_value_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    b, q, p, r = (EXAMPLE[k] for k in ("batch", "query", "past", "reads"))
    causal = torch.ones(q, p + q, dtype=torch.bool).tril(diagonal=p)
    mask = torch.zeros(b, 1, q, p + q, dtype=dtype).masked_fill(~causal, torch.finfo(dtype).min)
    example = (
        torch.randn(b, q, text.hidden_size, dtype=dtype),
        mask,
        torch.arange(p, p + q)[None].repeat(b, 1),
        torch.arange(r)[None].repeat(b, 1),
        *[torch.randn(b, kv_heads, p, head_dim, dtype=dtype) for _ in range(2 * layers)],
    )
    inputs, outputs = decoder_names(layers)
    dynamic = ({0: "batch", 1: "query"}, {0: "batch", 2: "query", 3: "total"}, {0: "batch", 1: "query"},
               {0: "batch", 1: "reads"}, tuple({0: "batch", 2: "past"} for _ in range(2 * layers)))
    _export(_DecoderGraph(model), example, path, inputs, outputs, dynamic, opset, log)
    kv = ["batch", kv_heads, "past", head_dim]
    io = {
        "inputs": [_io("inputs_embeds", ["batch", "query", text.hidden_size], dtype),
                   _io("attention_mask", ["batch", 1, "query", "past+query"], dtype),
                   _io("position_ids", ["batch", "query"], torch.int64),
                   _io("read_index", ["batch", "reads"], torch.int64)]
                  + [_io(n, kv, dtype) for n in inputs[4:]],
        "outputs": [_io("logits", ["batch", "reads", "vocab"], dtype)]
                   + [_io(n, ["batch", kv_heads, "past+query", head_dim], dtype) for n in outputs[1:]],
    }
    sizes = {"layers": layers, "kv_heads": kv_heads, "head_dim": head_dim, "hidden": text.hidden_size,
             "vocab": model.get_input_embeddings().weight.shape[0],
             # the mask does not apply a sliding window: exact only for positions inside it
             "sliding_window": getattr(text, "sliding_window", None)}
    return io, sizes


def _export(module: torch.nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], dynamic,
            opset: int, log) -> None:
    import contextlib
    import io
    import logging
    import warnings

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # e.g. "torchvision is not installed" per export
    started = time.perf_counter()
    chatter = io.StringIO()  # the exporter prints its progress; keep the command's output readable
    try:
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, args, dynamo=True, opset_version=opset, input_names=inputs,
                                        output_names=outputs, dynamic_shapes=dynamic, verbose=False)
            program.save(str(path), external_data=True)
    except Exception as exc:  # the exporter's errors are long; one line and the cause for QUADRANT_DEBUG
        reason = str(exc).split("## Exception summary")[-1]  # the exporter leads with generic advice
        raise ModelError(f"torch.onnx could not export {path.name}: {one_line(RuntimeError(reason), 400)}") from exc
    log(f"exported {path.name} in {time.perf_counter() - started:.1f} s")


def _io(name: str, shape: list, dtype: torch.dtype) -> dict:
    return {"name": name, "shape": [d if isinstance(d, str) else int(d) for d in shape],
            "dtype": str(dtype).replace("torch.", "")}


def _save_embeddings(model, path: Path) -> None:
    """The embedding module's output for every token id: its weight times whatever scale it applies."""
    from safetensors.torch import save_file

    embed = model.get_input_embeddings()
    with torch.no_grad():
        table = embed(torch.arange(embed.weight.shape[0]))
    save_file({"embeddings": table.contiguous()}, str(path))


# -- validation ---------------------------------------------------------------------------------------


def _validate(loaded: LoadedModel, directory: Path, manifest: OnnxManifest, log) -> OnnxManifest:
    """ONNX Runtime on CPU against the PyTorch fast path and a plain forward, on two studies (one of
    them not square) with three phrasings each and a text-only prompt; refused above the tolerance."""
    write_manifest(directory, manifest)  # the loader reads what it will ship
    onnx_loaded = load_model(ModelSpec(model=str(directory), device="cpu"))
    requests = _probe_requests(loaded)
    ort = BACKENDS.get("onnx")(onnx_loaded).margins(requests)
    torch_scorer = BACKENDS.get("torch")(loaded)
    fast = torch_scorer.margins(requests)
    plain = [torch_scorer.full_forward_margins([r.rendered], None if r.image is None else [r.image])[0]
             for r in requests]
    log(f"validation ({manifest.dtype}, ONNX Runtime {onnx_loaded.extra['provider']}):")
    log("  prompt  path           ONNX Runtime     PyTorch   plain HF   |diff|")
    vs_torch = vs_plain = 0.0
    for index, (o, t, p) in enumerate(zip(ort, fast, plain, strict=True)):
        vs_torch, vs_plain = max(vs_torch, abs(o.margin - t.margin)), max(vs_plain, abs(o.margin - p))
        log(f"  {index:6d}  {o.path:13s}  {o.margin:+11.6f}  {t.margin:+10.6f}  {p:+9.6f}   {abs(o.margin - p):.1e}")
    tolerance = TOLERANCE[manifest.dtype]
    log(f"  largest difference: {vs_torch:.2e} vs the PyTorch fast path, {vs_plain:.2e} vs a plain forward "
        f"(limit {tolerance:g})")
    worst = max(vs_torch, vs_plain)
    if not worst <= tolerance:  # NaN fails too
        raise ModelError(f"ONNX Runtime's margins differ from PyTorch's by {worst:.2g} (> {tolerance:g} in "
                         f"{manifest.dtype}); the export was not kept")
    paths = sorted({o.path for o in ort})
    return dataclasses.replace(manifest, validation={
        "prompts": len(requests), "paths": paths, "max_diff_vs_torch": vs_torch, "max_diff_vs_plain": vs_plain,
        "tolerance": tolerance, "provider": onnx_loaded.extra["provider"]})


def _probe_requests(loaded: LoadedModel) -> list:
    from quadrant.backends.base import ScoreRequest

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
