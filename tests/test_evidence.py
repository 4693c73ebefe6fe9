"""Evidence maps: every delta against a plain Hugging Face forward on a copy filled by hand, the grid and the
fills, the scale-free reading, the verdict key, the command line, and the pointing game in evaluations."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from transformers import AutoModelForImageTextToText, AutoProcessor

from conftest import ALL_FAMILIES, LATER_FAMILIES
from plain_forward import PlainForward
from quadrant.check import Checker, CheckOptions, CheckRequest
from quadrant.cli.main import main
from quadrant.errors import OptionError, StudyError
from quadrant.evidence import (
    DEFAULT_MODE,
    GRAY,
    EvidenceOptions,
    Stage,
    cell_boxes,
    describe,
    evidence_maps,
    evidence_stages,
    fill_source,
    forwards_per_map,
    occluded,
    patient_sides,
    pointing,
    support,
)
from quadrant.evidence_plot import COLOUR_FLOOR, figure
from quadrant.images import Study, load_study
from quadrant.backends import load_model
from quadrant.loading import ModelSpec
from quadrant.manifest import read_manifest
from quadrant.models.phantoms import generate_phantoms
from quadrant.models.presets import MODELS_DIR
from quadrant.verdict import Verdict

N_STUDIES = 12  # 24 positive studies; the figures from larger runs are in the README
SAMPLE = MODELS_DIR / "samples" / "cardiomegaly-effusion.png"
DICOM = MODELS_DIR / "samples" / "cardiomegaly-dicom.dcm"
QUESTION = "Is there a pleural effusion?"


@pytest.fixture(scope="module")
def demo():
    return load_model(ModelSpec(model="demo"))


def plain_margin(model, processor, rendered: str, image: Image.Image, answer_tokens: dict) -> float:
    """prompt 0's margin by one plain forward: processor, model, logsumexp over the scored yes/no ids."""
    inputs = processor(text=[rendered], images=[image], return_tensors="pt")
    with torch.inference_mode():
        logits = model(**inputs).logits[0, -1].double()
    return float(torch.logsumexp(logits[answer_tokens["yes"]], 0) - torch.logsumexp(logits[answer_tokens["no"]], 0))


@pytest.fixture(scope="module")
def plain():
    """The demo model as Hugging Face loads it, for forwards outside Quadrant."""
    processor = AutoProcessor.from_pretrained(MODELS_DIR / "demo")
    return processor, AutoModelForImageTextToText.from_pretrained(MODELS_DIR / "demo").eval()


def _by_hand(plain, verdict, image: Image.Image, box) -> float:
    """prompt 0's delta for `box` filled with mid-gray by hand, by plain forwards."""
    processor, model = plain
    rendered, tokens = verdict.prompts[0].rendered, verdict.model["answer_tokens"]
    pixels = np.asarray(image).copy()
    x0, y0, x1, y1 = box
    pixels[y0:y1, x0:x1] = 128
    return (plain_margin(model, processor, rendered, image, tokens)
            - plain_margin(model, processor, rendered, Image.fromarray(pixels), tokens))


def test_each_delta_is_a_plain_forward_on_a_copy_filled_by_hand(demo, plain):
    study = load_study(SAMPLE)
    options = EvidenceOptions(grid=3, fill="gray", mode="full")
    verdict = Checker(demo, options=CheckOptions(k=2, evidence=options)).check(study, QUESTION)
    evidence = verdict.evidence
    assert evidence["method"] == "occlusion" and evidence["fill"] == "gray" and evidence["grid"] == [3, 3]
    assert evidence["prompt"] == 0 and len(evidence["cells"]) == 9
    assert evidence["mode"] == "full" and evidence["forwards"] == 9 == forwards_per_map(options)
    moved = 0
    for cell in evidence["cells"]:
        assert set(cell) == {"box", "delta"}  # full mode: every cell filled on its own, as before
        expected = _by_hand(plain, verdict, study.image, cell["box"])
        assert cell["delta"] == pytest.approx(expected, abs=1e-4)
        moved += abs(expected) > 1e-3
    assert moved >= 3  # the check is not vacuous: filling cells really moves this model's margin


