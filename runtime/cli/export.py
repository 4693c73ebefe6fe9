"""`quadrant export ...`: the export stage's commands (merge, onnx, tensorrt)."""

from __future__ import annotations

import argparse
import json


def register(parser: argparse.ArgumentParser) -> None:
    steps = parser.add_subparsers(dest="step", required=True)
    merge = steps.add_parser("merge", help="fold a LoRA adapter into the base weights (parity 1e-4)")
    merge.add_argument("--model", default="demo-shortcut", help="preset, model directory or hub id")
    merge.add_argument("--adapter", help="LoRA adapter directory (default: the preset's)")
    merge.add_argument("--out", required=True, help="new folder for the merged model")
    merge.set_defaults(run=run_merge)

    onnx = steps.add_parser("onnx", help="vision and decoder graphs for ONNX Runtime, validated against PyTorch")
    onnx.add_argument("--model", default="demo", help="preset, model directory or hub id (LLaVA, Gemma3, Idefics3)")
    onnx.add_argument("--adapter", help="LoRA adapter directory, merged first (default: the preset's)")
    onnx.add_argument("--out", required=True, help="new folder for the export")
    onnx.add_argument("--dtype", default="float32", choices=("float32", "float16"),
                      help="weights and activations (float32 validated to 1e-4, float16 to 5e-2)")
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

    manifest = export_onnx(args.model, args.adapter, args.out, dtype=args.dtype, opset=args.opset or DEFAULT_OPSET)
    print(f"wrote {args.out}: {manifest.family}, {manifest.dtype}, opset {manifest.opset}, "
          f"largest margin difference {max(manifest.validation['max_diff_vs_torch'], manifest.validation['max_diff_vs_plain']):.1e}")
    return 0


def run_tensorrt(args: argparse.Namespace) -> int:
    from quadrant.export.tensorrt import EngineLimits, build_engines

    written = build_engines(args.model, args.out, fp16=args.fp16,
                            limits=EngineLimits(batch=args.max_batch, tokens=args.max_tokens))
    print(json.dumps(written, indent=2))
    return 0
