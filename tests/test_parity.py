"""`quadrant check --json` against an independent, plain Hugging Face forward, for every family.

The oracle (`plain_forward.PlainForward`) shares no scoring code with Quadrant: it renders with the
processor's own chat template, tokenizes with the processor, runs the model once per prompt and reads the last
position's logits.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from transformers import AutoProcessor

from conftest import ALL_FAMILIES, write_png
from plain_forward import PlainForward
from quadrant.cli.main import main
from quadrant.reliance import DEFAULT_THRESHOLD

TOLERANCE = 1e-4


def run_check_json(capsys, *argv) -> dict:
    code = main(["check", *argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert len(out.strip().splitlines()) == 1  # exactly one JSON object on stdout
    return json.loads(out)


def ablated(verdict: dict, image: Image.Image):
    mode = verdict["text_only"]["ablation"]
    if mode == "none":
        return None
    assert mode == "blank"
    return gray_like(image)


@pytest.mark.parametrize("backend", ["torch", "torch-naive"])
@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_check_margins_equal_a_plain_forward(family, backend, tiny_model, study_png, capsys):
    directory = tiny_model(family)
    verdict = run_check_json(
        capsys, "--image", study_png, "--question", "Is there a pleural effusion?", "--model", directory,
        "--backend", backend,
        "--paraphrase", "Any effusion?",
        "--paraphrase", "Is there any layering pleural fluid on either side, looking carefully at both "
                        "costophrenic angles and the lung bases on this frontal chest radiograph?",
        "--paraphrase", "!Can a pleural effusion be ruled out?",
    )
    oracle = PlainForward(directory)
    image = Image.open(study_png).convert("RGB")
    yes, no = verdict["model"]["answer_tokens"]["yes"], verdict["model"]["answer_tokens"]["no"]
    assert [p["inverted"] for p in verdict["prompts"]] == [False, False, False, True]
    for prompt in verdict["prompts"]:
        if family != "paligemma":
            assert prompt["rendered"] == oracle.render(prompt["text"] + " Answer with yes or no.", True)
        expected = oracle.margin(prompt["rendered"], image, yes, no)
        assert abs(prompt["margin"] - expected) < TOLERANCE, prompt["text"]
        assert prompt["answer"] == ("yes" if expected > 0 else "no")
    text_only = verdict["text_only"]
    expected = oracle.margin(text_only["rendered"], ablated(verdict, image), yes, no)
    assert abs(text_only["margin"] - expected) < TOLERANCE
    assert verdict["margin_shift"] == pytest.approx(verdict["prompts"][0]["margin"] - text_only["margin"])
    reference = verdict["content_free"]
    assert reference["ablation"] == "blank"
    expected = oracle.margin(reference["rendered"], gray_like(image), yes, no)
    assert abs(reference["margin"] - expected) < TOLERANCE
    assert verdict["shifts"]["content"] == pytest.approx(verdict["prompts"][0]["margin"] - reference["margin"])


def gray_like(image: Image.Image) -> Image.Image:
    return Image.fromarray(np.full((image.height, image.width, 3), 128, dtype=np.uint8))


@pytest.mark.parametrize("family", ["llava", "idefics3"])
def test_a_reused_reference_prefix_stays_exact_check_after_check(family, tiny_model, study_png, tmp_path):
    """The content-free reference's prefix is computed once per model and reused by later checks, and its
    margin kept per prompt: each reuse must give a plain forward's margin (a cache mutated by an earlier
    check would not). The second study of a size asks the question its size has seen: no reference forward.
    Both are kept by what the model is given, not by the study's size: LLaVA resizes every image to one size,
    so a study of another size finds the first one's reference (its margin too); Idefics3 splits an image by
    its aspect ratio, so another size is another reference."""
    from quadrant.check import Checker
    from quadrant.images import load_study
    from quadrant.backends import load_model
    from quadrant.loading import ModelSpec

    directory = tiny_model(family)
    checker = Checker(load_model(ModelSpec(model=directory, device="cpu")), "torch")
    oracle = PlainForward(directory)
    rng = np.random.default_rng(7)
    paths = [study_png]
    for index in range(2):
        path = tmp_path / f"study{index}.png"
        Image.fromarray(rng.integers(0, 256, (144, 64), dtype=np.uint8)).convert("RGB").save(path)  # gray: in scope
        paths.append(str(path))
    kinds = []
    passes = reference_passes(checker.scorer)
    for path in paths + paths[:1]:
        before = len(passes)
        verdict = checker.check(load_study(path), "Is there a pleural effusion?").to_json()
        kinds.append("prefix-reused" if len(passes) > before else "margin-kept")
        yes, no = verdict["model"]["answer_tokens"]["yes"], verdict["model"]["answer_tokens"]["no"]
        image = Image.open(path).convert("RGB")
        reference = verdict["content_free"]
        assert abs(reference["margin"] - oracle.margin(reference["rendered"], gray_like(image), yes, no)) < TOLERANCE
    if family == "llava":
        assert kinds == ["prefix-reused", "margin-kept", "margin-kept", "margin-kept"]
        assert len(checker.scorer._reused) == 1  # one gray picture at 64 x 64 whatever the study's size
    else:
        assert kinds == ["prefix-reused", "prefix-reused", "margin-kept", "margin-kept"]
        assert len(checker.scorer._reused) == 2  # the two sizes are split into different tiles
    verdict = checker.check(load_study(paths[1]), "Is there a pneumothorax?").to_json()
    assert "prefix-reused" in verdict["timing_ms"]["path"]  # a new question: the kept prefix, a suffix pass


def reference_passes(scorer) -> list:
    """A list that grows by one at each suffix pass the scorer runs for a content-free reference."""
    passes = []
    run = scorer._reused_suffix_margins

    def counted(*args, **kwargs):
        passes.append(1)
        return run(*args, **kwargs)

    scorer._reused_suffix_margins = counted
    return passes


def test_references_of_other_content_share_no_prefix_on_one_scorer(tiny_model, tmp_path):
    """The app's option variants share one scorer, and a request may ask for a white reference where the model's
    default is gray: kept by the image's content, the two references of one size are two prefixes and two
    margins, each a plain forward's with its own image."""
    from quadrant.backends import load_model
    from quadrant.check import Checker, CheckOptions
    from quadrant.images import load_study
    from quadrant.loading import ModelSpec
    from quadrant.reliance import Reliance

    directory = tiny_model("llava")
    gray = Checker(load_model(ModelSpec(model=directory, device="cpu")), "torch")
    white = Checker(gray.loaded, "torch", CheckOptions(reliance=Reliance(reference="white")), scorer=gray.scorer)
    oracle = PlainForward(directory)
    path = write_png(tmp_path / "study.png", 5)
    image = Image.open(path).convert("RGB")
    margins = {}
    for name, checker, drawn in (("gray", gray, gray_like(image)), ("white", white, Image.new("RGB", image.size, "white"))):
        data = checker.check(load_study(path), "Is there a pleural effusion?").to_json()
        yes, no = data["model"]["answer_tokens"]["yes"], data["model"]["answer_tokens"]["no"]
        reference = data["content_free"]
        margins[name] = reference["margin"]
        assert abs(reference["margin"] - oracle.margin(reference["rendered"], drawn, yes, no)) < TOLERANCE, name
    assert len(gray.scorer._reused) == 2 and margins["gray"] != margins["white"]