@pytest.mark.parametrize("family", ALL_FAMILIES + LATER_FAMILIES)
def test_every_familys_map_is_plain_forwards_on_copies_filled_by_hand(family, tiny_model, study_png, monkeypatch):
    """A map's filled copies go to the processor as pixel arrays and the study as a PIL image: every family's
    processor must read the two alike, so each cell is the delta of plain forwards on a PIL copy filled by hand.
    The copies are read on worker threads, each with its own copy of the processor, whatever this machine's cores.
    The next question's map reads no copy again: it splices the copies' kept readings with its own prompt, and
    is held to plain forwards the same way; nor does it make the copies, or the fill they are made from."""
    import quadrant.backends.fast_path
    import quadrant.evidence

    monkeypatch.setattr(quadrant.backends.fast_path, "PREPROCESS_WORKERS", 2)
    made = []
    for name in ("occluded", "fill_source"):
        real = getattr(quadrant.evidence, name)
        monkeypatch.setattr(quadrant.evidence, name, lambda *args, real=real, name=name: made.append(name) or real(*args))
    directory = tiny_model(family)
    options = CheckOptions(k=2, evidence=EvidenceOptions(grid=2), ablation="blank" if family == "paligemma" else None)
    study = load_study(study_png)
    checker = Checker(load_model(ModelSpec(model=directory, device="cpu")), "torch", options)
    oracle = PlainForward(directory)
    source = fill_source(study.image, "blur", 2)
    reads, makes = [], []
    for question in (QUESTION, "Is there cardiomegaly?"):
        made.clear()
        verdict = checker.check(study, question)
        makes.append(sorted(made))
        rendered, tokens = verdict.prompts[0].rendered, verdict.model["answer_tokens"]
        m0 = oracle.margin(rendered, study.image, tokens["yes"], tokens["no"])
        assert max(abs(cell["delta"]) for cell in verdict.evidence["cells"]) > 1e-3  # the fills move this model
        for cell in verdict.evidence["cells"]:
            box = tuple(cell["box"])
            copy = study.image.copy()
            copy.paste(source.crop(box), box[:2])
            expected = m0 - oracle.margin(rendered, copy, tokens["yes"], tokens["no"])
            assert cell["delta"] == pytest.approx(expected, abs=1e-4)
        reads.append(len(checker.scorer._copy_readings))
        monkeypatch.setattr(checker.loaded.family, "read_image", _no_reading)
    kept = 4 if checker.scorer.prefix_ok() else 0  # a model on batched full forwards reads copies whole
    assert reads == [kept, kept]  # the second map's copies were the first's
    first = ["fill_source"] + ["occluded"] * 4
    assert makes == [first, [] if kept else first]


def _no_reading(*args):
    raise AssertionError("a map copy's picture was read again")


def test_maps_of_one_films_findings_in_one_call_read_each_copy_once(tiny_model, study_png, monkeypatch):
    """A dataset batch asks several findings of one film: their maps' copies are the same pictures, read once on
    the workers and spliced with each question's prompt, and each map is the map drawn alone."""
    import quadrant.backends.fast_path as fast_path

    monkeypatch.setattr(fast_path, "PREPROCESS_WORKERS", 2)
    loaded = load_model(ModelSpec(model=tiny_model("llava"), device="cpu"))
    study = load_study(study_png)
    options = CheckOptions(k=2)
    questions = (QUESTION, "Is there cardiomegaly?", "Is there a pneumothorax?")
    checker = Checker(loaded, "torch", options)
    verdicts = checker.check_many([CheckRequest(study, question) for question in questions])
    reads = []
    read_image = loaded.family.read_image
    monkeypatch.setattr(loaded.family, "read_image", lambda *args: reads.append(1) or read_image(*args))
    together = checker.draw_evidence([(study, verdict) for verdict in verdicts], EvidenceOptions(grid=2))
    assert len(reads) == 4  # the four copies, not twelve
    monkeypatch.setattr(loaded.family, "read_image", read_image)
    for verdict, mapped in zip(verdicts, together, strict=True):
        (alone,) = Checker(loaded, "torch", options).draw_evidence([(study, verdict)], EvidenceOptions(grid=2))
        assert [c["delta"] for c in mapped.evidence["cells"]] == \
            pytest.approx([c["delta"] for c in alone.evidence["cells"]], abs=1e-5)
        assert len({c["delta"] for c in mapped.evidence["cells"]}) == 4  # not vacuous


def test_a_reference_scored_beside_a_maps_copies_is_still_a_plain_forward(tiny_model, study_png, monkeypatch):
    """A server's queue may put a check's content-free reference and a map's copies of a study of its size in one
    call. The reference, its size's prefix kept, is spliced without meeting the processor, and each lazily made
    copy is made once, where it is read. The reference's margin must still be a plain forward's on the gray
    picture, and each copy's on its own pixels."""
    from quadrant.backends import LazyPicture, ScoreRequest

    directory = tiny_model("llava")
    checker = Checker(load_model(ModelSpec(model=directory, device="cpu")), "torch").prepare()
    study = load_study(study_png)
    checker.check(study, QUESTION)  # keeps the reference's prefix for this size
    family, gray_reads = checker.loaded.family, []
    read_image = family.read_image
    monkeypatch.setattr(family, "read_image", lambda processor, text, image: gray_reads.append(
        np.asarray(image).std() == 0) or read_image(processor, text, image))
    rendered = checker._render("Is there cardiomegaly?", True)
    reference, key = checker._reference_image(study)
    pixels = np.asarray(study.image)
    fills = [pixels.copy() for _ in range(2)]
    fills[0][:20, :20], fills[1][-20:, -20:] = 0, 255
    made = []
    copies = [ScoreRequest(rendered, LazyPicture(lambda f=f: made.append(1) or f.copy()))
              for f in fills]
    results = checker.scorer.margins([*copies, ScoreRequest(rendered, reference, key)])
    oracle = PlainForward(directory)
    tokens = checker.check(study, QUESTION).model["answer_tokens"]
    expected = [oracle.margin(rendered, Image.fromarray(f), tokens["yes"], tokens["no"]) for f in fills]
    expected.append(oracle.margin(rendered, reference, tokens["yes"], tokens["no"]))
    assert [r.margin for r in results] == pytest.approx(expected, abs=1e-4)
    assert gray_reads == [False, False]  # only the copies met the processor, not the gray picture
    assert len(made) == 2  # each copy made once, where it was read
    assert abs(expected[0] - expected[1]) > 1e-4  # not vacuous: the copies differ


