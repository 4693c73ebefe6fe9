"""`quadrant bench`: what a full check costs against the naive way and against one answer.

Everything runs in one process on one machine, so the ratios are fair even where the absolute numbers
are not comparable across machines. The model is built offline with LLaVA-1.5's shape where it matters
for cost (CLIP 336 px, patch 14: 576 image tokens) and a narrower language model on CPU.
"""

from __future__ import annotations

import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from PIL import Image

from .ablation import ablated_image
from .backends import ScoreRequest, load_model
from .backends.torch_naive import NaiveScorer
from .check import Checker, CheckOptions
from .errors import OptionError
from .evidence import DEFAULT_FILL, DEFAULT_GRID, EvidenceOptions, evidence_maps, evidence_stages, forwards_per_map
from .images import Facts, Study
from .images.load import pixel_sha256
from .loading import ModelSpec
from .scope import MIN_SIDE
from .verdict import Verdict

QUESTION = "Is there a pleural effusion?"
#: the synthetic study's side by default, and the largest asked for (a 4,096-pixel film is 50 MB in RGB)
STUDY_SIZE = 512
MAX_STUDY_SIZE = 4096
#: questions no timed check has asked before: a check keeps the content-free reference's margin per question
#: (exact: it depends only on the reference image and the prompt), so the headline check is timed on a
#: question new to the model, and the repeated question separately. The headline check and the follow-up
#: question each take their own. Every word is one Quadrant knows, so no check pays for the language
#: detector's first load.
NEW_QUESTIONS = tuple(f"Is there {size}{finding}?" for size in ("", "a small ", "a large ") for finding in (
    "pneumothorax", "cardiomegaly", "consolidation", "atelectasis", "pulmonary edema", "lung nodule",
    "emphysema", "hilar mass", "lung mass", "hyperinflation", "pleural thickening", "fracture"))


@dataclass(frozen=True)
class BenchConfig:
    hidden: int = 256
    layers: int = 4
    warmup: int = 2
    repeats: int = 7
    device: str = "auto"
    evidence_grid: int = DEFAULT_GRID
    evidence_fill: str = DEFAULT_FILL
    backend: str = "torch"  # or "onnx": ONNX Runtime runs every path, on each model's export
    #: the synthetic study's side in pixels: a radiograph from a modality is 2,000-3,000, and at that size the
    #: image's handling (its copies and the processor's resize) weighs in the check and its map
    study_size: int = STUDY_SIZE

    def __post_init__(self):
        most = len(NEW_QUESTIONS) // 2 - self.warmup
        if not 1 <= self.repeats <= most:
            raise OptionError(f"--repeats must be 1 to {most} (each timed check asks a question new to the model), "
                              f"got {self.repeats}")
        if not MIN_SIDE <= self.study_size <= MAX_STUDY_SIZE:
            raise OptionError(f"--study-size must be {MIN_SIDE} to {MAX_STUDY_SIZE} pixels, got {self.study_size}")


def _once_ms(fn: Callable[[], object]) -> float:
    """One call's wall time, the GPU's queued work included."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - started) * 1000


def _interleaved_ms(runs: dict, warmup: int, repeats: int) -> dict:
    """Each call's median wall time, the calls made in turn, one of each, repeat after repeat: a shared machine
    slowing down mid-run then slows all of them alike and their ratios hold (timed one after another, the same
    exports' ratio moved by 0.4, and the check's overhead over one forward by 0.25)."""
    for _ in range(warmup):
        for fn in runs.values():
            fn()
    taken = {key: [] for key in runs}
    for _ in range(repeats):
        for key, fn in runs.items():
            taken[key].append(_once_ms(fn))
    return {key: statistics.median(times) for key, times in taken.items()}


def _study(seed: int = 0, size: int = STUDY_SIZE) -> Study:
    """A chest-sized synthetic study, named by its pixels and carrying the facts its loading would have found
    (an 8-bit grayscale PNG), as a loaded one does: a study built without them has its colour judged again on
    every check (1 ms at 512 px), which no loaded study pays. Its content does not change the cost."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
    image = Image.fromarray(pixels, mode="L").convert("RGB")
    return Study(image=image, sha256=f"{seed:064x}", width=size, height=size, format="PNG",
                 pixels_sha256=pixel_sha256(image), facts=Facts(bits=8, photometric="L"))


@dataclass(frozen=True)
class BenchModel:
    """A model to time: its PyTorch directory and, for `--backend onnx`, its validated ONNX export, and any
    smaller exports of it (precision -> folder) to time beside that one."""

    directory: str
    export: str | None = None
    precisions: dict[str, str] = field(default_factory=dict)


@dataclass
class _Timing:
    """One model made ready to time: what each timing key runs, the row's other fields, and what the evidence
    map's cost needs."""

    runs: dict[str, Callable[[], object]]
    row: dict
    checker: Checker
    first: Verdict
    study: Study


def _measure(model: BenchModel, config: BenchConfig) -> dict:
    """Naive, one-forward and Quadrant timings on one model, plus the largest margin difference (against
    PyTorch's naive way, whichever backend is timed)."""
    return _measure_together([model], config)[0].row


