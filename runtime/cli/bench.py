"""`quadrant bench`: the fast path against the naive way and against one forward, on this machine."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from ..errors import OptionError, QuadrantError
from ..evidence import DEFAULT_FILL, DEFAULT_GRID, FILLS
from .export import validation_set


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnx"),
                        help="onnx: export the bench model first, then time ONNX Runtime on every path")
    parser.add_argument("--quantize", action="append", choices=("int8", "int4"), default=[],
                        help="--backend onnx: also time the headline model's int8 or int4 export (repeatable), "
                        "each beside fp32, with its files' size")
    parser.add_argument("--opset", type=int, default=None, metavar="N",
                        help="--backend onnx: the exports' ONNX opset (default: the export's, 18; 23 has fused "
                        "attention, rotary and RMS norm operators)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "tensorrt"),
                        help="tensorrt: ONNX Runtime's TensorRT provider (--backend onnx)")
    parser.add_argument("--hidden", type=int, default=256, help="language-model width (default 256 on any device)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-families", action="store_true", help="skip the per-family rows")
    parser.add_argument("--family", action="append", dest="family_names", metavar="NAME",
                        help="a per-family row to run (repeatable; default: every family with a tiny builder, "
                        "e.g. qwen2_5_vl, internvl, llava_onevision, llava_next for the generic path)")
    parser.add_argument("--evidence-grid", type=int, default=DEFAULT_GRID, metavar="N",
                        help=f"cells per side of the evidence map whose cost is measured (default {DEFAULT_GRID})")
    parser.add_argument("--evidence-fill", default=DEFAULT_FILL, choices=FILLS)
    parser.add_argument("--study-size", type=int, default=512, metavar="PIXELS",
                        help="the synthetic study's side (default 512; a radiograph from a modality is 2,000-3,000)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..bench import BenchConfig, run_bench

    config = BenchConfig(hidden=args.hidden, layers=args.layers, repeats=args.repeats, device=args.device,
                         backend=args.backend, evidence_grid=args.evidence_grid, evidence_fill=args.evidence_fill,
                         study_size=args.study_size)
    names = _family_names(args)
    if args.quantize and args.backend != "onnx":
        raise OptionError("--quantize times smaller ONNX exports: use it with --backend onnx")
    if args.opset and args.backend != "onnx":
        raise OptionError("--opset is the ONNX exports' opset: use it with --backend onnx")
    with tempfile.TemporaryDirectory() as tmp:
        headline, families = _build_models(Path(tmp), config, names, args.quantize, args.opset)
        result = run_bench(headline, families, config)
    if args.json:
        print(json.dumps(result))
        return 0
    m = result["model"]
    runtime = f" on ONNX Runtime's {result['provider']} (opset {result['opset']})" if "provider" in result else ""
    print(f"Model: LLaVA-shaped, {m['image_tokens']} image tokens, LM width {m['hidden']} x {m['layers']} layers, "
          f"on {result['device']} ({result['dtype']}){runtime}, {result['threads']} threads; "
          f"a {result['study_size']} px study")
    timings = [(f"naive (each of {result['prompts']} prompts its own forward):", result["naive_ms"]),
               ("one with-image forward of one prompt:", result["one_forward_ms"]),
               (f"Quadrant full check, a new question ({result['path']}):", result["quadrant_ms"]),
               ("Quadrant full check, a question asked before (reference and text-only margins kept):", result["quadrant_repeat_ms"]),
               ("Quadrant full check, a study asked about before (its prefix kept):", result["quadrant_followup_ms"])]
    width = max(len(label) for label, _ in timings)
    for label, ms in timings:
        print(f"  {label:<{width}} {ms:8.1f} ms")
    print(f"  speedup {result['speedup']:.2f}x   overhead {result['overhead']:.2f}x "
          f"({result['overhead_repeat']:.2f}x asked before, {result['overhead_followup']:.2f}x a follow-up)   "
          f"max |margin diff| {result['max_margin_diff']:.1e}   peak RSS {result['peak_rss_mib']:.0f} MiB")
    e = result["evidence"]
    print(f"  evidence map ({e['grid'][0]}x{e['grid'][1]} {e['fill']}): {e['forwards']} with-image forwards "
          f"(the check: {e['check_forwards']} prompts), {e['ms']:8.1f} ms = {e['vs_check']:.1f}x the check, "
          f"{e['vs_one_forward']:.1f}x one forward")
    a = e["adaptive"]
    print(f"  evidence map, coarse to fine (--evidence-mode adaptive): {a['forwards']} with-image forwards, "
          f"{a['ms']:8.1f} ms = {a['vs_check']:.1f}x the check, {a['vs_one_forward']:.1f}x one forward")
    f = e["first_look"]
    print(f"  evidence map with a first look (as the app draws it): {f['forwards']} with-image forwards, the first "
          f"look after {f['first_ms']:.1f} ms = {f['first_ms'] / result['quadrant_ms']:.1f}x the check, the map "
          f"{f['ms']:8.1f} ms = {f['vs_check']:.1f}x the check")
    u = e["follow_up"]
    print(f"  evidence map of another question about a study mapped before (its copies' readings kept): "
          f"{u['ms']:8.1f} ms = {u['vs_check']:.1f}x the check, {u['vs_one_forward']:.1f}x one forward")
    for row in result.get("precisions", []):
        verdicts = f"  {row['verdicts']}" if row["verdicts"] else ""
        print(f"  {row['precision']:5s} quadrant {row['quadrant_ms']:7.1f} ms  one forward "
              f"{row['one_forward_ms']:7.1f} ms  {row['faster_than_fp32']:.2f}x fp32's speed  "
              f"{row['bytes'] / 2**20:6.1f} MiB = {row['size_vs_fp32']:.0%} of fp32 (weights "
              f"{row['weights_vs_fp32']:.0%})  max diff {row['max_margin_diff']:.1e}  path {row['path']}{verdicts}")
    for row in result.get("families", []):
        if "refused" in row:
            print(f"  {row['family']:16s} refused: {row['refused']}")
            continue
        print(f"  {row['family']:16s} naive {row['naive_ms']:7.1f} ms  quadrant {row['quadrant_ms']:7.1f} ms  "
              f"speedup {row['speedup']:.2f}x  path {row['path']}  max diff {row['max_margin_diff']:.1e}")
    return 0


def _family_names(args: argparse.Namespace) -> list[str]:
    """The per-family rows asked for: every family with a tiny builder by default, none with --no-families."""
    from quadrant.models.tiny import BUILDERS

    known = tuple(BUILDERS)
    unknown = [name for name in args.family_names or () if name not in known]
    if unknown:
        raise OptionError(f"no tiny model for family {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
    if args.no_families:
        return []
    return list(args.family_names or known)


def _build_models(root: Path, config, names: list[str], quantize: list[str], opset: int | None):
    """The bench models, built offline (and exported, for ONNX): the headline LLaVA-1.5-shaped model (and its
    smaller exports) and a tiny model per family."""
    from dataclasses import replace

    from quadrant.models.tiny import TinySpec, build_tiny, llava_15_shaped

    from ..bench import BenchModel

    def bench_model(directory: Path) -> BenchModel:
        return BenchModel(str(directory), _export(directory, opset) if config.backend == "onnx" else None)

    headline = bench_model(llava_15_shaped(root / "llava15", hidden=config.hidden, layers=config.layers))
    if quantize:
        with validation_set("phantoms:10") as phantoms:
            headline = replace(headline, precisions={kind: _quantized(headline.export, kind, phantoms)
                                                     for kind in dict.fromkeys(quantize)})
    spec = TinySpec(hidden=128, layers=2, vision_hidden=64, image_size=64, patch_size=8)
    families = {}
    for family in names:
        try:
            families[family] = bench_model(build_tiny(family, root / family, spec))
        except QuadrantError as exc:  # a model type whose export is refused (LLaVA-NeXT): its row says why
            families[family] = str(exc)
    return headline, families


def _export(directory: Path, opset: int | None) -> str:
    """The model exported to ONNX beside it (validated, as every export is)."""
    from quadrant.export.onnx import DEFAULT_OPSET, export_onnx

    out = f"{directory}-onnx"
    export_onnx(str(directory), None, out, opset=opset or DEFAULT_OPSET, log=lambda line: None)
    return out


def _quantized(export: str, kind: str, phantoms) -> str:
    """A float32 export quantized beside it. Its verdicts are compared with PyTorch's on a few phantoms and
    reported, never refused: the bench model has random weights, so agreement says little about it."""
    from quadrant.export.onnx import export_onnx

    out = f"{export}-{kind}"
    export_onnx(export, None, out, quantize=kind, validate_on=phantoms, min_agreement=0.0, log=lambda line: None)
    return out