def test_a_maps_kept_copy_readings_stay_within_their_bound(tiny_model, study_png, monkeypatch):
    """Within a bound of two copies' readings, the store never holds more, the next question's map reads its
    copies again, and both maps are the maps of a checker that keeps them all."""
    import quadrant.backends.fast_path as fast_path

    loaded = load_model(ModelSpec(model=tiny_model("llava"), device="cpu"))
    study = load_study(study_png)
    options = CheckOptions(k=2, evidence=EvidenceOptions(grid=2))
    reads = []
    read_image = loaded.family.read_image
    monkeypatch.setattr(loaded.family, "read_image", lambda *args: reads.append(1) or read_image(*args))

    def two_maps(checker: Checker) -> list[float]:
        return [cell["delta"] for question in (QUESTION, "Is there cardiomegaly?")
                for cell in checker.check(study, question).evidence["cells"]]

    keeping = Checker(loaded, "torch", options)
    expected = two_maps(keeping)
    read_keeping = len(reads)
    one = fast_path._reading_bytes(next(iter(keeping.scorer._copy_readings.values())))
    monkeypatch.setattr(fast_path, "COPY_READING_BYTES", 2 * one)
    bounded = Checker(loaded, "torch", options)
    assert two_maps(bounded) == pytest.approx(expected, abs=1e-6)
    assert len(bounded.scorer._copy_readings) == 2
    assert len(reads) - read_keeping == read_keeping + 4  # the second map's four copies read again


def test_a_large_studys_copies_are_scored_within_the_memory_bound(demo, monkeypatch):
    """A radiograph's filled copy is 15-20 MB: a map scores no more than CHUNK_BYTES of copies in one call, a copy
    over the bound alone, and its deltas are those of the map scored all at once."""
    import quadrant.evidence

    rng = np.random.default_rng(3)
    image = Image.fromarray(np.repeat(rng.integers(0, 256, (600, 500, 1), dtype=np.uint8), 3, axis=2))  # 0.9 MB
    checker = Checker(demo, options=CheckOptions(k=2))
    verdict = checker.check(Study(image, "0" * 64, 500, 600, "PNG"), QUESTION)
    studies = [(verdict.prompts[0].rendered, image, verdict.prompts[0].margin)]
    calls: list[list[int]] = []

    def margins(requests):
        calls.append(requests)
        return checker.scorer.margins(requests)

    options = EvidenceOptions(grid=3)
    whole = evidence_maps(margins, studies, options)[0]
    assert [len(c) for c in calls] == [9]
    calls.clear()
    monkeypatch.setattr(quadrant.evidence, "CHUNK_BYTES", 2 * image.width * image.height * 3)
    bounded = evidence_maps(margins, studies, options)[0]
    assert [len(c) for c in calls] == [2, 2, 2, 2, 1]
    for a, b in zip(whole["cells"], bounded["cells"], strict=True):
        assert a["delta"] == pytest.approx(b["delta"], abs=1e-5)
    monkeypatch.setattr(quadrant.evidence, "CHUNK_BYTES", 1)
    calls.clear()
    evidence_maps(margins, studies, options)
    assert [len(c) for c in calls] == [1] * 9  # each copy over the bound, alone


def test_a_maps_copies_are_read_on_worker_threads_each_with_its_own_processor(demo, monkeypatch):
    """The copies of one call are read through the processor on worker threads, several at once (a full-size
    copy's resizing is most of its cost), each worker with a processor of its own (a tokenizer's settings change
    with every call); the map is the one read copy by copy on the calling thread."""
    import threading

    import quadrant.backends.fast_path as fast_path

    study = load_study(SAMPLE)
    options = EvidenceOptions(grid=4)

    def drawn(workers: int) -> dict:
        monkeypatch.setattr(fast_path, "PREPROCESS_WORKERS", workers)
        checker = Checker(demo, options=CheckOptions(k=2))  # a scorer of its own: its readers start with this count
        verdict = checker.check(study, QUESTION)
        return evidence_maps(checker.scorer.margins, [(verdict.prompts[0].rendered, study.image,
                                                       verdict.prompts[0].margin)], options)[0]

    family = type(demo.family)
    read = family.read_image
    seen: list[tuple[str, int]] = []

    def spied(self, processor, rendered, image):
        seen.append((threading.current_thread().name, id(processor)))
        return read(self, processor, rendered, image)

    monkeypatch.setattr(family, "read_image", spied)
    alone = drawn(1)
    assert {name for name, _ in seen} == {threading.current_thread().name}
    seen.clear()
    together = drawn(3)
    copies = [(name, processor) for name, processor in seen if name != threading.current_thread().name]
    assert len(copies) == 16 and all(name.startswith("quadrant-read") for name, _ in copies)
    assert id(demo.processor) not in {processor for _, processor in copies}
    threads = {name for name, _ in copies}
    assert len({processor for _, processor in copies}) == len(threads)  # one processor per worker
    assert [c["delta"] for c in together["cells"]] == [c["delta"] for c in alone["cells"]]
    assert len({c["delta"] for c in alone["cells"]}) > 4  # not vacuous: the copies differ


