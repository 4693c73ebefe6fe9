"""`--backend onnx`: the same two-pass fast path as `torch`, on an export folder's graphs (`quadrant export
onnx`), through ONNX Runtime on CPU, CUDA or TensorRT, with no PyTorch checkpoint.

Studies are tokenized, grouped, batched and packed by the very same code as PyTorch's (`fast_path.py`,
`packing.py`), and the self-check that compares the cached path with full forwards runs here too; this
module supplies the forward steps (`OnnxSteps`). A forward is: the vision graph once per study; token
embeddings gathered from the exported table with numpy, image features placed at the image tokens; the
decoder graph once over the shared prefixes (past length 0) and once over all suffixes packed end to end
on the prefixes' key/values, under the same 4-D block mask the PyTorch path builds. Logits come back only
at the positions where answers are read. Every graph input is fed by the name the manifest records for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .onnx_format import OnnxManifest, read_manifest

from ..answers import Generation, find_answer_tokens, margins_from_logits
from ..errors import MissingDependencyError, ModelError, OptionError, one_line, require
from ..loading import Loaded, ModelSource, ModelSpec, load_processor
from .fast_path import FastPathScorer, ForwardSteps, Prefix
from .onnx_format import is_export
from .packing import PackedBatch

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
_NUMPY_DTYPES = {"float32": np.float32, "float16": np.float16}


@dataclass
class OnnxGraphs:
    """An export's runtime parts: its sessions, embedding table and manifest."""

    directory: Path
    manifest: OnnxManifest
    vision: object  # onnxruntime.InferenceSession
    decoder: object
    embeddings: np.ndarray  # [vocab, hidden], what the model's embedding module returns per token id
    extras: dict[str, torch.Tensor]  # the family's other runtime weights (LLaVA-OneVision's newline vector)
    eos_token_ids: tuple[int, ...]
    provider: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(_NUMPY_DTYPES[self.manifest.dtype])


@dataclass(kw_only=True)
class LoadedExport(Loaded):
    """An ONNX export ready to score: the graphs in ONNX Runtime sessions, and no PyTorch model."""

    graphs: OnnxGraphs


def load_export(spec: ModelSpec, resolved: ModelSource) -> LoadedExport:
    """An export folder, loaded: processor rebuilt from its own files, sessions on the asked device."""
    from transformers import AutoConfig, GenerationConfig

    from ..families import family_for_config
    from ..fingerprint import fingerprint

    ort = _onnxruntime()
    name, directory = resolved.name, Path(resolved.source).expanduser()
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
    graphs = OnnxGraphs(
        directory=directory, manifest=manifest, vision=vision, decoder=decoder,
        **_embeddings(directory / manifest.files["embeddings"]),
        eos_token_ids=tuple(eos) if isinstance(eos, list) else (eos,), provider=provider,
    )
    half = manifest.dtype == "float16" or fp16_engine
    return LoadedExport(
        graphs=graphs, processor=processor, family=family, config=config, name=name, fingerprint=model_fingerprint,
        device=torch.device("cpu" if provider == PROVIDERS["cpu"] else "cuda"),
        dtype=torch.float16 if half else torch.float32, answer_tokens=answer_tokens,
        prompt=spec.prompt or manifest.prompt, chat_template=spec.chat_template,
        generation=Generation(**manifest.generation),
        extra=_identity(manifest, provider),
    )


def _identity(manifest: OnnxManifest, provider: str) -> dict:
    """What a verdict records about the export beside the model's name: the provider that ran it, the model
    it was made from, its precision, and how its verdicts compared with that model's, where they were."""
    identity = {"provider": provider, "source_fingerprint": manifest.source["fingerprint"],
                "precision": manifest.precision}
    if manifest.verdicts:
        identity["validation"] = {key: manifest.verdicts[key] for key in
                                  ("summary", "quadrant_agreement", "verdicts", "on", "changed")}
    return identity


def runtime_distributions() -> list[str]:
    """The ONNX Runtime wheels installed: onnxruntime, onnxruntime-gpu, both (a trap: they share the module
    name, so which one answers depends on install order), or neither."""
    from importlib import metadata

    installed = []
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            metadata.version(dist)
            installed.append(dist)
        except metadata.PackageNotFoundError:
            pass
    return installed


def _onnxruntime():
    """The onnxruntime module, refused when both the CPU and the GPU wheel are installed (pip cannot forbid
    the pair)."""
    if len(runtime_distributions()) == 2:
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