def _measure_together(models: list[BenchModel], config: BenchConfig) -> list[_Timing]:
    """`_measure` for models compared with one another (the precisions of one export), every timed call of
    every model interleaved (`_interleaved_ms`): each kind on each model in turn."""
    ready = [_ready(model, config) for model in models]
    runs = {(index, key): timing.runs[key] for key in ready[0].runs for index, timing in enumerate(ready)}
    for (index, key), ms in _interleaved_ms(runs, config.warmup, config.repeats).items():
        ready[index].row[key] = ms
    return ready


def _ready(model: BenchModel, config: BenchConfig) -> _Timing:
    """A model loaded, its first check made and compared with PyTorch's naive check, and the calls to time."""
    torch_device = config.device if config.device in ("auto", "cpu", "cuda") else "auto"
    loaded = load_model(ModelSpec(model=model.directory, device=torch_device))
    naive = Checker(loaded, "torch-naive", CheckOptions()).prepare()
    study = _study(size=config.study_size)
    if config.backend == "onnx":
        fast_loaded = load_model(ModelSpec(model=model.export, device=config.device))
        fast = Checker(fast_loaded, "onnx", CheckOptions()).prepare()
    else:
        fast_loaded, fast = loaded, Checker(loaded, "torch", CheckOptions()).prepare()
    first = fast.check(study, QUESTION)
    single = [ScoreRequest(first.prompts[0].rendered, study.image)]
    if config.backend == "onnx":  # the naive way on the same runtime: every prompt its own full forward
        scorer = fast.scorer
        every = [ScoreRequest(p.rendered, study.image) for p in first.prompts]
        every.append(ScoreRequest(first.text_only.rendered, None))
        reference = ablated_image(first.content_free.ablation, study.image, study.sha256)
        every.append(ScoreRequest(first.content_free.rendered, reference))  # as PyTorch's naive check does
        naive_fn = lambda: [scorer.full_forward_margins([r.rendered], None if r.image is None else [r.image]) for r in every]  # noqa: E731
        one_fn = lambda: scorer.full_forward_margins([single[0].rendered], [study.image])  # noqa: E731
    else:
        one = NaiveScorer(loaded)
        naive_fn, one_fn = (lambda: naive.check(study, QUESTION)), (lambda: one.margins(single))
    # a check keeps a study's prefix for its next question, so the headline and the question asked before
    # each check a study the model has not seen
    calls = config.warmup + config.repeats
    new_questions, followups = iter(NEW_QUESTIONS[:calls]), iter(NEW_QUESTIONS[calls:])
    new_studies = iter([_study(seed, config.study_size) for seed in range(1, calls + 1)])  # made before the timing
    repeat_studies = iter([_study(seed, config.study_size) for seed in range(calls + 1, 2 * calls + 1)])
    runs = {
        "naive_ms": naive_fn,
        "one_forward_ms": one_fn,
        "quadrant_ms": lambda: fast.check(next(new_studies), next(new_questions)),
        "quadrant_repeat_ms": lambda: fast.check(next(repeat_studies), QUESTION),
        "quadrant_followup_ms": lambda: fast.check(study, next(followups)),
    }
    reference = naive.check(study, QUESTION)
    pairs = list(zip(first.prompts, reference.prompts, strict=True)) + [(first.text_only, reference.text_only),
                                                           (first.content_free, reference.content_free)]
    row = {
        "max_margin_diff": max(abs(a.margin - b.margin) for a, b in pairs),
        "same_verdict": first.quadrant == reference.quadrant,
        "path": first.timing_ms["path"],
        "prompts": len(first.prompts) + 2,  # and the text-only and content-free passes of prompt 0
        "device": str(fast_loaded.device),
        "dtype": str(fast_loaded.dtype).replace("torch.", ""),
        "backend": fast.backend,
    }
    if "provider" in fast_loaded.extra:
        row["provider"], row["opset"] = fast_loaded.extra["provider"], fast_loaded.graphs.manifest.opset
    return _Timing(runs, row, fast, first, study)


