"""Evaluation engines by name: `local` (this process) and `ray` (Ray actors, one model each). Each engine is one
module here plus one line in ENGINES; a module is imported only when its engine is chosen (Ray is optional)."""

from __future__ import annotations

import importlib

from ..errors import OptionError
from .base import BatchResult, Engine, Job, Partner, Settings, SwapImage, check_jobs

ENGINES = {"local": "local:LocalEngine", "ray": "ray:RayEngine"}

__all__ = ["ENGINES", "BatchResult", "Engine", "Job", "Partner", "Settings", "SwapImage", "check_jobs", "make_engine"]


def make_engine(name: str, settings: Settings, **engine_options) -> Engine:
    """The named engine, built (not started); engine_options are that engine's own (workers, address)."""
    if name not in ENGINES:
        raise OptionError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    module_name, class_name = ENGINES[name].split(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, class_name)(settings, **engine_options)
