"""The GPU check, ready for the day a machine with an NVIDIA GPU (and no network) is at hand:

    python -m quadrant.models.gpu_check                               # both 7B-shaped models, every step
    python -m quadrant.models.gpu_check --models llava --layers 4     # one model, 4 decoder layers: minutes
    python -m quadrant.models.gpu_check --steps torch,int4 --json gpu-check.json

It builds, with random weights and no download, a LLaVA-1.5-7B-shaped and a Qwen2.5-VL-7B-shaped model (the
real widths, depths, heads, image geometry and vocabulary sizes; `--layers` cuts the decoder's depth only),
and prints, per model, one line per measurement:

- `torch`: PyTorch in fp16 and in bf16: Quadrant's check, one with-image forward, and the naive loop (every
  prompt its own forward), as medians in ms; the largest margin difference between the fast path and the
  naive way; peak GPU memory;
- `onnx`: a float16 export of the same model (validated on the GPU against PyTorch), on ONNX Runtime's CUDA
  and TensorRT execution providers: the same timings, and GPU memory in use;
- `int4`: the export's weights quantized to 4 bits (MatMulNBits) against the fp16 export on CUDA: timings,
  file sizes, and how many verdicts fall in the same quadrant as PyTorch's on a few phantoms.

A 7B model's files take about 15 GB per precision: `--workdir` says where they go (a temporary folder by
default, removed at the end). Without an NVIDIA GPU the check says so and stops (exit 1), after checking what
it can here: that both shapes build (on PyTorch's meta device, no memory) with the expected parameter counts.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

QUESTION = "Is there a pleural effusion?"
MODELS = ("llava", "qwen2.5-vl")
STEPS = ("torch", "onnx", "int4")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quadrant.models.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated, of {', '.join(STEPS)}")
    parser.add_argument("--layers", type=int, default=None, help="decoder layers (default: the real model's)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--phantoms", type=int, default=10, help="studies for int4's verdict agreement")
    parser.add_argument("--workdir", help="where the models and exports are written (default: a temporary folder)")
    parser.add_argument("--json", help="also write every measurement to this file")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    steps = [s for s in args.steps.split(",") if s]
    for name, known in ((models, MODELS), (steps, STEPS)):
        if unknown := set(name) - set(known):
            parser.error(f"unknown: {', '.join(sorted(unknown))}; choose from {', '.join(known)}")
    report: dict = {"shapes": {}, "results": []}
    for model in models:
        report["shapes"][model] = shape_on_meta(model, args.layers)
        say(model, "shape", report["shapes"][model])
    gpu = gpu_state()
    report["gpu"] = gpu
    say("machine", "gpu", gpu)
    if not gpu["cuda"]:
        print("No NVIDIA GPU here: nothing was measured. Run this on a machine with an NVIDIA GPU and the CUDA "
              "builds of torch and onnxruntime (README: 'The GPU check').", file=sys.stderr)
        _write(args.json, report)
        return 1
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="quadrant-gpu-check-"))
    try:
        for model in models:
            report["results"] += check_model(model, steps, args, work / model)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
        _write(args.json, report)
    return 0


def say(model: str, what: str, figures: dict) -> None:
    shown = "  ".join(f"{k} {_fmt(v)}" for k, v in figures.items())
    print(f"{model:12s} {what:24s} {shown}", flush=True)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _write(path: str | None, report: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


# -- what can be checked anywhere -----------------------------------------------------------------------


def shape_on_meta(model: str, layers: int | None) -> dict:
    """The model's shape, built on PyTorch's meta device (no memory, no weights): parameter count, decoder
    width and depth."""
    from transformers import AutoModelForImageTextToText

    config, _ = _parts(model)(**({} if layers is None else {"layers": layers}))
    with torch.device("meta"):
        built = AutoModelForImageTextToText.from_config(config)
    text = config.get_text_config()
    return {"parameters": f"{sum(p.numel() for p in built.parameters()) / 1e9:.2f} B", "hidden": text.hidden_size,
            "layers": text.num_hidden_layers, "vocabulary": text.vocab_size}


def _parts(model: str) -> Callable:
    from quadrant.models import tiny

    return tiny.llava_15_7b_parts if model == "llava" else tiny.qwen25_vl_7b_parts


def gpu_state() -> dict:
    """Whether PyTorch sees a CUDA GPU, and what the driver says."""
    state = {"torch": torch.__version__, "cuda": torch.cuda.is_available(), "torch_cuda_build": torch.version.cuda}
    if state["cuda"]:
        free, total = torch.cuda.mem_get_info()
        state.update(device=torch.cuda.get_device_name(), free_gib=free / 2**30, total_gib=total / 2**30)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        state["nvidia_smi"] = "not found"
    else:
        done = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
        state["nvidia_smi"] = done.stdout.strip() or done.stderr.strip() or "no output"
    return state


def _build(model: str, out: Path, layers: int | None) -> Path:
    """The model with random weights drawn on the GPU, saved in bf16."""
    from quadrant.models import tiny

    builder = tiny.llava_15_7b_shaped if model == "llava" else tiny.qwen25_vl_7b_shaped
    return builder(out, device="cuda", dtype=torch.bfloat16, **({} if layers is None else {"layers": layers}))


# -- on a GPU ----------------------------------------------------------------------------------------------


def check_model(model: str, steps: list[str], args, work: Path) -> list[dict]:
    from quadrant.models.phantoms import generate_phantoms

    results = []
    started = time.perf_counter()
    directory = _build(model, work / "pytorch", args.layers)
    say(model, "built", {"seconds": time.perf_counter() - started, "folder": directory})
    phantoms = generate_phantoms(work / "phantoms", max(1, args.phantoms // 5), seed=2032)
    if "torch" in steps:
        for dtype in ("float16", "bfloat16"):
            results.append(_torch_row(model, directory, dtype, args.repeats))
    fp16 = None
    if "onnx" in steps or "int4" in steps:
        fp16 = _export(model, directory, work / "onnx-fp16", "float16", None, phantoms)
    if "onnx" in steps:
        for device in ("cuda", "tensorrt"):
            results.append(_onnx_row(model, fp16, device, args.repeats))
    if "int4" in steps:
        fp32 = _export(model, directory, work / "onnx-fp32", "float32", None, None)
        int4 = _export(model, fp32, work / "onnx-int4", "float32", "int4", phantoms)
        shutil.rmtree(fp32, ignore_errors=True)
        row = _onnx_row(model, int4, "cuda", args.repeats)
        row["vs_fp16_ms"] = row["quadrant_ms"] / _onnx_row(model, fp16, "cuda", args.repeats)["quadrant_ms"]
        results.append(row)
    return results


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        started = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _new_studies(repeats: int) -> Iterator:
    """A study not checked before for each timed check (and its warm-up): a check keeps a study's prefix for
    its next question, so the same study again would time a follow-up."""
    from quadrant.bench import _study

    return iter([_study(seed, size=1024) for seed in range(1, repeats + 2)])


def _torch_row(model: str, directory: Path, dtype: str, repeats: int) -> dict:
    from quadrant.backends import ScoreRequest, load_model
    from quadrant.bench import _study
    from quadrant.check import Checker
    from quadrant.loading import ModelSpec

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    loaded = load_model(ModelSpec(model=str(directory), device="cuda", dtype=dtype))
    fast, naive = Checker(loaded).prepare(), Checker(loaded, "torch-naive").prepare()
    study = _study(size=1024)
    new_studies = _new_studies(repeats)
    first = fast.check(study, QUESTION)
    reference = naive.check(study, QUESTION)
    single = [ScoreRequest(first.prompts[0].rendered, study.image)]
    row = {"model": model, "runtime": f"torch {dtype}", "path": first.timing_ms["path"],
           "quadrant_ms": _median_ms(lambda: fast.check(next(new_studies), QUESTION), repeats),
           "one_forward_ms": _median_ms(lambda: naive.scorer.margins(single), repeats),
           "naive_ms": _median_ms(lambda: naive.check(study, QUESTION), repeats),
           "max_margin_diff_vs_naive": max(abs(a.margin - b.margin) for a, b in
                                           zip(first.prompts, reference.prompts, strict=True)),
           "peak_gib": torch.cuda.max_memory_allocated() / 2**30}
    say(model, f"torch {dtype}", {k: v for k, v in row.items() if k not in ("model", "runtime")})
    return row


def _export(model: str, source, out: Path, dtype: str, quantize: str | None, phantoms) -> Path:
    """An export made and validated on the GPU (the PyTorch reference and ONNX Runtime both on CUDA)."""
    from quadrant.export.onnx import export_onnx
    from quadrant.export.verdicts import ValidationSet

    started = time.perf_counter()
    validate_on = None if phantoms is None else ValidationSet(phantoms, "phantoms (seed 2032)")
    manifest = export_onnx(str(source), None, out, dtype=dtype, quantize=quantize, validate_on=validate_on,
                           min_agreement=0.0, device="cuda", log=lambda line: None)
    figures = {"seconds": time.perf_counter() - started, "gib": manifest.model_bytes / 2**30}
    if manifest.verdicts:
        figures["verdicts"] = manifest.verdicts["summary"]
    say(model, f"export {manifest.precision}", figures)
    return out


def _onnx_row(model: str, export: Path, device: str, repeats: int) -> dict:
    from quadrant.backends import ScoreRequest, load_model
    from quadrant.bench import _study
    from quadrant.check import Checker
    from quadrant.errors import QuadrantError
    from quadrant.loading import ModelSpec

    torch.cuda.empty_cache()
    before = torch.cuda.mem_get_info()[0]
    try:
        loaded = load_model(ModelSpec(model=str(export), device=device))
    except QuadrantError as exc:  # the provider is not here: say so and go on
        row = {"model": model, "runtime": f"onnxruntime {device}", "unavailable": str(exc)}
        say(model, f"onnxruntime {device}", {"unavailable": str(exc)})
        return row
    checker = Checker(loaded).prepare()
    study = _study(size=1024)
    new_studies = _new_studies(repeats)
    first = checker.check(study, QUESTION)
    scorer = checker.scorer
    every = [ScoreRequest(p.rendered, study.image) for p in first.prompts]
    single = every[:1]
    row = {"model": model, "runtime": f"onnxruntime {device} {loaded.extra['precision']}",
           "provider": loaded.extra["provider"], "path": first.timing_ms["path"],
           "quadrant_ms": _median_ms(lambda: checker.check(next(new_studies), QUESTION), repeats),
           "one_forward_ms": _median_ms(lambda: scorer.full_forward_margins([single[0].rendered], [study.image]),
                                        repeats),
           "naive_ms": _median_ms(lambda: [scorer.full_forward_margins([r.rendered], [study.image]) for r in every],
                                  repeats),
           "gpu_gib_in_use": (before - torch.cuda.mem_get_info()[0]) / 2**30,
           "files_gib": sum(p.stat().st_size for p in export.iterdir()) / 2**30}
    say(model, row["runtime"], {k: v for k, v in row.items() if k not in ("model", "runtime")})
    return row


if __name__ == "__main__":
    sys.exit(main())