def test_the_adaptive_map_refines_the_strongest_block_and_marks_the_rest(demo, plain):
    study = load_study(SAMPLE)
    options = EvidenceOptions(grid=4, fill="gray", mode="adaptive")  # 2 x 2 blocks of 2 x 2 cells, then cells
    verdict = Checker(demo, options=CheckOptions(k=2, evidence=options)).check(study, QUESTION)
    evidence = verdict.evidence
    assert evidence["mode"] == "adaptive" and len(evidence["cells"]) == 16
    assert evidence["forwards"] == 8 == forwards_per_map(options) < 16
    refined = [c for c in evidence["cells"] if "refined" not in c]
    coarse = [c for c in evidence["cells"] if "refined" in c]
    assert len(refined) == 4 and len(coarse) == 12 and all(c["refined"] is False for c in coarse)
    assert "refined" not in evidence["cells"][evidence["strongest"]]  # never a block's value
    for cell in refined:  # exact: the full map's delta for that cell
        assert set(cell) == {"box", "delta"}
        assert cell["delta"] == pytest.approx(_by_hand(plain, verdict, study.image, cell["box"]), abs=1e-4)
    blocks = {tuple(c["block"]): c["delta"] for c in coarse}
    assert len(blocks) == 3  # the three blocks not refined, each one forward on the block filled by hand
    for block, delta in blocks.items():
        inside = [c for c in coarse if tuple(c["block"]) == block]
        assert len(inside) == 4 and all(c["delta"] == delta for c in inside)
        assert delta == pytest.approx(_by_hand(plain, verdict, study.image, block), abs=1e-4)
    # the refined block is the one that supports the answer most
    refined_block = [min(c["box"][0] for c in refined), min(c["box"][1] for c in refined),
                     max(c["box"][2] for c in refined), max(c["box"][3] for c in refined)]
    margin = verdict.prompts[0].margin
    refined_delta = _by_hand(plain, verdict, study.image, refined_block)
    assert all(support(refined_delta, margin) >= support(d, margin) - 1e-4 for d in blocks.values())
    import matplotlib.pyplot as plt

    fig = figure(study.image, evidence, margin, answer=verdict.answer)  # the blocks drawn as blocks, and said so
    dashed = [p for p in fig.axes[0].patches if p.get_linestyle() == "--"]
    assert sorted((p.get_x(), p.get_y(), p.get_x() + p.get_width(), p.get_y() + p.get_height()) for p in dashed) \
        == sorted(blocks)
    assert "a block hidden whole" in fig.axes[0].get_xlabel()
    plt.close(fig)


def test_a_full_maps_first_look_fills_blocks_then_every_cell_and_ends_as_the_full_map(demo):
    """Drawn with a first look, a full map comes in two stages: the adaptive map's coarse blocks (4 copies), each
    cell marked as not yet filled on its own, then every cell: the full map, cell for cell, for 4 copies more."""
    study = load_study(SAMPLE)
    checker = Checker(demo, options=CheckOptions(k=2))
    verdict = checker.check(study, QUESTION)
    m0 = verdict.prompts[0].margin
    studies = [(verdict.prompts[0].rendered, study.image, m0)]
    options = EvidenceOptions()
    scored: list[int] = []

    def margins(requests):
        scored.append(len(requests))
        return checker.scorer.margins(requests)

    stages = list(evidence_stages(margins, studies, options, first_look=True))
    assert [stage.finished for stage in stages] == [False, True]
    coarse, last = (stage.maps[0] for stage in stages)
    assert [coarse["forwards"], last["forwards"]] == [4, 68] == [4, forwards_per_map(options, first_look=True)]
    assert sum(scored) == 68
    assert all(cell["refined"] is False for cell in coarse["cells"])
    blocks = {tuple(cell["block"]): cell["delta"] for cell in coarse["cells"]}
    assert sorted(blocks) == [(0, 0, 128, 128), (0, 128, 128, 256), (128, 0, 256, 128), (128, 128, 256, 256)]
    full = evidence_maps(checker.scorer.margins, studies, options)[0]
    assert last["strongest"] == full["strongest"] and last["reading"] == full["reading"]
    assert len({cell["delta"] for cell in full["cells"]}) > 16  # not vacuous: the cells differ
    for drawn, whole in zip(last["cells"], full["cells"], strict=True):
        assert set(drawn) == {"box", "delta"} and drawn["box"] == whole["box"]
        assert drawn["delta"] == pytest.approx(whole["delta"], abs=1e-5)
    adaptive = evidence_stages(checker.scorer.margins, studies, replace(options, mode="adaptive"))
    assert [(stage.maps[0]["forwards"], stage.finished) for stage in adaptive] == [(4, False), (8, False), (12, True)]
    assert list(evidence_stages(margins, [], options, first_look=True)) == [Stage([], finished=True)]


