"""Option definitions shared by every subcommand that runs a model (README, "Commands": model options,
wherever a model runs), and the one function that turns them into a loaded model and a checker."""

from __future__ import annotations

import argparse

from ..ablation import ABLATIONS
from ..backends import BACKENDS, load_model
from ..check import SCORING_MODES, Checker, CheckOptions
from ..errors import OptionError
from ..evidence import DEFAULT_FILL, DEFAULT_GRID, DEFAULT_MODE, FILLS, MODES, EvidenceOptions, forwards_per_map
from ..loading import DEVICES, DTYPES, ModelSpec
from ..paraphrases import DEFAULT_K, MIN_K, check_k
from ..reliance import (
    DEFAULT_REFERENCE,
    DEFAULT_RULE,
    DEFAULT_THRESHOLD,
    REFERENCES,
    RULES,
    Reliance,
)
from ..scope import DEFAULT_MODALITIES, DEFAULT_SCOPE, MIN_SIDE, SCOPES, check_scope_options


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", default="demo", help="preset name, model directory or hub id (default: demo)")
    group.add_argument("--adapter", help="LoRA adapter directory (peft), folded into the weights at load")
    group.add_argument("--backend", help="torch (fast; the default for a PyTorch model), torch-naive, or onnx "
                       "(the default, and the only choice, for an ONNX export folder)")
    group.add_argument("--device", default="auto", choices=DEVICES, help="tensorrt: ONNX Runtime's TensorRT provider")
    group.add_argument("--dtype", default="auto", choices=list(DTYPES), help="auto: fp32 on CPU, bf16 on GPU")
    group.add_argument("--chat-template", metavar="FILE", help="a Jinja chat template overriding the model's")
    group.add_argument("--prompt", help="instruction wrapping the question; must contain {question}")
    group.add_argument("--ablation", choices=ABLATIONS, help="how the image is taken away (default: none where "
                       "the family allows it, else blank)")
    group.add_argument("--reliance", default=DEFAULT_RULE, choices=RULES,
                       help="content: the image's content moved the answer (against a content-free image); flip: "
                       f"the paper's rule, removing the image flips it (default: {DEFAULT_RULE})")
    group.add_argument("--threshold", type=float,
                       help="the content rule's threshold on the relative content shift |m_image - m_reference| / "
                       f"max(|m_image|, |m_reference|) (default: {DEFAULT_THRESHOLD})")
    group.add_argument("--reference", default=DEFAULT_REFERENCE, choices=REFERENCES,
                       help="what the content rule compares the study with: a content-free image of its size "
                       f"(blank, white, noise; default: {DEFAULT_REFERENCE}), or, in an evaluation with labels, "
                       "another study whose label is the opposite (opposite) or the same (same-label, a control)")
    group.add_argument("--scoring", default=None, choices=SCORING_MODES,
                       help="logits: read yes/no off the first answer token; generate: generate and parse "
                       "(default: the preset's, logits for most)")
    group.add_argument("--max-new-tokens", type=int, default=None,
                       help="generate mode's token budget (default: the preset's, 8 for direct answerers)")
    group.add_argument("-k", "--num-paraphrases", type=int, default=DEFAULT_K, dest="k",
                       help=f"paraphrases per question, at least {MIN_K} (default {DEFAULT_K})")
    group.add_argument("--paraphrase-bank", metavar="FILE", help="a JSON paraphrase bank extending the built-in "
                       "one (or replacing it, with \"extends\": false); format in the README")
    group.add_argument("--paraphraser", metavar="MODEL_DIR", help="a local Hugging Face chat model that writes "
                       "candidate paraphrases, kept only when faithful (offline; topped up by the rules)")
    group.add_argument("--ablate-all", action="store_true",
                       help="ablate every phrasing and judge image reliance by majority")
    group.add_argument("--scope", default=DEFAULT_SCOPE, choices=SCOPES,
                       help="chest-radiograph (default): refuse a study that is not one (another modality or body "
                       f"part, several frames, colour, under {MIN_SIDE} px); any: check it anyway, for research, "
                       "its verdict marked out of scope")
    group.add_argument("--modalities", default=",".join(DEFAULT_MODALITIES), metavar="LIST",
                       help="DICOM modalities that count as chest radiographs, comma-separated "
                       f"(default {','.join(DEFAULT_MODALITIES)})")
    group.add_argument("--evidence", action="store_true",
                       help="add an occlusion map of prompt 0 to the verdict (grid x grid more forwards; "
                            f"{forwards_per_map(EvidenceOptions(DEFAULT_GRID, mode='adaptive'))} on the default "
                            "grid with --evidence-mode adaptive)")
    group.add_argument("--evidence-grid", type=int, metavar="N",
                       help=f"evidence map cells per side (default {DEFAULT_GRID}; implies --evidence)")
    group.add_argument("--evidence-fill", choices=FILLS,
                       help=f"what fills a cell: the blurred study or mid-gray (default {DEFAULT_FILL}; implies "
                            "--evidence)")
    group.add_argument("--evidence-mode", choices=MODES,
                       help=f"adaptive: coarse blocks first, then only the strongest split down to cells; full: every "
                            f"cell (default {DEFAULT_MODE}; implies --evidence)")


