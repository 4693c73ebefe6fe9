"""Scoring backends, and the one place that decides which backend runs a model. A new backend is one module
plus one line in BACKENDS.

Each backend says which model sources it runs (`Scorer.serves`) and how it loads them (`Scorer.load`); a
source's default backend is the one marked `default` among those that serve it (PyTorch for a transformers
checkpoint, ONNX Runtime for an export folder). The choice is made once, on the resolved source, so a preset
whose source is an export gets the same answer as the export folder named directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import OptionError
from ..registry import Registry
from .base import LazyPicture, Scorer, ScoreRequest, ScoreResult

if TYPE_CHECKING:  # loading imports torch: commands that load no model (compare, manifest) stay light
    from ..loading import Loaded, ModelSpec

BACKENDS: Registry[type[Scorer]] = Registry(
    "backend",
    {
        "torch": "quadrant.backends.torch_prefix:PrefixSharedScorer",
        "torch-naive": "quadrant.backends.torch_naive:NaiveScorer",
        "onnx": "quadrant.backends.onnx:OnnxScorer",
    },
    aliases={"pytorch": "torch", "naive": "torch-naive"},
)


def choose_backend(source: str, requested: str | None = None, name: str | None = None) -> str:
    """The backend that runs a resolved model source: the one asked for, which must serve it, or else the
    source's default. `name` is what the user called the model, for the refusal."""
    serving = [b for b in BACKENDS.names() if BACKENDS.get(b).serves(str(Path(source).expanduser()))]
    if requested is None:
        return next(b for b in serving if BACKENDS.get(b).default)
    backend = BACKENDS.canonical(requested)
    if backend not in serving:
        default = next(b for b in serving if BACKENDS.get(b).default)
        raise OptionError(f"{name or source} is {BACKENDS.get(default).source_kind}: it runs with --backend "
                          f"{default}, not {backend}{BACKENDS.get(backend).refusal_hint}")
    return backend


def load_model(spec: ModelSpec | None = None) -> Loaded:
    """Resolve the source, choose its backend, and have that backend load it (the demo model by default)."""
    from ..loading import ModelSpec, resolve_source

    spec = spec or ModelSpec()
    resolved = resolve_source(spec)
    backend = choose_backend(resolved.source, spec.backend, spec.model)
    loaded = BACKENDS.get(backend).load(spec, resolved)
    loaded.backend = backend
    return loaded


__all__ = ["BACKENDS", "LazyPicture", "Scorer", "ScoreRequest", "ScoreResult", "choose_backend", "load_model"]