def test_reference_images_are_kept_for_the_last_few_study_sizes_and_a_dropped_one_is_drawn_again_exactly(
        tiny_model, tmp_path, monkeypatch):
    """A DICOM's content-free reference is tens of megabytes, one per study size, and a server sees many sizes:
    the checker keeps the last REFERENCE_IMAGES (2 here). A size dropped and seen again gets its reference
    drawn again, and its margin is still a plain forward's."""
    from quadrant import check
    from quadrant.images import load_study
    from quadrant.backends import load_model
    from quadrant.loading import ModelSpec

    monkeypatch.setattr(check, "REFERENCE_IMAGES", 2)
    directory = tiny_model("llava")
    checker = check.Checker(load_model(ModelSpec(model=directory, device="cpu")), "torch")
    oracle = PlainForward(directory)
    rng = np.random.default_rng(11)
    paths = []
    for width in (64, 72, 80):
        path = tmp_path / f"study{width}.png"
        Image.fromarray(rng.integers(0, 256, (64, width), dtype=np.uint8)).convert("RGB").save(path)
        paths.append(path)
    for path in paths + paths[:1]:
        verdict = checker.check(load_study(path), "Is there a pleural effusion?").to_json()
        yes, no = verdict["model"]["answer_tokens"]["yes"], verdict["model"]["answer_tokens"]["no"]
        reference = verdict["content_free"]
        image = Image.open(path).convert("RGB")
        assert abs(reference["margin"] - oracle.margin(reference["rendered"], gray_like(image), yes, no)) < TOLERANCE
        assert len(checker._references) <= 2
    assert [key[1] for key in checker._references] == [80, 64]  # the sizes most recently seen


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "idefics3", "gemma3"])
def test_a_study_keeps_its_prefix_for_the_next_question_about_the_same_picture(family, tiny_model, tmp_path,
                                                                              monkeypatch):
    """A clinician asks several questions of one study: its prefix (the image and the template's opening) is
    kept under its pixels' hash, with the processor's reading of its image, and a follow-up question makes no
    prefix pass and runs no processor on the image. Every margin must still be a
    plain forward's: the follow-up's, another picture's of the same size (which must not be served the first
    one's prefix), a kept study's checked in one call beside a new one, and a picture's dropped from the
    STUDY_PREFIXES kept (2 here) and computed again; and two checks of one picture in one call share one
    prefix pass."""
    from quadrant.backends import fast_path, load_model
    from quadrant.check import Checker, CheckRequest
    from quadrant.images import load_study
    from quadrant.loading import ModelSpec

    monkeypatch.setattr(fast_path, "STUDY_PREFIXES", 2)
    directory = tiny_model(family)
    checker = Checker(load_model(ModelSpec(model=directory, device="cpu")), "torch").prepare()  # its self-check
    oracle = PlainForward(directory)
    a, b, c = (write_png(tmp_path / f"{name}.png", seed) for seed, name in enumerate("abc"))
    passes = []
    run_prefix = checker.scorer.steps.run_prefix

    def counted(tokens, images):
        passes.append(len(tokens["input_ids"]))
        return run_prefix(tokens, images)

    monkeypatch.setattr(checker.scorer.steps, "run_prefix", counted)
    reads = []  # the processor run on a study's image (not the content-free reference's: its prompts are cut)
    family, encode = checker.loaded.family, checker.loaded.family.encode

    def counted_encode(processor, rendered, images):
        if images is not None:
            reads.append(len(rendered))
        return encode(processor, rendered, images)

    monkeypatch.setattr(family, "encode", counted_encode)

    def prefix_passes(*asked: tuple[str, str]) -> list[int]:
        passes.clear()
        reads.clear()
        verdicts = checker.check_many([CheckRequest(load_study(path), question) for path, question in asked])
        for (path, _), verdict in zip(asked, verdicts, strict=True):
            data = verdict.to_json()
            yes, no = data["model"]["answer_tokens"]["yes"], data["model"]["answer_tokens"]["no"]
            image = Image.open(path).convert("RGB")
            for prompt in data["prompts"]:
                assert abs(prompt["margin"] - oracle.margin(prompt["rendered"], image, yes, no)) < TOLERANCE, path
            text_only = data["text_only"]
            assert abs(text_only["margin"] - oracle.margin(text_only["rendered"], ablated(data, image), yes, no)) \
                < TOLERANCE
        return sorted(passes)

    assert prefix_passes((a, "Is there a pleural effusion?")) == [1, 1]  # the study's and its size's reference
    assert prefix_passes((a, "Is there a pneumothorax?")) == [] and reads == []  # both prefixes kept, and a's read
    assert prefix_passes((b, "Is there a pleural effusion?")) == [1]  # same size, another picture
    assert prefix_passes((a, "Is there cardiomegaly?"), (c, "Is there a pleural effusion?")) == [1]  # c's alone
    assert prefix_passes((b, "Is there a pneumothorax?")) == [1]  # b was the least recently used of a, b, c
    d = write_png(tmp_path / "d.png", 3)
    # two checks of one picture in a call, each loading it afresh (a dataset asking two findings of an image)
    assert prefix_passes((d, "Is there a pleural effusion?"), (d, "Is there a lung nodule?")) == [1]