def test_a_stages_seconds_are_its_copies_not_the_maps_one_off_costs(demo, monkeypatch):
    """A page estimates the rest of a map from its first stage's pace: the stage's `seconds` time its copies
    alone, not the fill made once a map. The module's clock is one the test moves by hand (the fill 0.3 s, each
    scoring call 0.2 s), so that the machine's own pace, slow under load, is no part of the figures."""
    import quadrant.evidence

    study = load_study(SAMPLE)
    checker = Checker(demo, options=CheckOptions(k=2))
    verdict = checker.check(study, QUESTION)
    studies = [(verdict.prompts[0].rendered, study.image, verdict.prompts[0].margin)]
    clock = [0.0]
    monkeypatch.setattr(quadrant.evidence, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    real_fill = quadrant.evidence.fill_source

    def fill(*args):
        clock[0] += 0.3
        return real_fill(*args)

    def margins(requests):
        clock[0] += 0.2
        return checker.scorer.margins(requests)

    monkeypatch.setattr(quadrant.evidence, "fill_source", fill)
    first, last = evidence_stages(margins, studies, EvidenceOptions(), first_look=True)
    # the first look's 4 blocks are one call; the 64 cells two calls of CHUNK; the fill counted in neither
    assert (first.seconds, last.seconds) == (pytest.approx(0.2), pytest.approx(0.4))


def test_a_first_look_outlines_no_cell_and_says_it_is_one():
    """A map still being drawn points at no cell (its strongest so far need not be the map's), and its caption says
    that it is the map so far."""
    import matplotlib.pyplot as plt

    evidence = describe(_cells([0.0] * 6 + [1.5, 0.0, 0.0]), 2.0, EvidenceOptions(grid=3))
    for first_look, outlined in ((False, 1), (True, 0)):
        fig = figure(Image.new("RGB", (90, 90), (128, 128, 128)), evidence, 2.0, answer="yes", first_look=first_look)
        assert len([p for p in fig.axes[0].patches if p.get_linestyle() not in ("--", "dashed")]) == outlined
        assert fig.axes[0].get_xlabel().startswith("so far: the answer rests") is first_look
        plt.close(fig)


def test_the_boxes_tile_the_study_exactly_in_its_own_pixels():
    boxes = cell_boxes(101, 67, 4)
    assert len(boxes) == 16 and boxes[0][:2] == (0, 0) and boxes[-1][2:] == (101, 67)
    covered = np.zeros((67, 101), dtype=int)
    for x0, y0, x1, y1 in boxes:
        covered[y0:y1, x0:x1] += 1
    assert (covered == 1).all()
    assert boxes[1][0] > boxes[0][0] and boxes[4][1] > boxes[0][1]  # row by row from the top left
    with pytest.raises(StudyError, match="too small"):
        cell_boxes(3, 40, 8)


def test_fills_gray_is_exact_and_blur_keeps_the_region_brightness():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))
    pixels = np.asarray(image)
    box = (15, 10, 30, 20)
    gray = occluded(pixels, box, np.asarray(fill_source(image, "gray", 4)))
    assert (gray[10:20, 15:30] == GRAY).all()
    outside = np.ones(gray.shape[:2], bool)
    outside[10:20, 15:30] = False
    assert (gray[outside] == pixels[outside]).all()
    blurred = occluded(pixels, box, np.asarray(fill_source(image, "blur", 4))).astype(float)
    assert blurred[10:20, 15:30].std() < 0.25 * pixels[10:20, 15:30].std()
    with pytest.raises(OptionError, match="fill"):
        EvidenceOptions(fill="black")
    with pytest.raises(OptionError, match="grid"):
        EvidenceOptions(grid=0)
    with pytest.raises(OptionError, match="unknown evidence mode 'fine'; choose one of adaptive, full"):
        EvidenceOptions(mode="fine")


@pytest.mark.parametrize("gray", [True, False])
def test_the_blur_is_pillows_blur_of_the_whole_picture(gray):
    """A gray study is blurred one channel at a time (a third of the work): the fill is still, to the bit,
    Pillow's blur of the RGB picture; a picture whose channels differ anywhere is blurred whole."""
    rng = np.random.default_rng(7)
    channel = rng.integers(0, 256, (90, 120), dtype=np.uint8)
    pixels = np.stack([channel] * 3, axis=-1)
    if not gray:
        pixels[40:50, 50:70, 2] //= 2  # a blue mark
    image = Image.fromarray(pixels)
    expected = np.asarray(image.filter(ImageFilter.GaussianBlur(90 / 8)))
    assert np.array_equal(np.asarray(fill_source(image, "blur", 8)), expected)


def _cells(deltas: list[float], side: int = 3, size: int = 90) -> list[dict]:
    boxes = cell_boxes(size, size, side)
    return [{"box": list(b), "delta": d} for b, d in zip(boxes, deltas)]


def test_reading_names_the_region_and_is_scale_free():
    deltas = [0.0, 0.01, 0.0, 0.0, 0.02, 0.0, 1.5, 0.1, 0.0]  # the lower-left cell carries the yes
    options = EvidenceOptions(grid=3)
    base = describe(_cells(deltas), 2.0, options)
    assert base["reading"] == ("the answer rests mostly on the lower left of the image (left and right as displayed, "
                               "not necessarily the patient's)")
    assert base["sides"] is None
    assert base["strongest"] == 6 and not base["flat"]
    for scale in (1e-3, 7.0):  # logits have no fixed scale: the reading must not depend on one
        scaled = describe(_cells([scale * d for d in deltas]), 2.0 * scale, options)
        assert (scaled["reading"], scaled["strongest"], scaled["flat"]) == (base["reading"], 6, False)
    # for a "no" answer the support is the other way round: filling the cell raises the margin
    no = describe(_cells([-d for d in deltas]), -2.0, options)
    assert no["strongest"] == 6 and no["reading"] == base["reading"]
    flat = describe(_cells([0.01 * d for d in deltas]), 2.0, options)
    assert flat["flat"] and flat["reading"] == "no region of the image moves the answer"


