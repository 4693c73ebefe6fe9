"""Option definitions shared by every subcommand that runs a model (SPEC: "Model options, wherever a model
runs"), and the one function that turns them into a loaded model and a checker."""

from __future__ import annotations

import argparse

from ..ablation import ABLATIONS
from ..check import SCORING_MODES, Checker, CheckOptions
from ..evidence import DEFAULT_FILL, DEFAULT_GRID, FILLS, EvidenceOptions
from ..loading import DEVICES, DTYPES, ModelSpec, load_model
from ..reliance import DEFAULT_RULE, DEFAULT_THRESHOLD, RULES, Reliance


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", default="demo", help="preset name, model directory or hub id (default: demo)")
    group.add_argument("--adapter", help="LoRA adapter directory (peft), folded into the weights at load")
    group.add_argument("--backend", default="torch", help="torch (fast, default), torch-naive, or onnx")
    group.add_argument("--device", default="auto", choices=DEVICES)
    group.add_argument("--dtype", default="auto", choices=list(DTYPES), help="auto: fp32 on CPU, bf16 on GPU")
    group.add_argument("--chat-template", metavar="FILE", help="a Jinja chat template overriding the model's")
    group.add_argument("--prompt", help="instruction wrapping the question; must contain {question}")
    group.add_argument("--ablation", choices=ABLATIONS, help="how the image is taken away (default: none where "
                       "the family allows it, else blank)")
    group.add_argument("--reliance", default=DEFAULT_RULE, choices=RULES, help=f"default: {DEFAULT_RULE}")
    group.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                       help=f"margin-shift threshold of the margin and either rules (default: {DEFAULT_THRESHOLD})")
    group.add_argument("--scoring", default="logits", choices=SCORING_MODES,
                       help="logits: read yes/no off the first answer token; generate: generate and parse")
    group.add_argument("-k", "--num-paraphrases", type=int, default=5, dest="k",
                       help="paraphrases from the built-in bank (default 5)")
    group.add_argument("--ablate-all", action="store_true",
                       help="ablate every phrasing and judge image reliance by majority")
    group.add_argument("--evidence", action="store_true",
                       help="add an occlusion map of prompt 0 to the verdict (grid x grid more forwards)")
    group.add_argument("--evidence-grid", type=int, default=DEFAULT_GRID, metavar="N",
                       help=f"evidence map cells per side (default {DEFAULT_GRID})")
    group.add_argument("--evidence-fill", default=DEFAULT_FILL, choices=FILLS,
                       help=f"what fills a cell: the blurred study or mid-gray (default {DEFAULT_FILL})")


def build_checker(args: argparse.Namespace) -> Checker:
    """Load the model the options name and wrap it in a checker."""
    chat_template = None
    if args.chat_template:
        from ..errors import OptionError

        try:
            with open(args.chat_template, encoding="utf-8") as handle:
                chat_template = handle.read()
        except OSError as exc:
            raise OptionError(f"cannot read chat template {args.chat_template}: {exc.strerror}") from exc
    spec = ModelSpec(
        model=args.model, adapter=args.adapter, device=args.device, dtype=args.dtype,
        chat_template=chat_template, prompt=args.prompt,
    )
    options = CheckOptions(
        ablation=args.ablation, reliance=Reliance(args.reliance, args.threshold), k=args.k,
        scoring=args.scoring, ablate_all=args.ablate_all,
        evidence=EvidenceOptions(args.evidence_grid, args.evidence_fill) if args.evidence else None,
    )
    from ..backends import BACKENDS

    BACKENDS.canonical(args.backend)  # an unknown backend fails before the model loads
    return Checker(load_model(spec), backend=args.backend, options=options)
