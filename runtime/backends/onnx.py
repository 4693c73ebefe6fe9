"""`--backend onnx`: the same two-pass fast path as `torch`, on an export folder's graphs (`quadrant export
onnx`), through ONNX Runtime on CPU, CUDA or TensorRT, with no PyTorch checkpoint.

The scorer subclasses the PyTorch fast path and replaces only its forward steps: studies are tokenized,
grouped, batched and packed by the very same code (`torch_prefix`), and the self-check that compares the
cached path with full forwards runs here too. A forward is: the vision graph once per study; token
embeddings gathered from the exported table with numpy, image features placed at the image tokens; the
decoder graph once over the shared prefixes (past length 0) and once over all suffixes packed end to end
on the prefixes' key/values, under the same 4-D block mask the PyTorch path builds. Logits come back only
at the positions where answers are read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .onnx_format import OnnxManifest, read_manifest

from ..answers import Generation, find_answer_tokens, margins_from_logits
from ..errors import MissingDependencyError, ModelError, OptionError, one_line, require
from ..loading import LoadedModel, ModelSpec, load_processor
from .base import ScoreRequest
from .torch_prefix import (
    HALF_PRECISION_TOLERANCE,
    SELF_CHECK_TOLERANCE,
    PrefixSharedScorer,
    _pack_batch,
)

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
_NUMPY_DTYPES = {"float32": np.float32, "float16": np.float16}


@dataclass
class OnnxModel:
    """What `LoadedModel.model` holds for an export: its sessions, embedding table and manifest."""

    directory: Path
    manifest: OnnxManifest
    config: object  # the source model's transformers config (image token id, for the families' helpers)
    vision: object  # onnxruntime.InferenceSession
    decoder: object
    embeddings: np.ndarray  # [vocab, hidden], what the model's embedding module returns per token id
    eos_token_ids: tuple[int, ...]
    provider: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(_NUMPY_DTYPES[self.manifest.dtype])


def load_export(spec: ModelSpec, name: str, source: str) -> LoadedModel:
    """An export folder as a LoadedModel: processor rebuilt from its own files, sessions on the asked device."""
    from transformers import AutoConfig, GenerationConfig

    from ..families import family_for_config
    from ..fingerprint import fingerprint

    ort = _onnxruntime()
    directory = Path(source)
    manifest = read_manifest(directory)
    if spec.adapter:
        raise OptionError(f"{directory} is an ONNX export with its adapter already merged in; drop --adapter")
    if spec.dtype not in ("auto", manifest.dtype, "float16" if spec.device == "tensorrt" else manifest.dtype):
        raise OptionError(f"{directory} was exported in {manifest.dtype}; --dtype {spec.dtype} needs another export")
    try:
        config = AutoConfig.from_pretrained(directory)
        processor = load_processor(str(directory))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot rebuild the processor from {directory}: {one_line(exc)}") from exc
    family = family_for_config(config)
    if family.name != manifest.family:
        raise ModelError(f"{directory}: manifest says {manifest.family}, config.json says {family.name}")
    family.configure(processor, spec.chat_template)
    processor.tokenizer.padding_side = "right"
    answer_tokens = find_answer_tokens(processor.tokenizer)
    if answer_tokens.to_json() != manifest.answer_tokens:
        raise ModelError(f"{directory}: the tokenizer's answer tokens differ from the exported ones; export again")
    model_fingerprint = fingerprint(directory)
    fp16_engine = spec.device == "tensorrt" and spec.dtype == "float16"
    providers = _providers(ort, spec.device, model_fingerprint, fp16_engine)
    vision, provider = _session(ort, directory / manifest.files["vision"], providers, spec.device)
    decoder, _ = _session(ort, directory / manifest.files["decoder"], providers, spec.device)
    try:
        generation = GenerationConfig.from_pretrained(directory)
        eos = generation.eos_token_id
    except OSError:
        eos = None
    eos = eos if eos is not None else processor.tokenizer.eos_token_id
    model = OnnxModel(
        directory=directory, manifest=manifest, config=config, vision=vision, decoder=decoder,
        embeddings=_embeddings(directory / manifest.files["embeddings"]),
        eos_token_ids=tuple(eos) if isinstance(eos, list) else (eos,), provider=provider,
    )
    half = manifest.dtype == "float16" or fp16_engine
    return LoadedModel(
        model=model, processor=processor, family=family, name=name, fingerprint=model_fingerprint,
        device=torch.device("cpu" if provider == PROVIDERS["cpu"] else "cuda"),
        dtype=torch.float16 if half else torch.float32, answer_tokens=answer_tokens,
        prompt=spec.prompt or manifest.prompt, chat_template=spec.chat_template,
        generation=Generation(**manifest.generation),
        extra={"provider": provider, "source_fingerprint": manifest.source["fingerprint"]},
    )


def _onnxruntime():
    """The onnxruntime module, refused when both the CPU and the GPU wheel are installed: they share the
    module name, so which one answers depends on install order (pip cannot forbid the pair)."""
    from importlib import metadata

    installed = []
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            metadata.version(dist)
            installed.append(dist)
        except metadata.PackageNotFoundError:
            pass
    if len(installed) == 2:
        raise MissingDependencyError("both onnxruntime and onnxruntime-gpu are installed and shadow each other: "
                                     "pip uninstall -y onnxruntime onnxruntime-gpu, then install quadrant[onnx] or "
                                     "quadrant[onnx-gpu], not both")
    return require("onnxruntime", "onnx")


def _providers(ort, device: str, model_fingerprint: str, fp16: bool) -> list:
    """The execution providers for --device, best first; a clear refusal when the asked one is absent."""
    available = ort.get_available_providers()
    if device == "auto":
        return [p for p in (PROVIDERS["cuda"], PROVIDERS["cpu"]) if p in available]
    if device not in PROVIDERS:
        raise OptionError(f"unknown device {device!r} for ONNX Runtime; choose auto, {', '.join(PROVIDERS)}")
    wanted = PROVIDERS[device]
    if wanted not in available:
        hint = ("pip install 'quadrant[onnx-gpu]' (onnxruntime-gpu, in place of onnxruntime) on a machine with "
                "an NVIDIA GPU" + (" and TensorRT's libraries (pip install tensorrt "
                                    "--extra-index-url https://pypi.nvidia.com)" if device == "tensorrt" else ""))
        raise MissingDependencyError(f"--device {device} needs ONNX Runtime's {wanted}, which this onnxruntime lacks "
                                     f"(it has {', '.join(available)}): {hint}")
    if device == "tensorrt":
        root = os.environ.get("QUADRANT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "quadrant")
        cache = Path(root) / "tensorrt" / model_fingerprint.split(":")[-1][:16]
        cache.mkdir(parents=True, exist_ok=True)
        options = {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache), "trt_fp16_enable": fp16}
        return [(wanted, options), PROVIDERS["cuda"], PROVIDERS["cpu"]]
    return [wanted, PROVIDERS["cpu"]] if wanted != PROVIDERS["cpu"] else [wanted]


def _session(ort, path: Path, providers: list, device: str):
    """One session, configured for a CPU shared by two sessions (vision, decoder): each has its own
    thread pool, so pool threads must not spin while the other session works (measured: they fight)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.inter_op_num_threads = 1
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        options.intra_op_num_threads = int(threads)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors for corrupt graphs
        raise ModelError(f"ONNX Runtime cannot load {path} (corrupt or not a graph of this export?): "
                         f"{one_line(exc, 160)}; export the model again") from exc
    ran = session.get_providers()[0]
    first = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
    if device != "auto" and ran != first:
        raise MissingDependencyError(f"--device {device}: ONNX Runtime could not start {first} here (it fell back to "
                                     f"{ran}); check the GPU driver, CUDA and cuDNN libraries")
    return session, ran


