"""`quadrant export tensorrt`: serialized TensorRT engines from an ONNX export, for deployments that run
TensorRT directly. (`--backend onnx --device tensorrt` needs none of this: ONNX Runtime's TensorRT
provider builds and caches its own engines from the export on first use.)

Engines are specific to a GPU model and a TensorRT version, so they are built on the machine that runs
them, through TensorRT's Python API. The decoder gets two optimization profiles, the shapes of a check's two
passes: profile 0 the prefix pass (past length 0, one read position per row), profile 1 the packed suffix
pass (past length >= 1, several read positions per row). TensorRT is an optional extra whose libraries come
from NVIDIA's own package index; without it, or without a GPU, the command stops with one line saying so.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from quadrant.errors import MissingDependencyError, ModelError, OptionError, one_line
from quadrant.backends.onnx_format import read_manifest

MANIFEST_NAME = "quadrant_tensorrt.json"
INSTALL = ("pip install tensorrt --extra-index-url https://pypi.nvidia.com (NVIDIA's index: TensorRT is not "
           "on PyPI proper), on a machine with an NVIDIA GPU and driver")


@dataclass(frozen=True)
class EngineLimits:
    """The largest shapes the engines accept (bigger profiles cost build time and GPU memory)."""

    batch: int = 8  # studies (prefix rows) per call
    tokens: int = 2048  # prompt length, image tokens included
    images: int = 40  # vision-graph images per call (Idefics3 counts each crop)
    reads: int = 32  # answer positions per packed row


def build_engines(export_dir: str | Path, out_dir: str | Path, fp16: bool = False,
                  limits: EngineLimits = EngineLimits()) -> dict:
    """Build vision.engine and decoder.engine in out_dir; return what was written (also its manifest)."""
    export_dir, out = Path(export_dir), Path(out_dir)
    manifest = read_manifest(export_dir)
    if out.exists() and any(out.iterdir()):
        raise OptionError(f"{out} is not empty; choose a new --out folder")
    trt = _tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    try:
        builder = trt.Builder(logger)
    except Exception as exc:  # TensorRT raises plain runtime errors when no GPU is usable
        raise MissingDependencyError(f"TensorRT cannot start a builder here (no usable NVIDIA GPU?): {one_line(exc)}") from exc
    if builder is None:
        raise MissingDependencyError("TensorRT cannot start a builder here: no usable NVIDIA GPU")
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for role in ("vision", "decoder"):
        shapes = _profiles(manifest, role, limits)
        engine = _build(trt, builder, logger, export_dir / manifest.files[role], shapes, fp16)
        path = out / f"{role}.engine"
        path.write_bytes(engine)
        written[role] = {"file": path.name, "profiles": shapes}
    record = {"kind": "tensorrt", "export": str(export_dir), "family": manifest.family, "fp16": fp16,
              "tensorrt": trt.__version__, "limits": asdict(limits), "engines": written}
    (out / MANIFEST_NAME).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def _tensorrt():
    try:
        import tensorrt
    except ImportError as exc:
        raise MissingDependencyError(f"TensorRT is not installed: {INSTALL}") from exc
    return tensorrt


def _profiles(manifest, role: str, limits: EngineLimits) -> list[dict]:
    """[{input name: (min, opt, max)}] per profile, the symbolic axes filled from the limits."""
    graph = manifest.graphs[role]["inputs"]
    if role == "vision":
        axes = [{"images": (1, 1, limits.images)}]
    else:
        t = limits.tokens
        axes = [
            {"batch": (1, 1, limits.batch), "query": (1, t // 2, t), "past": (0, 0, 0), "past+query": (1, t // 2, t),
             "reads": (1, 1, 1)},
            {"batch": (1, 1, limits.batch), "query": (1, 64, t), "past": (1, t // 2, t),
             "past+query": (2, t // 2 + 64, 2 * t), "reads": (1, 7, limits.reads)},
        ]
    profiles = []
    for sizes in axes:
        profile = {}
        for spec in graph:
            dims = [sizes[d] if isinstance(d, str) else (d, d, d) for d in spec["shape"]]
            profile[spec["name"]] = [list(x) for x in zip(*dims, strict=True)]  # [min shape, opt shape, max shape]
        profiles.append(profile)
    return profiles


def _build(trt, builder, logger, onnx_path: Path, profiles: list[dict], fp16: bool) -> bytes:
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # reads the external data beside the graph too
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    for shapes in profiles:
        profile = builder.create_optimization_profile()
        for name, (low, opt, high) in shapes.items():
            profile.set_shape(name, low, opt, high)
        config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise ModelError(f"TensorRT could not build an engine from {onnx_path.name} (see its log above)")
    return bytes(engine)
