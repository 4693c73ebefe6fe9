"""Loading a model for scoring: what was asked for (`ModelSpec`), where it comes from (`resolve_source`:
preset, local directory or hub id), what every loaded model records (`Loaded`), and the transformers side of
it: a PyTorch model with its LoRA adapter folded in, on its device and dtype (`load_transformers`).

Loading is kept apart from computing: a `ModelSpec` says what was asked for, `quadrant.backends.load_model`
chooses the backend that serves the resolved source and has it do the heavy work once, and everything
downstream takes the resulting `Loaded`. The backends are built on this module, so it imports none of them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch

from quadrant.models.presets import DEFAULT_PROMPT

from .answers import AnswerTokens, Generation, find_answer_tokens
from .errors import ModelError, ModelNotFoundError, OptionError, UnsupportedModelError, one_line
from .families import Family, family_for_config
from .fingerprint import fingerprint

DEVICES = ("auto", "cpu", "cuda", "tensorrt")  # tensorrt: ONNX Runtime's provider, for ONNX exports
DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class ModelSpec:
    """What the user asked for, before anything is loaded."""

    model: str = "demo"
    adapter: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    chat_template: str | None = None  # a Jinja template overriding the model's own
    prompt: str | None = None  # overrides the preset's "{question} ..." wrapper
    backend: str | None = None  # None: the backend that serves the model's source by default


class ModelSource(NamedTuple):
    """Where a model comes from, once a preset name is resolved."""

    name: str  # what verdicts call it: the preset's name, the directory's, or the hub id
    source: str  # a local directory or a hub id
    adapter: str | None
    prompt: str


@dataclass(kw_only=True)
class Loaded:
    """A model ready to score, whichever backend loaded it, with everything a verdict must record about it.
    Each backend's own type adds what it computes with (`LoadedModel.model`, the ONNX backend's graphs)."""

    processor: object
    family: Family
    config: object  # the checkpoint's transformers config (image token id, vision geometry)
    name: str
    fingerprint: str
    device: torch.device
    dtype: torch.dtype
    answer_tokens: AnswerTokens | None  # None: no single-token yes/no, so generate-and-parse only
    backend: str = "torch"  # the backend the source was loaded for
    prompt: str = DEFAULT_PROMPT
    chat_template: str | None = None
    generation: Generation = Generation()
    answer_tokens_problem: str | None = None  # why answer_tokens is None
    extra: dict = field(default_factory=dict)  # what a runtime adds to the verdict's model (ONNX: its provider)

    def to_json(self, backend: str) -> dict:
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "backend": backend,
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "family": self.family.name,
            "answer_tokens": None if self.answer_tokens is None else self.answer_tokens.to_json(),
            **self.extra,
        }

    def wrap(self, question: str) -> str:
        """The question inside this model's instruction."""
        return self.prompt.replace("{question}", question)


@dataclass(kw_only=True)
class LoadedModel(Loaded):
    """A transformers model in PyTorch, adapter merged, on its device and dtype."""

    model: torch.nn.Module


def resolve_device(device: str) -> torch.device:
    if device not in DEVICES:
        raise OptionError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "tensorrt":
        raise OptionError("--device tensorrt is an ONNX Runtime provider: use it with an ONNX export and --backend onnx")
    if device == "cuda" and not torch.cuda.is_available():
        raise OptionError("--device cuda was asked for, but no CUDA GPU is available to PyTorch here")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device, family: Family) -> torch.dtype:
    """fp32 on CPU; on GPU bf16 (Gemma3 overflows in fp16, and bf16 costs the others nothing)."""
    if dtype not in DTYPES:
        raise OptionError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if DTYPES[dtype] is not None:
        return DTYPES[dtype]
    return torch.float32 if device.type == "cpu" else torch.bfloat16


def resolve_source(spec: ModelSpec) -> ModelSource:
    """Where the model comes from: a preset name, a directory or a hub id."""
    from quadrant.models.presets import PRESETS

    prompt = spec.prompt
    if spec.model in PRESETS:
        preset = PRESETS.get(spec.model)
        if not preset.source or (os.path.isabs(preset.source) and not Path(preset.source).is_dir()):
            hint = preset.setup_hint or f"expected the model files at {preset.source}"
            raise ModelNotFoundError(f"preset {preset.name!r} is not available here: {hint}")
        adapter = spec.adapter or preset.adapter
        return ModelSource(preset.name, preset.source, adapter, prompt or preset.prompt)
    path = Path(spec.model).expanduser()
    if path.exists() and not (path / "config.json").is_file():
        raise ModelNotFoundError(f"{spec.model} is not a model directory (no config.json in it)")
    looks_like_path = path.exists() or spec.model.startswith((".", "/", "~")) or spec.model.count("/") > 1
    if looks_like_path and not path.exists():
        raise ModelNotFoundError(f"model directory {spec.model} does not exist")
    return ModelSource(path.name if path.exists() else spec.model, spec.model, spec.adapter, prompt or DEFAULT_PROMPT)