def _embeddings(path: Path) -> np.ndarray:
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))["embeddings"]
    except Exception as exc:  # safetensors raises its own error type for a damaged header
        raise ModelError(f"cannot read the embedding table {path}: {one_line(exc)}; export the model again") from exc


class OnnxScorer(PrefixSharedScorer):
    """The PyTorch fast path's batching and packing, with ONNX Runtime doing every forward."""

    name = "onnx"

    def __init__(self, loaded: LoadedModel, max_batch: int = 32):
        if not isinstance(loaded.model, OnnxModel):
            raise OptionError(f"--backend onnx runs an ONNX export, and {loaded.name} is a PyTorch model: run "
                              "`quadrant export onnx --model MODEL --out DIR`, then pass --model DIR")
        super().__init__(loaded, max_batch=max_batch)
        self.onnx: OnnxModel = loaded.model

    def _to_device(self, key: str, value: torch.Tensor) -> torch.Tensor:
        """Inputs stay on the host (ONNX Runtime copies them to its device); pixels in the export's dtype."""
        return value.to(self.loaded.dtype) if key == "pixel_values" else value

    def _self_check(self) -> bool:
        """Cached path against full forwards, both on the graphs, in the export's own dtype. (The PyTorch
        scorer's float32 pass for half precision has no counterpart here: the export's validation already
        compared these graphs' fast path with PyTorch's in float32 before the export was kept.)"""
        return self._paths_agree(SELF_CHECK_TOLERANCE.get(self.loaded.dtype, HALF_PRECISION_TOLERANCE))

    # -- the forward steps of the fast path ------------------------------------------------------------

    def _prefix_cache(self, batch) -> tuple[dict, list[np.ndarray]]:
        """The studies' shared prefixes through the graphs with past length 0: their key/values, one row per
        study (`PrefixSharedScorer._prefix_cache` on the graphs). Each study's image is encoded once."""
        prefix_len = batch[0].prefix_len
        ids = np.stack([s.inputs["input_ids"][0, :prefix_len].numpy() for s in batch])
        family = self.loaded.family
        features = np.concatenate([self._features(family.prefix_image_inputs(self.onnx, s.inputs)) for s in batch])
        positions = np.broadcast_to(np.arange(prefix_len), ids.shape)
        _, present = self._decode(self._embed(ids, features), self._causal_mask(ids, np.ones_like(ids)),
                                  positions, np.full((len(batch), 1), prefix_len - 1), None)
        return {}, present

    def _suffix_margins(self, batch, prefix_inputs: dict, cache: list[np.ndarray],
                        standalone: list[list[int]]) -> list[float]:
        """`PrefixSharedScorer._suffix_margins` on the graphs: every suffix packed on the prefixes'
        key/values under the same block mask, standalone prompts packed alongside; the same margin order."""
        laid = _pack_batch(batch, standalone, self.loaded.dtype)
        answer_at = laid.answer_at
        reads = [[end for row, end in answer_at if row == i] for i in range(len(batch))]
        slots = [reads[row].index(end) for row, end in answer_at]
        read_index = np.array([r + [0] * (max(map(len, reads)) - len(r)) for r in reads])
        logits, _ = self._decode(self._embed(laid.input_ids.numpy(), None), laid.mask.numpy(),
                                 laid.positions.numpy(), read_index, cache)
        picked = logits[[row for row, _ in answer_at], slots]
        return margins_from_logits(torch.from_numpy(picked), self.loaded.answer_tokens).tolist()

    def _batched_margins(self, batch) -> list[float]:
        """Each study's prompts as one padded full forward (the path the self-check falls back to)."""
        return [m for study in batch for m in self._full_margins(study.inputs)]

    def full_forward_margins(self, rendered: Sequence[str], images) -> list[float]:
        return self._full_margins(self.encode(rendered, images))

    def _full_margins(self, inputs: dict) -> list[float]:
        """Whole prompts in one decoder call with past length 0: the plain forward, on the graphs."""
        ids, attention = inputs["input_ids"].numpy(), inputs["attention_mask"].numpy()
        features = self._features(inputs) if "pixel_values" in inputs else None
        positions = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)
        last = attention.sum(axis=1)[:, None] - 1
        logits, _ = self._decode(self._embed(ids, features), self._causal_mask(ids, attention), positions, last, None)
        return margins_from_logits(torch.from_numpy(logits[:, 0]), self.loaded.answer_tokens).tolist()

    def generate(self, requests: Sequence[ScoreRequest], max_new_tokens: int = 8) -> list[str]:
        """Greedy decoding on the decoder graph, one token at a time on the growing key/values."""
        texts = []
        tokenizer = self.loaded.processor.tokenizer
        for request in requests:
            inputs = self.encode([request.rendered], None if request.image is None else [request.image])
            ids = inputs["input_ids"].numpy()
            features = self._features(inputs) if "pixel_values" in inputs else None
            length = ids.shape[1]
            logits, past = self._decode(self._embed(ids, features), self._causal_mask(ids, np.ones_like(ids)),
                                        np.arange(length)[None], np.array([[length - 1]]), None)
            new: list[int] = []
            for _ in range(max_new_tokens):
                token = int(logits[0, 0].argmax())
                if token in self.onnx.eos_token_ids:
                    break
                new.append(token)
                step = np.zeros((1, 1, 1, length + len(new)), dtype=self.onnx.dtype)
                logits, past = self._decode(self._embed(np.array([[token]]), None), step,
                                            np.array([[length + len(new) - 1]]), np.array([[0]]), past)
            texts.append(tokenizer.decode(new, skip_special_tokens=True).strip())
        return texts

    # -- graph calls ------------------------------------------------------------------------------------

    def _features(self, inputs: dict) -> np.ndarray:
        """Projected image features of every image in `inputs`, flattened to [image tokens, hidden]."""
        feeds = {}
        for name, value in self.loaded.family.vision_inputs(inputs).items():
            array = value.numpy()
            feeds[name] = array.astype(self.onnx.dtype) if value.is_floating_point() else array.astype(np.int64)
        (features,) = self.onnx.vision.run(None, feeds)
        return features.reshape(-1, features.shape[-1])

    def _embed(self, ids: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        """Token embeddings from the table, image features at the image tokens in reading order (what the
        model's masked_scatter does)."""
        image = ids == self._image_token()
        embeds = self.onnx.embeddings[np.where(image, 0, ids)]
        count = int(image.sum())
        if count:
            if features is None or len(features) != count:
                raise ModelError(f"the prompts hold {count} image tokens but the vision graph gave "
                                 f"{0 if features is None else len(features)} features")
            embeds[image] = features
        return embeds

    def _causal_mask(self, ids: np.ndarray, attention: np.ndarray) -> np.ndarray:
        """Additive [B, 1, L, L] mask: causal over real tokens; within one image, both ways where the
        family's image attention is bidirectional (Gemma3's token_type_ids rule)."""
        length = ids.shape[1]
        visible = np.tril(np.ones((length, length), dtype=bool))[None] & attention.astype(bool)[:, None, :]
        if self.loaded.family.bidirectional_image:
            image = (ids == self._image_token()) & attention.astype(bool)
            starts = image & ~np.pad(image, ((0, 0), (1, 0)))[:, :-1]
            group = np.cumsum(starts, axis=1) * image
            visible |= (group[:, :, None] == group[:, None, :]) & image[:, :, None] & image[:, None, :]
        minimum = np.finfo(self.onnx.dtype).min
        return np.where(visible, 0, minimum).astype(self.onnx.dtype)[:, None]

    def _decode(self, embeds, mask, positions, read_index, past):
        """One decoder call: (logits at the read positions [B, R, vocab] as float32, present key/values)."""
        text = self.onnx.manifest.text
        window = text.get("sliding_window")
        if window and int(np.max(positions)) >= window:
            raise ModelError(f"a prompt of {int(np.max(positions)) + 1} tokens is longer than this model's sliding "
                             f"attention window ({window}), which the exported mask does not apply")
        batch = embeds.shape[0]
        if past is None:
            empty = np.zeros((batch, text["kv_heads"], 0, text["head_dim"]), dtype=self.onnx.dtype)
            past = [empty] * (2 * text["layers"])
        names = [i["name"] for i in self.onnx.manifest.graphs["decoder"]["inputs"]]
        feeds = dict(zip(names, [embeds.astype(self.onnx.dtype), mask.astype(self.onnx.dtype),
                                 np.ascontiguousarray(positions, dtype=np.int64),
                                 np.ascontiguousarray(read_index, dtype=np.int64), *past], strict=True))
        logits, *present = self.onnx.decoder.run(None, feeds)
        return logits.astype(np.float32), present

    def _image_token(self) -> int:
        return self.onnx.manifest.text["image_token_id"]