@pytest.mark.parametrize("family", ["llava", "idefics3"])
def test_a_warmed_study_of_a_new_size_is_checked_without_any_prefix_pass(family, tiny_model, tmp_path, monkeypatch):
    """The app has the model read an upload while the question is typed: the study's prefix and its content-free
    reference's (a size the model has not seen: on Idefics3 a reference of its own), so the first check makes no
    prefix pass at all, and its margins, the reference's included, are still a plain forward's."""
    from quadrant.backends import load_model
    from quadrant.check import Checker
    from quadrant.images import load_study
    from quadrant.loading import ModelSpec

    directory = tiny_model(family)
    checker = Checker(load_model(ModelSpec(model=directory, device="cpu")), "torch").prepare()
    oracle = PlainForward(directory)
    checker.check(load_study(write_png(tmp_path / "seen.png", 1)), "Is there a pleural effusion?")
    passes = []
    run_prefix = checker.scorer.steps.run_prefix
    monkeypatch.setattr(checker.scorer.steps, "run_prefix",
                        lambda tokens, images: passes.append(len(tokens["input_ids"])) or run_prefix(tokens, images))
    path = write_png(tmp_path / "new.png", 2, size=(64, 144))
    checker.warm(load_study(path))
    warmed = len(passes)
    data = checker.check(load_study(path), "Is there a pneumothorax?").to_json()
    assert warmed == (1 if family == "llava" else 2) and len(passes) == warmed  # LLaVA: one gray picture for all sizes
    yes, no = data["model"]["answer_tokens"]["yes"], data["model"]["answer_tokens"]["no"]
    image = Image.open(path).convert("RGB")
    for prompt in data["prompts"]:
        assert abs(prompt["margin"] - oracle.margin(prompt["rendered"], image, yes, no)) < TOLERANCE
    reference = data["content_free"]
    assert abs(reference["margin"] - oracle.margin(reference["rendered"], gray_like(image), yes, no)) < TOLERANCE


