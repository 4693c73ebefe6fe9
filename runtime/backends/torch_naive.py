"""The naive way: every prompt its own full forward, image re-encoded each time. It is what a consistency
check costs without Quadrant's fast path, and what `quadrant bench` measures the fast path against."""

from __future__ import annotations

from collections.abc import Sequence

from .base import ScoreRequest, ScoreResult
from .fast_path import StepsScorer
from .torch_common import TorchSources, TorchSteps


class NaiveScorer(TorchSources, StepsScorer):
    name = "torch-naive"
    steps_type = TorchSteps

    def margins(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        results = []
        for request in requests:
            images = None if request.image is None else [request.picture()]
            (margin,) = self.full_forward_margins([request.rendered], images)
            results.append(ScoreResult(margin=margin, path="naive"))
        return results