def test_positions_are_the_patients_where_the_header_says_which_side_is_where():
    deltas = [0.0, 0.01, 0.0, 0.0, 0.02, 0.0, 1.5, 0.1, 0.0]  # the lower-left cell of the image
    options = EvidenceOptions(grid=3)
    assert patient_sides("PA") == patient_sides("AP") == patient_sides(None, ["L", "F"]) == ("R", "L")
    assert patient_sides("PA", ["R", "F"]) == ("L", "R")  # the orientation outranks the display convention
    for unknown in (patient_sides(), patient_sides("LL"), patient_sides(None, ["A", "F"]),
                    patient_sides("PA", ["L", "H"])):  # a lateral, no header, a film shown upside down
        assert unknown is None
    pa = describe(_cells(deltas), 2.0, options, sides=patient_sides("PA"))
    assert pa["reading"] == ("the answer rests mostly on the right lower zone (the patient's right and left, from "
                             "the DICOM header)")
    assert pa["sides"] == ["R", "L"]
    flipped = describe(_cells(deltas), 2.0, options, sides=patient_sides(None, ["R", "F"]))
    assert flipped["reading"].startswith("the answer rests mostly on the left lower zone")
    centre = describe(_cells([0.0] * 4 + [1.5] + [0.0] * 4), 2.0, options, sides=("R", "L"))
    assert centre["reading"].startswith("the answer rests mostly on the centre (")


def _faces(evidence: dict, m0: float, answer: str) -> tuple[np.ndarray, list[str]]:
    """Each cell's drawn colour (RGBA) and the colour bar's words, off the overlay's figure."""
    import matplotlib.pyplot as plt

    fig = figure(Image.new("RGB", (90, 90), (128, 128, 128)), evidence, m0, answer=answer)
    fig.canvas.draw()  # face colours are worked out when drawn
    faces = np.array(fig.axes[0].collections[0].get_facecolors())
    words = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    plt.close(fig)
    return faces, words


def test_the_map_is_coloured_by_the_answer_given_on_a_scale_with_an_absolute_floor():
    deltas = [0.0, 0.01, 0.0, 0.0, 0.02, 0.0, 1.5, 0.1, 0.0]
    options = EvidenceOptions(grid=3)
    for answer, m0, sign in (("yes", 2.0, 1), ("no", -2.0, -1)):  # the cell holds up the answer, either way
        faces, words = _faces(describe(_cells([sign * d for d in deltas]), m0, options), m0, answer)
        red, green, blue, alpha = faces[6]
        assert red > 0.5 > blue and alpha > 0.4, answer
        assert words == ["argues against it", "no effect", f"supports the answer \u201c{answer}\u201d"]
    faces, _ = _faces(describe(_cells([0.8 if i == 2 else 0.0 for i in range(9)]), -2.0, options), -2.0, "no")
    assert faces[2][2] > faces[2][0] + 0.2  # a cell whose hiding makes the 'no' surer argues against it: blue
    # a barely held answer (|m0| = 0.05) whose cells move it by 0.04: not flat relative to m0, but drawn flat,
    # because the scale never runs below COLOUR_FLOOR
    weak = describe(_cells([0.04 if i == 6 else 0.0 for i in range(9)]), 0.05, options)
    assert not weak["flat"] and COLOUR_FLOOR >= 1.0
    faces, _ = _faces(weak, 0.05, "yes")
    assert faces[:, 3].max() < 0.15 and (faces[6][:3] > 0.85).all()


def test_the_strongest_cell_is_outlined_only_where_the_answer_rests():
    """A map where hiding a cell only makes the model surer has a strongest cell (the least contrary one) but
    no cell the answer rests on: the reading says so and the picture outlines none."""
    options = EvidenceOptions(grid=3)
    for deltas, outlined in (([0.0, 0.01, 0.0, 0.0, 0.02, 0.0, 1.5, 0.1, 0.0], True),  # rests on the lower left
                             ([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.5, 0.0, 0.0], False),  # hiding it makes the yes surer
                             ([0.01] * 9, False)):  # flat
        evidence = describe(_cells(deltas), 2.0, options)
        fig = figure(Image.new("RGB", (90, 90), (128, 128, 128)), evidence, 2.0, answer="yes")
        solid = [p for p in fig.axes[0].patches if p.get_linestyle() not in ("--", "dashed")]
        assert len(solid) == outlined, deltas
        assert ("no region" in evidence["reading"]) is not outlined
        if outlined:
            assert list(solid[0].get_bbox().bounds) == [0.0, 60.0, 30.0, 30.0]  # the strongest cell's box


def test_a_large_study_is_drawn_from_a_picture_the_size_of_the_figure_in_its_own_coordinates():
    """A 2,400-pixel radiograph is shrunk to the figure's width before it is drawn (its full resolution only
    slowed the drawing), under the same cells: the map is still laid out in the study's pixels."""
    import matplotlib.pyplot as plt

    evidence = describe(_cells([0.0] * 6 + [1.5, 0.0, 0.0], size=2400), 2.0, EvidenceOptions(grid=3))
    study = Image.new("RGB", (2400, 2400), (128, 128, 128))
    study.paste((255, 255, 255), (0, 1600, 800, 2400))  # the lower-left cell, bright
    fig = figure(study, evidence, 2.0, answer="yes")
    drawn = fig.axes[0].images[0]
    pixels = np.asarray(drawn.get_array())
    assert pixels.shape[1] <= 600 and drawn.get_extent() == [0, 2400, 2400, 0]
    assert pixels[-10:, :10].min() == 255 and pixels[:10, -10:].max() == 128  # still the study, the right way up
    assert list(fig.axes[0].patches[0].get_bbox().bounds) == [0.0, 1600.0, 800.0, 800.0]  # the strongest cell
    plt.close(fig)


