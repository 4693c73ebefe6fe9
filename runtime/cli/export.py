"""`quadrant export ...`: the export stage's commands (merge, onnx, tensorrt)."""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: the default validation set: fresh phantoms from a seed used for nothing else (training draws its phantoms
#: from its own streams; the README's evaluations use seeds 2027-2030)
PHANTOMS, PHANTOM_SEED = 200, 2031


def register(parser: argparse.ArgumentParser) -> None:
    steps = parser.add_subparsers(dest="step", required=True)
    merge = steps.add_parser("merge", help="fold a LoRA adapter into the base weights (parity 1e-4)")
    merge.add_argument("--model", default="demo-shortcut", help="preset, model directory or hub id")
    merge.add_argument("--adapter", help="LoRA adapter directory (default: the preset's)")
    merge.add_argument("--out", required=True, help="new folder for the merged model")
    merge.set_defaults(run=run_merge)

    onnx = steps.add_parser("onnx", help="vision and decoder graphs for ONNX Runtime, validated against PyTorch")
    onnx.add_argument("--model", default="demo", help="preset, model directory or hub id (every family Quadrant "
                      "serves; another model type is tried and validated)")
    onnx.add_argument("--adapter", help="LoRA adapter directory, merged first (default: the preset's)")
    onnx.add_argument("--out", required=True, help="new folder for the export")
    onnx.add_argument("--dtype", default="float32", choices=("float32", "float16"),
                      help="weights and activations (float32 validated to 1e-4, float16 to 5e-2 and on verdicts; "
                      "float16 is for GPUs)")
    onnx.add_argument("--quantize", choices=("int8", "int4"),
                      help="int8: dynamic quantization of weights and activations (CPU); int4: 4-bit weights "
                      "(MatMulNBits, CPU and GPU); judged on verdicts")
    onnx.add_argument("--validate-on", metavar="MANIFEST", help="compare the export's verdicts with its PyTorch "
                      f"source's on a manifest, or 'phantoms' ({PHANTOMS} fresh phantoms, seed {PHANTOM_SEED}: the "
                      "default for float16 and quantized exports; 'phantoms:N' for N of them)")
    onnx.add_argument("--min-agreement", type=float, default=0.98,
                      help="keep the export only if at least this share of verdicts land in the same quadrant "
                      "(default 0.98)")
    onnx.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                      help="where the model is traced and every validation runs (cuda: PyTorch and ONNX Runtime on the "
                      "GPU, for models too large for the CPU)")
    onnx.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    onnx.set_defaults(run=run_onnx)

    tensorrt = steps.add_parser("tensorrt", help="TensorRT engines from an ONNX export (needs TensorRT and a GPU)")
    tensorrt.add_argument("--model", required=True, help="an ONNX export folder (quadrant export onnx)")
    tensorrt.add_argument("--out", required=True, help="new folder for the engines")
    tensorrt.add_argument("--fp16", action="store_true", help="let TensorRT run layers in half precision")
    tensorrt.add_argument("--max-batch", type=int, default=8, help="largest number of studies in one call")
    tensorrt.add_argument("--max-tokens", type=int, default=2048, help="longest prompt, image tokens included")
    tensorrt.set_defaults(run=run_tensorrt)


def run_merge(args: argparse.Namespace) -> int:
    from quadrant.export.merge import merge

    print(json.dumps(merge(args.model, args.adapter, args.out), indent=2))
    return 0


def run_onnx(args: argparse.Namespace) -> int:
    from quadrant.export.onnx import DEFAULT_OPSET, export_onnx

    asked = args.validate_on or ("phantoms" if args.quantize or args.dtype != "float32" else None)
    with validation_set(asked) as validate_on:
        manifest = export_onnx(args.model, args.adapter, args.out, dtype=args.dtype, quantize=args.quantize,
                               opset=args.opset or DEFAULT_OPSET, validate_on=validate_on,
                               min_agreement=args.min_agreement, device=args.device)
    checked = manifest.validation.get("quantized", manifest.validation)  # a quantized export's own margins
    print(f"wrote {args.out}: {manifest.family}, {manifest.precision}, opset {manifest.opset}, largest margin "
          f"difference {max(checked['max_diff_vs_torch'], checked['max_diff_vs_plain']):.1e}")
    if manifest.verdicts:
        print(f"verdicts: {manifest.verdicts['summary']} (report: {Path(args.out) / manifest.verdicts['report']})")
    return 0


@contextlib.contextmanager
def validation_set(asked: str | None) -> Iterator:
    """The studies --validate-on names: a manifest as it is, or fresh phantoms written to a folder that lasts
    as long as the export."""
    from quadrant.errors import OptionError
    from quadrant.export.verdicts import ValidationSet

    if asked is None:
        yield None
    elif asked == "phantoms" or asked.startswith("phantoms:"):
        from quadrant.models.phantoms import generate_phantoms

        count = asked.partition(":")[2] or str(PHANTOMS)
        if not count.isdigit() or int(count) < 1:
            raise OptionError(f"--validate-on {asked}: say how many phantoms, as phantoms:200")
        with tempfile.TemporaryDirectory(prefix="quadrant-phantoms-") as folder:
            manifest = generate_phantoms(folder, int(count), PHANTOM_SEED)
            yield ValidationSet(manifest, f"{int(count)} phantoms (seed {PHANTOM_SEED})")
    else:
        manifest = Path(asked).expanduser()
        if not manifest.is_file():
            raise OptionError(f"--validate-on {asked}: no such manifest (or say 'phantoms')")
        yield ValidationSet(manifest, f"{manifest.name}")


def run_tensorrt(args: argparse.Namespace) -> int:
    from quadrant.export.tensorrt import EngineLimits, build_engines

    written = build_engines(args.model, args.out, fp16=args.fp16,
                            limits=EngineLimits(batch=args.max_batch, tokens=args.max_tokens))
    print(json.dumps(written, indent=2))
    return 0