def test_kept_prefixes_are_bounded_in_bytes_as_well_as_in_number(tiny_model, tmp_path, monkeypatch):
    """A kept prefix of a 7B model is 0.3 GB: each store keeps at most KEPT_BYTES, whatever its count. With
    room for one study's prefix, a second picture's pushes the first one's out, and the first picture asked
    about again is read again, its margins still a plain forward's."""
    from quadrant.backends import fast_path, load_model
    from quadrant.check import Checker
    from quadrant.images import load_study
    from quadrant.loading import ModelSpec

    directory = tiny_model("llava")
    checker = Checker(load_model(ModelSpec(model=directory, device="cpu")), "torch").prepare()
    oracle = PlainForward(directory)
    a, b = (write_png(tmp_path / f"{name}.png", seed) for seed, name in ((11, "a"), (12, "b")))
    checker.check(load_study(a), "Is there a pleural effusion?")
    (one,) = checker.scorer._study_prefixes.values()
    size = checker.scorer.steps.nbytes(one)
    assert size > 0
    monkeypatch.setattr(fast_path, "KEPT_BYTES", size * 3 // 2)
    checker.check(load_study(b), "Is there a pleural effusion?")
    assert len(checker.scorer._study_prefixes) == 1
    data = checker.check(load_study(a), "Is there a pneumothorax?").to_json()
    assert "prefix-shared" in data["timing_ms"]["path"]  # a's prefix was pushed out: made again
    yes, no = data["model"]["answer_tokens"]["yes"], data["model"]["answer_tokens"]["no"]
    image = Image.open(a).convert("RGB")
    for prompt in data["prompts"]:
        assert abs(prompt["margin"] - oracle.margin(prompt["rendered"], image, yes, no)) < TOLERANCE


def test_text_only_prompt_keeps_the_bos_of_its_with_image_twin(tiny_model, study_png, capsys):
    """Gemma's rendered prompt starts with <bos>: neither pass may add a second one, nor lose it."""
    from quadrant.families import FAMILIES

    directory = tiny_model("gemma3")
    verdict = run_check_json(capsys, "--image", study_png, "--question", "Is there a pneumothorax?",
                             "--model", directory)
    processor = AutoProcessor.from_pretrained(directory)
    family = FAMILIES.get("gemma3")()
    bos = processor.tokenizer.bos_token_id
    image = Image.open(study_png).convert("RGB")
    with_image = family.encode(processor, [verdict["prompts"][0]["rendered"]], [image])["input_ids"][0]
    text_only = family.encode(processor, [verdict["text_only"]["rendered"]], None)["input_ids"][0]
    for ids in (with_image, text_only):
        assert ids[0] == bos and (ids == bos).sum() == 1


def test_verdict_has_every_schema_v1_key(tiny_model, study_png, capsys):
    verdict = run_check_json(capsys, "--image", study_png, "--question", "Is there cardiomegaly?",
                             "--model", tiny_model("llava"), "--label", "yes")
    for key in ("quadrant", "consistent", "image_reliant", "answer", "prompts", "text_only", "margin_shift",
                "reliance", "flip_count", "entropy", "label", "correct", "model", "image", "timing_ms"):
        assert key in verdict
    assert verdict["schema_version"] == 1
    assert verdict["quadrant"] in ("Ideal", "Fragile", "Dangerous", "Worst")
    assert len(verdict["prompts"]) == 6  # the question and five bank paraphrases
    for key in ("text", "inverted", "rendered", "answer", "p_yes", "margin", "entropy"):
        assert key in verdict["prompts"][0]
    for key in ("text", "ablation", "rendered", "answer", "p_yes", "margin"):
        assert key in verdict["text_only"]
    for key in ("name", "fingerprint", "backend", "device", "dtype", "answer_tokens"):
        assert key in verdict["model"]
    assert verdict["model"]["fingerprint"].startswith("sha256:")
    for key in ("sha256", "width", "height", "format"):
        assert key in verdict["image"]
    assert verdict["correct"] == (verdict["answer"] == "yes")
    assert verdict["reliance"] == {"rule": "content", "threshold": DEFAULT_THRESHOLD, "reference": "blank"}
    assert set(verdict["shifts"]) == {"text_only", "presence", "content", "relative_content"}
    for key in ("text", "ablation", "rendered", "answer", "p_yes", "margin"):
        assert key in verdict["content_free"]


def test_same_input_same_verdict(tiny_model, study_png, capsys):
    args = ("--image", study_png, "--question", "Is there a pneumothorax?", "--model", tiny_model("llava"),
            "--ablation", "noise")
    first, second = run_check_json(capsys, *args), run_check_json(capsys, *args)
    for verdict in (first, second):
        verdict.pop("timing_ms")
    assert first == second


def test_a_real_dicom_chest_radiograph_end_to_end(tiny_model, capsys):
    """RG1_UNCR from pydicom-data: a Philips CR chest, MONOCHROME1, 15-bit, read by path (no network)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("data_store")
    path = Path(spec.origin).parent / "data" / "RG1_UNCR.dcm"
    verdict = run_check_json(capsys, "--image", str(path), "--question", "Is there a pleural effusion?",
                             "--model", tiny_model("llava"))
    assert verdict["image"]["format"] == "DICOM"
    assert (verdict["image"]["width"], verdict["image"]["height"]) == (1841, 1955)
    assert len(verdict["image"]["sha256"]) == 64
    text = json.dumps(verdict)
    for identifier in ("CompressedSamples", "9RG1", "19400305"):  # its PatientName, PatientID, birth date
        assert identifier not in text


@pytest.mark.parametrize("family", ["llava", "gemma3", "idefics3", "qwen2_5_vl", "llava_onevision", "internvl"])
def test_a_new_question_splices_the_reference_without_processing_the_reference_again(family, tiny_model, study_png):
    """Once a size's reference prefix is kept, a new question's reference prompt is spliced as the processor's
    first reading of the gray image laid out its tokens, so the gray image never meets the processor again,
    even in a call that holds no study (the reference is laid out before its studies are read); its margin must
    still be a plain forward's with the gray image. Families with per-token tensors (Gemma3, Qwen) and
    size-dependent tiling (LLaVA-OneVision, InternVL) are included."""
    from quadrant.backends import ScoreRequest, load_model
    from quadrant.check import Checker
    from quadrant.images import load_study
    from quadrant.loading import ModelSpec

    directory = tiny_model(family)
    checker = Checker(load_model(ModelSpec(model=directory, device="cpu")), "torch").prepare()
    family_object = checker.loaded.family
    reference_encodes = []
    encode = family_object.encode

    def counting_encode(processor, rendered, images):
        if images is not None and all(np.asarray(image).std() == 0 for image in images):
            reference_encodes.append(len(rendered))
        return encode(processor, rendered, images)

    family_object.encode = counting_encode
    oracle = PlainForward(directory)
    study = load_study(study_png)
    image = Image.open(study_png).convert("RGB")
    for question in ("Is there a pleural effusion?", "Is there a pneumothorax?", "Is the heart enlarged?"):
        verdict = checker.check(study, question).to_json()
        reference = verdict["content_free"]
        yes, no = verdict["model"]["answer_tokens"]["yes"], verdict["model"]["answer_tokens"]["no"]
        assert abs(reference["margin"] - oracle.margin(reference["rendered"], gray_like(image), yes, no)) < TOLERANCE
        assert "prefix-reused" in verdict["timing_ms"]["path"]
    rendered = checker._render("Is there a rib fracture?", True)
    gray, key = checker._reference_image(study)
    (alone,) = checker.scorer.margins([ScoreRequest(rendered, gray, key)])
    assert alone.path == "prefix-reused"
    assert abs(alone.margin - oracle.margin(rendered, gray_like(image), yes, no)) < TOLERANCE
    assert len(reference_encodes) == 1  # the first check made the kept prefix; the three after it spliced the tokens
