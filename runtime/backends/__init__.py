"""Scoring backends. A new backend is one module plus one line here."""

from __future__ import annotations

from ..registry import Registry
from .base import Scorer, ScoreRequest, ScoreResult

BACKENDS: Registry[type[Scorer]] = Registry(
    "backend",
    {
        "torch": "quadrant.backends.torch_prefix:PrefixSharedScorer",
        "torch-naive": "quadrant.backends.torch_naive:NaiveScorer",
        "onnx": "quadrant.backends.onnx:OnnxScorer",
    },
    aliases={"pytorch": "torch", "naive": "torch-naive"},
)

__all__ = ["BACKENDS", "Scorer", "ScoreRequest", "ScoreResult"]