def _evidence_cost(timing: _Timing, config: BenchConfig) -> dict:
    """What one occlusion map of prompt 0 costs beside the check: with-image forwards (one per occluded
    copy, batched by the backend) and milliseconds, for the full map, under `adaptive` the coarse-to-fine one,
    under `first_look` the full map drawn as the app draws it (its coarse blocks first: `first_ms` is the
    wait for that first look), and under `follow_up` the full map of another question about a study already
    mapped (its copies' readings kept, as a checker keeps them), their calls interleaved like the check's."""
    checker, verdict, study, timings = timing.checker, timing.first, timing.study, timing.row
    studies = [(verdict.prompts[0].rendered, study.image, verdict.prompts[0].margin)]
    modes = {mode: EvidenceOptions(config.evidence_grid, config.evidence_fill, mode) for mode in ("full", "adaptive")}
    runs = {mode: (lambda options=options: evidence_maps(checker.scorer.margins, studies, options))
            for mode, options in modes.items()}
    pictures = [study.pixels_sha256]
    evidence_maps(checker.scorer.margins, studies, modes["full"], pictures=pictures)  # the map asked before
    # prompt 0 of other questions about the study (the timed checks' questions), asked before the timing
    others = iter([checker.check(study, q).prompts[0] for q in NEW_QUESTIONS[: config.warmup + config.repeats]])

    def follow_up() -> None:
        prompt = next(others)
        evidence_maps(checker.scorer.margins, [(prompt.rendered, study.image, prompt.margin)], modes["full"],
                      pictures=pictures)

    runs["follow_up"] = follow_up
    first_looks: list[float] = []  # each call's wait for its first stage

    def first_look() -> None:
        started = time.perf_counter()
        stages = evidence_stages(checker.scorer.margins, studies, modes["full"], first_look=True)
        next(stages)
        first_looks.append((time.perf_counter() - started) * 1000)
        for _ in stages:
            pass

    runs["first_look"] = first_look
    warmup = min(1, config.warmup)
    taken = _interleaved_ms(runs, warmup, config.repeats)
    costs = {}
    for mode, options in modes.items():
        costs[mode] = _cost(taken[mode], forwards_per_map(options), timings)
    costs["first_look"] = {**_cost(taken["first_look"], forwards_per_map(modes["full"], first_look=True), timings),
                           "first_ms": statistics.median(first_looks[warmup:])}
    return {"grid": [config.evidence_grid, config.evidence_grid], "fill": config.evidence_fill,
            "check_forwards": timings["prompts"], **costs["full"], "adaptive": costs["adaptive"],
            "first_look": costs["first_look"], "follow_up": _cost(taken["follow_up"], forwards_per_map(modes["full"]),
                                                                  timings)}


def _cost(ms: float, forwards: int, timings: dict) -> dict:
    """A map's forwards and time, against the check's and one forward's."""
    return {"forwards": forwards, "ms": ms, "vs_check": ms / timings["quadrant_ms"],
            "vs_one_forward": ms / timings["one_forward_ms"]}


def _precision_row(precision: str, folder: str, row: dict, fp32: dict) -> dict:
    """One precision's timings beside fp32's, its files' size, and how its verdicts compared with PyTorch's
    when it was exported (`quadrant export onnx` keeps that in the manifest)."""
    from .backends.onnx_format import graph_weight_bytes, read_manifest, shipped_bytes

    manifest = read_manifest(folder)
    fp32_sizes = manifest.unquantized_sizes or manifest.sizes
    return {"precision": precision, "quadrant_ms": row["quadrant_ms"], "one_forward_ms": row["one_forward_ms"],
            "naive_ms": row["naive_ms"], "faster_than_fp32": fp32["quadrant_ms"] / row["quadrant_ms"],
            "bytes": manifest.model_bytes, "size_vs_fp32": manifest.model_bytes / shipped_bytes(fp32_sizes),
            "weights_vs_fp32": manifest.weight_bytes / graph_weight_bytes(fp32_sizes),
            "max_margin_diff": row["max_margin_diff"], "path": row["path"],
            "verdicts": (manifest.verdicts or {}).get("summary")}


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if platform.system() == "Darwin" else peak / 1024


def run_bench(headline: BenchModel, families: dict[str, BenchModel | str], config: BenchConfig = BenchConfig()) -> dict:
    """The benchmark's JSON: headline on the LLaVA-1.5-shaped model, then a row per family (the command
    builds the models and, for ONNX, exports them: the core only times what it is given)."""
    torch.set_flush_denormal(True)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    folders = {"fp32": headline.export, **headline.precisions}
    timed = _measure_together([replace(headline, export=folder) for folder in folders.values()], config)
    measured = timed[0].row
    measured["evidence"] = _evidence_cost(timed[0], config)
    result = {
        "model": {"family": "llava", "image_tokens": 576, "image_size": 336, "patch_size": 14,
                  "hidden": config.hidden, "layers": config.layers,
                  "note": "LLaVA-1.5 image geometry; the language model is narrower than 7B"},
        **measured,
        "speedup": measured["naive_ms"] / measured["quadrant_ms"],
        "overhead": measured["quadrant_ms"] / measured["one_forward_ms"],
        "overhead_repeat": measured["quadrant_repeat_ms"] / measured["one_forward_ms"],
        "overhead_followup": measured["quadrant_followup_ms"] / measured["one_forward_ms"],
        "study_size": config.study_size,
        "peak_rss_mib": round(_peak_rss_mib(), 1),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if config.backend == "onnx":
        import onnxruntime

        result["onnxruntime"] = onnxruntime.__version__
    if torch.cuda.is_available():
        result["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    if headline.precisions:  # timed beside the float32 export, in turn: their ratios are what these rows are for
        result["precisions"] = [_precision_row(precision, folder, timing.row, measured)
                                for (precision, folder), timing in zip(folders.items(), timed, strict=True)]
    if families:
        result["families"] = []
        for family, model in families.items():
            if isinstance(model, str):  # its export was refused, for the reason given
                result["families"].append({"family": family, "refused": model})
                continue
            row = _measure(model, config)
            row["speedup"] = row["naive_ms"] / row["quadrant_ms"]
            result["families"].append({"family": family, **row})
    return result