def _embeddings(path: Path) -> dict:
    """The embedding table, and the family's other weights saved beside it."""
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error type for a damaged header
        raise ModelError(f"cannot read the embedding table {path}: {one_line(exc)}; export the model again") from exc
    table = tensors.pop("embeddings")
    return {"embeddings": table, "extras": {name: torch.from_numpy(value) for name, value in tensors.items()}}


@dataclass
class _Features:
    """Image features one row per image token, in reading order, and (Qwen3-VL) the deepstack features."""

    tokens: np.ndarray  # [image tokens, hidden]
    deepstack: np.ndarray | None = None  # [layers, image tokens, hidden]

    @staticmethod
    def join(parts: list[_Features]) -> _Features:
        deepstack = None if parts[0].deepstack is None else np.concatenate([p.deepstack for p in parts], axis=1)
        return _Features(np.concatenate([p.tokens for p in parts]), deepstack)

    def repeated(self, times: int) -> _Features:
        deepstack = None if self.deepstack is None else np.concatenate([self.deepstack] * times, axis=1)
        return _Features(np.concatenate([self.tokens] * times), deepstack)


class OnnxSteps(ForwardSteps):
    """The fast path's forwards on an export's graphs: the vision graph, the embedding table, the decoder.
    What a model's forward works out from the token ids (positions, which tokens see each other both ways)
    comes from the family's hooks, on the host."""

    def __init__(self, loaded: LoadedExport):
        if not isinstance(loaded, LoadedExport):
            raise OptionError(f"--backend onnx runs an ONNX export, and {loaded.name} was loaded for --backend "
                              f"{loaded.backend}{OnnxScorer.refusal_hint}")
        super().__init__(loaded)
        self.onnx: OnnxGraphs = loaded.graphs
        # a session takes runs from several threads at once; on CPU a short run's fixed costs hide under a long
        # one's (measured: the reference's suffix pass beside the prefix pass, 4.4 ms of a ~105 ms check), and
        # beside the study's reading it takes a core the processor leaves idle (about 1 ms more); not measured
        # on a GPU, where the runs would share one stream
        self.overlaps = self.onnx.provider == PROVIDERS["cpu"]
        self.family, self.config = loaded.family, loaded.config
        graphs = self.onnx.manifest.graphs
        self.inputs = {role: [i["name"] for i in graphs[role]["inputs"]] for role in ("vision", "decoder")}
        self.outputs = {role: [o["name"] for o in graphs[role]["outputs"]] for role in ("vision", "decoder")}

    def place(self, key: str, value: torch.Tensor) -> torch.Tensor:
        """Inputs stay on the host (ONNX Runtime copies them to its device)."""
        return value

    def run_prefix(self, tokens: dict[str, torch.Tensor], images: list[dict[str, torch.Tensor]]) -> Prefix:
        """The studies' shared prefixes with past length 0: their key/values, one row per study. Each
        study's image is encoded once."""
        inputs = dict(tokens)
        for key in images[0]:
            # one study's tensors as they are: torch.cat would copy them on torch's own thread pool, which waits
            # for a core while the reference's forward runs beside this pass (measured 1.5 ms of a check)
            inputs[key] = images[0][key] if len(images) == 1 else torch.cat([image[key] for image in images])
        ids = tokens["input_ids"].numpy()
        features = _Features.join([self._features(image) for image in images])
        positions, _ = self.family.position_ids(self.config, inputs)
        _, present = self._decode(ids, features, self._prompt_mask(inputs), positions.numpy(),
                                  np.full((len(ids), 1), ids.shape[1] - 1), None)
        return Prefix(inputs, present)

    def nbytes(self, prefix: Prefix) -> int:
        """The past key/values' bytes, graph input by graph input."""
        return sum(array.nbytes for array in prefix.cache.values())

    def run_suffixes(self, prefix: Prefix, laid: PackedBatch) -> list[float]:
        """Every suffix packed on the prefixes' key/values under the block mask, standalone prompts packed
        alongside; logits only at the read positions."""
        read_index, slots = laid.read_index()
        positions = self.family.packed_position_ids(self.config, prefix.inputs, laid.positions, laid.sees_prefix)
        logits, _ = self._decode(laid.input_ids.numpy(), None, laid.mask.numpy(), positions.numpy(),
                                 read_index.numpy(), prefix.cache)
        rows, columns = zip(*slots, strict=True)
        picked = logits[list(rows), list(columns)]
        return margins_from_logits(torch.from_numpy(picked), self.loaded.answer_tokens).tolist()

    def run_full(self, inputs: dict[str, torch.Tensor], one_image: bool) -> list[float]:
        """Whole prompts in one decoder call with past length 0: the plain forward, on the graphs. With
        `one_image`, the first prompt's image is encoded once and its features serve every row."""
        ids, attention = inputs["input_ids"].numpy(), inputs["attention_mask"].numpy()
        features = None
        if "pixel_values" in inputs:
            if one_image:
                features = self._features(self.family.prefix_image_inputs(self.config, inputs)).repeated(len(ids))
            else:
                features = self._features(inputs)
        positions, _ = self.family.position_ids(self.config, inputs)
        last = attention.sum(axis=1)[:, None] - 1
        logits, _ = self._decode(ids, features, self._prompt_mask(inputs), positions.numpy(), last, None)
        return margins_from_logits(torch.from_numpy(logits[:, 0]), self.loaded.answer_tokens).tolist()

    def generate(self, inputs: dict[str, torch.Tensor], max_new_tokens: int) -> list[int]:
        """Greedy decoding on the decoder graph, one token at a time on the growing key/values; each new
        token at the position after the last, offset as the family says (Qwen's rope delta, PaliGemma's
        positions from 1)."""
        ids = inputs["input_ids"].numpy()
        features = self._features(inputs) if "pixel_values" in inputs else None
        positions, offset = self.family.position_ids(self.config, inputs)
        length = ids.shape[1]
        logits, past = self._decode(ids, features, self._prompt_mask(inputs), positions.numpy(),
                                    np.array([[length - 1]]), None)
        streams = positions.shape[:-2]  # (3,) for M-RoPE, () otherwise
        new: list[int] = []
        for _ in range(max_new_tokens):
            token = int(logits[0, 0].argmax())
            if token in self.onnx.eos_token_ids:
                break
            new.append(token)
            step = np.zeros((1, 1, 1, length + len(new)), dtype=self.onnx.dtype)
            position = np.full((*streams, 1, 1), length + len(new) - 1 + int(offset[0, 0]))
            logits, past = self._decode(np.array([[token]]), None, step, position, np.array([[0]]), past)
        return new

    # -- graph calls ------------------------------------------------------------------------------------

    def _features(self, encoded: dict[str, torch.Tensor]) -> _Features:
        """The vision graph on the images in `encoded`, arranged one row per image token."""
        declared = {i["name"]: i["dtype"] for i in self.onnx.manifest.graphs["vision"]["inputs"]}
        given = {name: value.numpy().astype(declared.get(name, value.numpy().dtype), copy=False)
                 for name, value in self.family.vision_inputs(self.config, encoded).items()}
        outputs = self.onnx.vision.run(self.outputs["vision"], _feeds(given, self.inputs["vision"], "vision"))
        named = {name: torch.from_numpy(value) for name, value in zip(self.outputs["vision"], outputs, strict=True)}
        arranged = self.family.arrange_features(self.config, named, encoded, self.onnx.extras)
        deepstack = arranged.get("deepstack_features")
        return _Features(arranged["image_features"].numpy(), None if deepstack is None else deepstack.numpy())

    def _prompt_mask(self, inputs: dict[str, torch.Tensor]) -> np.ndarray:
        """Additive [B, 1, L, L] mask for whole prompts: causal over real tokens, and both ways within the
        blocks the family names (Gemma3's images, PaliGemma's prompt)."""
        attention = inputs["attention_mask"].numpy().astype(bool)
        length = attention.shape[1]
        visible = np.tril(np.ones((length, length), dtype=bool))[None] & attention[:, None, :]
        blocks = self.family.attention_blocks(self.config, inputs)
        if blocks is not None:
            blocks = blocks.numpy()
            visible |= (blocks[:, :, None] == blocks[:, None, :]) & (blocks[:, :, None] > 0) & attention[:, None, :]
        minimum = np.finfo(self.onnx.dtype).min
        return np.where(visible, 0, minimum).astype(self.onnx.dtype, copy=False)[:, None]

    def _decode(self, ids, features: _Features | None, mask, positions, read_index, past):
        """One decoder call on token ids with image features placed at the image tokens: (logits at the read
        positions [B, R, vocab] as float32, the present key/values by the name of the past input each one
        feeds next: `present_key_3` becomes `past_key_3`)."""
        text = self.onnx.manifest.text
        window = text.get("sliding_window")
        if window and int(np.max(positions)) >= window:
            raise ModelError(f"a prompt of {int(np.max(positions)) + 1} tokens is longer than this model's sliding "
                             f"attention window ({window}), which the exported mask does not apply")
        embeds, deepstack = self._embed(ids, features)
        if past is None:
            empty = np.zeros((ids.shape[0], text["kv_heads"], 0, text["head_dim"]), dtype=self.onnx.dtype)
            past = {name: empty for name in self.inputs["decoder"] if name.startswith("past_")}
        given = {"inputs_embeds": embeds, "attention_mask": mask.astype(self.onnx.dtype, copy=False),
                 "position_ids": np.ascontiguousarray(positions, dtype=np.int64),
                 "read_index": np.ascontiguousarray(read_index, dtype=np.int64), **past}
        if deepstack is not None:
            given["deepstack_embeds"] = deepstack
        outputs = self.onnx.decoder.run(self.outputs["decoder"], _feeds(given, self.inputs["decoder"], "decoder"))
        named = dict(zip(self.outputs["decoder"], outputs, strict=True))
        present = {name.replace("present_", "past_", 1): value for name, value in named.items()
                   if name.startswith("present_")}
        return named["logits"].astype(np.float32, copy=False), present

    def _embed(self, ids: np.ndarray, features: _Features | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Token embeddings from the table, image features at the image tokens in reading order (what the
        model's masked_scatter does); the deepstack features laid out the same way, zero elsewhere, where
        the decoder takes them."""
        image = ids == self.onnx.manifest.text["image_token_id"]
        embeds = self.onnx.embeddings[np.where(image, 0, ids)].astype(self.onnx.dtype, copy=False)
        count = int(image.sum())
        if count and (features is None or len(features.tokens) != count):
            raise ModelError(f"the prompts hold {count} image tokens but the vision graph gave "
                             f"{0 if features is None else len(features.tokens)} features")
        if count:
            embeds[image] = features.tokens
        layers = self.onnx.manifest.text.get("deepstack_layers") or 0
        if not layers:
            return embeds, None
        deepstack = np.zeros((layers, *embeds.shape), dtype=self.onnx.dtype)
        if count:
            if features.deepstack is None or features.deepstack.shape[:2] != (layers, count):
                raise ModelError(f"this export's decoder takes deepstack features for {layers} layers, and its vision "
                                 "graph did not give them for every image token; export the model again")
            deepstack[:, image] = features.deepstack
        return embeds, deepstack


def _feeds(given: dict[str, np.ndarray], names: list[str], graph: str) -> dict[str, np.ndarray]:
    """The inputs a graph's signature names, each by its name; a mismatch is a broken export, said plainly."""
    missing, unknown = set(names) - set(given), set(given) - set(names)
    if missing or unknown:
        raise ModelError(f"the {graph} graph's recorded inputs ({', '.join(names)}) do not match what this runtime "
                         f"feeds it (missing {sorted(missing)}, not in the graph {sorted(unknown)}); export again")
    return {name: given[name] for name in names}


class OnnxScorer(FastPathScorer):
    """The fast path, with ONNX Runtime doing every forward. It runs export folders, and only them."""

    name = "onnx"
    default = True
    steps_type = OnnxSteps
    source_kind = "an ONNX export"
    refusal_hint = "; to run a model on ONNX Runtime, export it first: `quadrant export onnx --model MODEL --out DIR`"

    def self_check(self) -> bool:
        """A quantized export's activations are rounded per call (int8 scales each tensor by its own range),
        so its fast path and its full forwards differ by rounding as large as a wrong mask's error, and the
        comparison cannot tell them apart. Its fast path's semantics were held to 1e-4 on the float32 graphs it
        was quantized from, recorded in its manifest; its verdicts were then validated on that fast path."""
        manifest = self.loaded.graphs.manifest
        if manifest.quantization:  # the float32 validation's paths: where its self-check kept the fast path
            return "prefix-shared" in manifest.validation.get("paths", [])
        return super().self_check()

    @classmethod
    def serves(cls, source: str) -> bool:
        return is_export(source)

    @classmethod
    def load(cls, spec: ModelSpec, resolved: ModelSource) -> LoadedExport:
        return load_export(spec, resolved)