def test_pointing_game_against_a_mask():
    evidence = describe(_cells([0.0] * 6 + [1.0, 0.0, 0.0]), 1.0, EvidenceOptions(grid=3))
    mask = np.zeros((90, 90), bool)
    mask[70:80, 5:40] = True  # touches the lower-left and lower-middle cells
    assert pointing(evidence, mask) == {"hit": True, "chance": 2 / 9}
    mask[:] = False
    mask[0:5, 80:90] = True
    assert pointing(evidence, mask) == {"hit": False, "chance": 1 / 9}
    assert pointing(evidence, np.zeros((90, 90), bool)) is None


def test_the_verdict_key_round_trips_and_old_lines_still_read(demo):
    checker = Checker(demo, options=CheckOptions(k=2, evidence=EvidenceOptions(grid=2)))
    verdict = checker.check(load_study(SAMPLE), QUESTION)
    data = json.loads(json.dumps(verdict.to_json()))
    assert data["schema_version"] == 1 and set(data["evidence"]) >= {"method", "fill", "grid", "prompt", "cells"}
    assert all(set(c) == {"box", "delta"} for c in data["evidence"]["cells"])
    assert "evidence" in verdict.timing_ms
    assert Verdict.from_json(data) == verdict
    del data["evidence"]  # a samples.jsonl line written before evidence maps existed
    assert Verdict.from_json(data).evidence is None
    plain = Checker(demo, options=CheckOptions(k=2)).check(load_study(SAMPLE), QUESTION).to_json()
    assert "evidence" not in plain and "evidence" not in plain["timing_ms"]


def test_a_map_drawn_after_its_check_is_the_map_drawn_with_it(demo):
    """The app shows a verdict first and draws its map after (Checker.draw_evidence): the same map, exactly,
    and a header's sides in its reading, as a check that drew both at once."""
    options = EvidenceOptions(grid=2)
    study = load_study(DICOM)
    together = Checker(demo, options=CheckOptions(k=2, evidence=options)).check(study, "Is the heart enlarged?")
    checker = Checker(demo, options=CheckOptions(k=2))
    alone = checker.check(study, "Is the heart enlarged?")
    assert alone.evidence is None and "evidence" not in alone.timing_ms
    (after,) = checker.draw_evidence([(study, alone)], options)
    assert after.evidence["reading"] == together.evidence["reading"]
    assert [c["delta"] for c in after.evidence["cells"]] == pytest.approx(
        [c["delta"] for c in together.evidence["cells"]], abs=1e-5)
    assert after.timing_ms["evidence"] > 0 and after.timing_ms["total"] == alone.timing_ms["total"]
    assert replace(after, evidence=None, timing_ms=alone.timing_ms) == alone  # nothing else of the verdict moved
    with pytest.raises(OptionError, match="no evidence map options"):
        checker.draw_evidence([(study, alone)])


def test_a_dicom_films_map_names_the_patients_sides_from_its_header(demo):
    """A PA chest film's header says the patient's right is on the image's left: the map's reading and its
    `sides` say so; a PNG, with no header, speaks of the image's own left and right."""
    checker = Checker(demo, options=CheckOptions(k=2, evidence=EvidenceOptions(grid=3)))
    study = load_study(DICOM)
    assert study.facts.view == "PA"
    film = checker.check(study, "Is the heart enlarged?").evidence
    assert film["sides"] == ["R", "L"] and "the patient's right and left, from the DICOM header" in film["reading"]
    picture = checker.check(load_study(SAMPLE), QUESTION).evidence
    assert picture["sides"] is None
    assert picture["flat"] or "left and right as displayed" in picture["reading"]


def test_generate_scoring_has_no_margins_to_map():
    with pytest.raises(OptionError, match="margins"):
        CheckOptions(scoring="generate", evidence=EvidenceOptions())