def load_transformers(spec: ModelSpec, resolved: ModelSource) -> LoadedModel:
    """Load processor, model and adapter; find the answer tokens; fingerprint the weights."""
    from transformers import AutoConfig, AutoModelForImageTextToText

    name, source, adapter, prompt = resolved
    if "{question}" not in prompt:
        raise OptionError("the prompt template must contain {question}")
    device = resolve_device(spec.device)
    try:
        config = AutoConfig.from_pretrained(source)
        _check_image_text_to_text(config)
        family = family_for_config(config)
        dtype = resolve_dtype(spec.dtype, device, family)
        processor = load_processor(source)
        family.configure(processor, spec.chat_template)
        model = AutoModelForImageTextToText.from_pretrained(source, dtype=dtype)
    except OSError as exc:
        raise ModelNotFoundError(
            f"cannot load model {source!r}: not a preset, a model directory, or a hub id available offline"
            f"{_preset_hint(source)} ({one_line(exc)})"
        ) from exc
    if adapter is not None:
        model = _apply_adapter(model, adapter)
    processor.tokenizer.padding_side = "right"
    model.to(device).eval()
    try:
        answer_tokens, problem = find_answer_tokens(processor.tokenizer), None
    except UnsupportedModelError as exc:  # still servable by generate-and-parse; logits mode refuses it
        answer_tokens, problem = None, str(exc)
    return LoadedModel(
        model=model,
        processor=processor,
        family=family,
        config=model.config,
        name=name,
        fingerprint=fingerprint(_local_dir(source), Path(adapter) if adapter else None),
        device=device,
        dtype=dtype,
        answer_tokens=answer_tokens,
        prompt=prompt,
        chat_template=spec.chat_template,
        generation=preset_generation(spec.model),
        answer_tokens_problem=problem,
    )


def preset_generation(model: str) -> Generation:
    """A preset's scoring mode, token budget and answer convention; the defaults for anything else."""
    from quadrant.models.presets import PRESETS

    return PRESETS.get(model).generation if model in PRESETS else Generation()


def _check_image_text_to_text(config) -> None:
    """Refuse, by model type, what AutoModelForImageTextToText cannot load (before any weights are read)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    model_type = getattr(config, "model_type", None)
    if model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        raise UnsupportedModelError(
            f"model type {model_type!r} is not an image-text-to-text model (transformers' "
            "AutoModelForImageTextToText does not load it), so Quadrant cannot score it"
        )


TORCHVISION_HINT = (
    "pip install torchvision built for your torch (from PyPI, for example torch==2.14.1 with "
    "torchvision==0.29.1)"
)


def load_processor(source: str):
    """The model's processor; without torchvision, the same processor class minus its video processor.

    Qwen2-VL, Qwen2.5-VL, Qwen3-VL, InternVL and LLaVA-OneVision processors hold a video processor, and
    transformers' video processors need torchvision, so `AutoProcessor` cannot load them without it. Quadrant
    never scores video, and the image processors have PIL variants that AutoImageProcessor picks without
    torchvision, so the processor class is built with its image processor and tokenizer only: the same
    tokenization and image preprocessing as with torchvision, except that PIL resizes where torchvision
    would (margins move by about 1e-3 between the two; compare like with like). Where even that cannot
    load, one line says what to install.
    """
    from transformers import AutoProcessor
    from transformers.utils import is_torchvision_available

    try:
        return AutoProcessor.from_pretrained(source)
    except (ImportError, OSError) as exc:
        if is_torchvision_available() or not _mentions_video(exc):
            raise
        cause = exc
    processor_class = _processor_class(source)
    if processor_class is None or "video_processor" not in processor_class.get_attributes():
        raise ModelError(f"this model's processor needs torchvision: {TORCHVISION_HINT}") from cause
    try:
        return image_only(processor_class).from_pretrained(source)
    except (ImportError, OSError, ValueError, TypeError) as exc:
        raise ModelError(f"this model's processor needs torchvision ({one_line(exc)}): {TORCHVISION_HINT}") from exc


def image_only(processor_class):
    """`processor_class` with the video processor left out of its parts, so that it builds, saves and loads
    without torchvision. Transformers lists a processor's parts with `get_attributes`; the constructor is
    unchanged and receives `video_processor=None`."""
    parts = [name for name in processor_class.get_attributes() if name != "video_processor"]

    def get_attributes(cls):
        return list(parts)

    return type(processor_class.__name__, (processor_class,),
                {"get_attributes": classmethod(get_attributes), "__module__": __name__})


def _mentions_video(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "video" in text or "torchvision" in text


def _processor_class(source: str):
    """The processor class a checkpoint names (its processor config, else its model type's default)."""
    import transformers
    from transformers import AutoConfig
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES
    from transformers.utils import cached_file

    name = None
    for filename in ("processor_config.json", "preprocessor_config.json"):
        path = cached_file(source, filename, _raise_exceptions_for_missing_entries=False)
        if path:
            with open(path, encoding="utf-8") as handle:
                name = json.load(handle).get("processor_class")
            if name:
                break
    if name is None:
        name = PROCESSOR_MAPPING_NAMES.get(AutoConfig.from_pretrained(source).model_type)
    return getattr(transformers, name, None) if isinstance(name, str) else None


def _apply_adapter(model, adapter: str):
    """Fold a LoRA adapter into the weights: scoring then runs at the base model's speed."""
    import peft
    if not (Path(adapter) / "adapter_config.json").is_file():
        raise ModelNotFoundError(f"adapter directory {adapter} has no adapter_config.json")
    try:
        return peft.PeftModel.from_pretrained(model, adapter).merge_and_unload()
    except (ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(f"adapter {adapter} does not fit this model: {one_line(exc)}") from exc


def _local_dir(source: str) -> Path:
    """Where the weights lie on disk: the directory itself, or the hub cache's snapshot."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(source, local_files_only=True))


def _preset_hint(name: str) -> str:
    import difflib

    from quadrant.models.presets import PRESETS

    close = difflib.get_close_matches(name.lower(), PRESETS.names(), n=1)
    return f"; did you mean the preset {close[0]!r}?" if close else f"; presets: {', '.join(PRESETS.names())}"
