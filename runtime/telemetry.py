"""Prometheus metrics of checks, one set for every surface that runs them (the app, the DICOM node).

What a monitoring team graphs and alerts on: checks by quadrant and model (a Dangerous share that drifts up
is a model answering from the text), errors by kind, and how long checks take. Labels are the model's name,
the quadrant and the error's kind: never a study, a question or anything about a patient.

The metrics live in their own registry (`Telemetry.registry`), served on the app's `/metrics` and on the
node's `--metrics-port`. prometheus-client is imported when the metrics are first used (`app` and `hospital`
extras).
"""

from __future__ import annotations

import re
from functools import lru_cache

from .errors import require

#: seconds: a check on a small CPU model takes tens of milliseconds, a 7B model's with evidence a minute
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Telemetry:
    """The check metrics in one registry."""

    def __init__(self):
        prometheus = require("prometheus_client", "hospital")
        self.registry = prometheus.CollectorRegistry()
        self.checks = prometheus.Counter("quadrant_checks", "Completed checks, by model and quadrant",
                                         ["model", "quadrant"], registry=self.registry)
        self.errors = prometheus.Counter("quadrant_check_errors", "Checks that could not be completed, by the kind "
                                         "of error (study, question, option, model, internal ...)", ["kind"],
                                         registry=self.registry)
        self.latency = prometheus.Histogram("quadrant_check_seconds", "Time from request to verdict, by model",
                                            ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)

    def observe(self, model: str, quadrant: str, seconds: float) -> None:
        """One completed check, and how long it took."""
        self.checks.labels(model=model, quadrant=quadrant).inc()
        self.latency.labels(model=model).observe(seconds)

    def failed(self, exc: BaseException) -> None:
        self.errors.labels(kind=error_kind(exc)).inc()

    def exposition(self) -> tuple[bytes, str]:
        """The metrics in Prometheus' text format, and its content type."""
        prometheus = require("prometheus_client", "hospital")
        return prometheus.generate_latest(self.registry), prometheus.CONTENT_TYPE_LATEST


@lru_cache(maxsize=1)
def telemetry() -> Telemetry:
    """This process's metrics (one registry per process, shared by everything in it)."""
    return Telemetry()


def error_kind(exc: BaseException) -> str:
    """A short label for an error: its most specific class in Quadrant's error tree ("study", "question",
    "study_scope", ...), or "internal" for anything else. The tree is small, so the label set stays small."""
    for cls in type(exc).__mro__:
        if cls.__module__ == "quadrant.errors" and cls.__name__ != "QuadrantError":
            return re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__.removesuffix("Error")).lower()
    return "internal"