def test_check_command_writes_the_overlay_and_prints_the_reading(tmp_path, capsys):
    png = tmp_path / "map.png"
    assert main(["check", "--image", str(SAMPLE), "--question", QUESTION, "-k", "2", "--evidence-grid", "4",
                 "--evidence-fill", "gray", "--evidence-png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "Evidence" in out and ("rests" in out or "no region" in out)
    with Image.open(png) as drawn:
        assert drawn.format == "PNG" and min(drawn.size) > 300
        colours = np.asarray(drawn.convert("RGB")).astype(int)
    assert ((colours[..., 0] - colours[..., 2]) > 60).any()  # the diverging scale's red end is drawn
    assert main(["check", "--image", str(SAMPLE), "--question", QUESTION, "-k", "2", "--evidence-grid", "2",
                 "--json"]) == 0  # a map's shape asks for a map: no --evidence needed
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["evidence"]["grid"] == [2, 2] and verdict["evidence"]["fill"] == "blur"
    assert verdict["evidence"]["mode"] == DEFAULT_MODE
    assert main(["check", "--image", str(SAMPLE), "--question", QUESTION, "-k", "2", "--evidence-grid", "4",
                 "--evidence-mode", "adaptive", "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["evidence"]["mode"] == "adaptive" and verdict["evidence"]["forwards"] == 8
    assert sum("refined" in c for c in verdict["evidence"]["cells"]) == 12
    assert main(["check", "--image", str(SAMPLE), "--question", QUESTION, "--evidence-mode", "fine"]) == 2
    assert "invalid choice: 'fine'" in capsys.readouterr().err
    assert main(["check", "--image", str(SAMPLE), "--question", QUESTION, "-k", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out).get("evidence") is None  # and none unless asked
    assert main(["check", "--image", str(SAMPLE), "--question", QUESTION, "--evidence-png",
                 str(tmp_path / "no-such-folder" / "map.png")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_phantom_masks_mark_where_each_present_finding_was_drawn(tmp_path):
    from quadrant.models.phantoms import FINDINGS, render_phantom, sample_phantom

    manifest = generate_phantoms(tmp_path, 3, seed=31, dicom_every=0)
    rows = read_manifest(manifest)
    for row in rows:
        finding = row.extra["finding"]
        index = int(row.study_id.split("-")[2])
        rng = np.random.default_rng([31, index])
        draws = rng.random(len(FINDINGS))
        present = {name: bool(d < 0.5) for name, d in zip(FINDINGS, draws)}
        assert (row.mask is not None) == present[finding] == (row.label == "yes")
        if row.mask is None:
            continue
        with Image.open(row.mask) as stored:
            mask = np.asarray(stored) > 0
        assert mask.shape == (256, 256) and mask.any()
        # the mask is exactly where switching the finding off changes the picture by more than 8%
        phantom = sample_phantom(np.random.default_rng([31, index]), 256, masks=True)
        assert (mask == phantom.masks[finding]).all()
        state = np.random.default_rng([31, index])
        state.random(len(FINDINGS))
        without = render_phantom(state, {**present, finding: False}, 256)
        assert np.abs(phantom.image - without)[~mask].max() <= 0.08 < np.abs(phantom.image - without)[mask].min()


def test_evaluate_plays_the_pointing_game_per_quadrant(tmp_path, capsys):
    manifest = generate_phantoms(tmp_path / "phantoms", 2, seed=4242, dicom_every=2)  # one PNG, one DICOM
    out = tmp_path / "out"
    assert main(["evaluate", "--manifest", str(manifest), "--out", str(out), "-k", "2", "--evidence",
                 "--evidence-grid", "4", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    positives = [row for row in read_manifest(manifest) if row.mask is not None]
    assert len(samples) == 10 and all(len(s["evidence"]["cells"]) == 16 for s in samples)
    played = [s for s in samples if s["evidence"].get("pointing")]
    assert {s["study_id"] for s in played} == {row.study_id for row in positives}
    evidence = summary["evidence"]
    assert evidence["n"] == len(samples) and evidence["pointing"]["n"] == len(positives)
    hits = sum(s["evidence"]["pointing"]["hit"] for s in played)
    assert evidence["pointing"]["accuracy"] == pytest.approx(hits / len(played))
    assert 0 < evidence["pointing"]["chance"] < 1
    assert sum(q["n"] for q in evidence["pointing"]["per_quadrant"].values()) == len(played)
    report = (out / "report.md").read_text()
    assert "Pointing game" in report and "not where the finding is" in report
    # without --evidence the mask column is carried but no map is made
    assert main(["evaluate", "--manifest", str(manifest), "--out", str(tmp_path / "plain"), "-k", "2",
                 "--quiet"]) == 0
    assert "evidence" not in json.loads((tmp_path / "plain" / "summary.json").read_text())
    capsys.readouterr()


@pytest.mark.slow
def test_demo_points_at_the_finding_and_the_shortcut_map_is_flat(tmp_path):
    """On fresh phantoms (seed 2029, never used in training), with the default grid and fill: `demo`'s
    strongest cell touches the finding in at least half the positive studies and at least 3x chance;
    `demo-shortcut`'s strongest |delta| is, in the median, under a fifth of `demo`'s.

    demo's pointing rate is about 50-54% over ~100 positives (README), so a small sample can fall either side
    of 50%: this sample (the first 12 studies of seed 2029: 15 of 24, against 11% chance) was taken from a
    measured run, and the assertion guards against a regression of the map, not the model's exact rate."""
    from quadrant.models.measure_evidence import measure, positive_rows, summary

    rows = positive_rows(tmp_path, N_STUDIES, seed=2029)
    grounded = summary(measure("demo", rows, EvidenceOptions()))
    shortcut = summary(measure("demo-shortcut", rows, EvidenceOptions()))
    assert grounded["n"] >= 20
    assert grounded["pointing"] >= 0.5 and grounded["pointing"] >= 3 * grounded["chance"]
    assert shortcut["median_max_abs_delta"] < grounded["median_max_abs_delta"] / 5


@pytest.mark.parametrize("name", ["manifest.csv", "manifest.jsonl"])
def test_the_mask_column_round_trips_through_write_manifest(tmp_path, name):
    from quadrant.manifest import write_manifest

    rows = read_manifest(generate_phantoms(tmp_path / "phantoms", 1, seed=5, dicom_every=0))
    assert any(row.mask for row in rows) and any(row.mask is None for row in rows)
    assert all("mask" not in row.extra for row in rows)
    again = read_manifest(write_manifest(tmp_path / "phantoms" / name, rows))
    assert [(r.study_id, r.mask) for r in again] == [(r.study_id, r.mask) for r in rows]