def reliance(args: argparse.Namespace) -> Reliance:
    """The reliance rule the options name. A threshold belongs to the content rule: given with --reliance
    flip, which has none, it is refused rather than silently dropped."""
    if args.threshold is not None and args.reliance == "flip":
        raise OptionError("--threshold is the content rule's; the flip rule has no threshold (drop --threshold, "
                          "or use --reliance content)")
    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    return Reliance(args.reliance, threshold, args.reference)


def single_study(args: argparse.Namespace) -> None:
    """Refuse what only an evaluation can do, before a model loads: a command that checks one study at a time
    (check, app) has no other labelled study to compare with."""
    Reliance(reference=args.reference).require_single_study()


def evidence_options(args: argparse.Namespace) -> EvidenceOptions | None:
    """The map the options ask for, or None. Saying how to draw a map (--evidence-grid, --evidence-fill,
    --evidence-mode) asks for one, as --evidence does: a shape given without it was silently dropped."""
    if not (args.evidence or args.evidence_grid is not None or args.evidence_fill is not None
            or args.evidence_mode is not None):
        return None
    return EvidenceOptions(DEFAULT_GRID if args.evidence_grid is None else args.evidence_grid,
                           args.evidence_fill or DEFAULT_FILL, args.evidence_mode or DEFAULT_MODE)


def build_checker(args: argparse.Namespace) -> Checker:
    """Load the model the options name, wrap it in a checker and prepare it for its first check."""
    return load_checker(args).prepare()


def load_checker(args: argparse.Namespace) -> Checker:
    """The model the options name in a checker, not yet prepared: for a server, which prepares it on the thread
    its checks will run on (`quadrant.batcher`)."""
    spec, options = spec_and_options(args)
    return Checker(load_model(spec), options=options)


def spec_and_options(args: argparse.Namespace) -> tuple[ModelSpec, CheckOptions]:
    """What to load and how to check, validated, without loading any model: evaluate's workers load the model
    and a --paraphraser's weights (`Checker.prepare`). The backend is the spec's to choose, from the resolved
    source, when the model loads."""
    chat_template = None
    if args.chat_template:
        try:
            with open(args.chat_template, encoding="utf-8") as handle:
                chat_template = handle.read()
        except OSError as exc:
            raise OptionError(f"cannot read chat template {args.chat_template}: {exc.strerror}") from exc
    spec = ModelSpec(
        model=args.model, adapter=args.adapter, device=args.device, dtype=args.dtype,
        chat_template=chat_template, prompt=args.prompt,
        backend=BACKENDS.canonical(args.backend) if args.backend else None,  # an unknown name fails before any load
    )
    from ..bank import load_bank
    from ..paraphrase_model import LocalParaphraser

    check_k(args.k)  # a bad K, scope or bank fails before any model loads
    check_scope_options(args.scope, args.modalities)
    bank = load_bank(args.paraphrase_bank)
    paraphraser = LocalParaphraser(args.paraphraser, device=args.device) if args.paraphraser else None
    options = CheckOptions(
        ablation=args.ablation, reliance=reliance(args), k=args.k,
        scoring=args.scoring, ablate_all=args.ablate_all, max_new_tokens=args.max_new_tokens, bank=bank,
        paraphraser=paraphraser,
        evidence=evidence_options(args),
        scope=args.scope, modalities=tuple(args.modalities.split(",")),
    )
    return spec, options
