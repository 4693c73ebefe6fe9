"""ONNX export and `--backend onnx` for the families beyond LLaVA, Gemma3 and Idefics3 (tests/test_onnx.py):
Qwen2-VL, Qwen2.5-VL, Qwen3-VL, InternVL, LLaVA-OneVision, PaliGemma, and the generic path. One export per
family per session (exporting is the slow part); every margin the export gives is compared with a plain,
separate Hugging Face forward (tests/plain_forward.py), not with Quadrant's own PyTorch path."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from PIL import Image

from plain_forward import PlainForward
from quadrant.backends import BACKENDS, ScoreRequest, load_model
from quadrant.backends.onnx_format import read_manifest
from quadrant.cli.main import main
from quadrant.loading import ModelSpec

pytest.importorskip("onnxruntime")
#: every family file's ONNX split beyond tests/test_onnx.py's, and VipLLaVA for the generic path (no family file)
FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "internvl", "llava_onevision", "paligemma", "vipllava")
QUESTIONS = ["Is there a pleural effusion?", "Is there fluid in the pleural space?"]
TIMES: dict[str, float] = {}  # family -> seconds its export took (printed with -s; see the README)


@pytest.fixture(scope="session")
def family_export(tiny_model, tmp_path_factory):
    """family -> (tiny model dir, export dir, lines the export printed), exported once per session."""
    from quadrant.export.onnx import export_onnx

    done: dict[str, tuple] = {}

    def get(family: str):
        if family not in done:
            model = tiny_model(family)
            out = tmp_path_factory.mktemp(f"onnx-{family}") / "export"
            lines: list[str] = []
            started = time.perf_counter()
            export_onnx(model, None, out, log=lines.append)
            TIMES[family] = time.perf_counter() - started
            print(f"\nexported {family} in {TIMES[family]:.0f} s")
            done[family] = (model, str(out), lines)
        return done[family]

    return get


def _requests(loaded) -> list[ScoreRequest]:
    """Two studies (one square, one not) with two phrasings each, and the text-only prompt: without the
    image where the family allows it, else with a mid-gray one (PaliGemma)."""
    family, processor = loaded.family, loaded.processor
    rng = np.random.default_rng(5)
    requests = []
    for shape in ((64, 64, 3), (60, 72, 3)):
        image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
        requests += [ScoreRequest(family.render(processor, loaded.wrap(q), True), image) for q in QUESTIONS]
    if family.accepts_imageless:
        requests.append(ScoreRequest(family.render(processor, loaded.wrap(QUESTIONS[0]), False), None))
    else:
        gray = Image.new("RGB", (64, 64), (128, 128, 128))
        requests.append(ScoreRequest(family.render(processor, loaded.wrap(QUESTIONS[0]), True), gray))
    return requests


@pytest.mark.parametrize("family", FAMILIES)
def test_export_matches_a_plain_forward_on_the_fast_path(family_export, family):
    model, out, lines = family_export(family)
    manifest = read_manifest(out)
    assert max(manifest.validation["max_diff_vs_torch"], manifest.validation["max_diff_vs_plain"]) <= 1e-4
    assert any(line.startswith("validation (fp32") for line in lines)
    loaded = load_model(ModelSpec(model=out))
    assert loaded.backend == "onnx" and manifest.family == loaded.family.name
    scorer = BACKENDS.get("onnx")(loaded)
    requests = _requests(loaded)
    results = scorer.margins(requests)
    plain = PlainForward(model)
    yes, no = list(loaded.answer_tokens.yes), list(loaded.answer_tokens.no)
    oracle = [plain.margin(r.rendered, r.image, yes, no) for r in requests]
    assert max(abs(r.margin - o) for r, o in zip(results, oracle)) < 1e-4
    assert max(abs(a - b) for a, b in zip(oracle[:2], oracle[2:4])) > 1e-4  # the two images are told apart
    if family == "paligemma":  # prefix-LM: the cached prefix is not exact, so one batched forward per study
        assert scorer.prefix_ok() is False and {r.path for r in results} == {"batched"}
    else:
        assert scorer.prefix_ok() is True and {r.path for r in results} == {"prefix-shared", "packed"}


def test_a_generic_model_whose_vision_part_follows_the_image_is_refused_with_the_reason(tiny_model, tmp_path, capsys):
    """LLaVA-NeXT has no family file; its tiling depends on each image's size, which a graph with free sizes
    cannot follow: refused in one line that says so, and nothing kept."""
    model = tiny_model("llava_next")
    capsys.readouterr()
    assert main(["export", "onnx", "--model", model, "--out", str(tmp_path / "next")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "generic" in err and "vision.onnx" in err, err
    assert not (tmp_path / "next").exists() and not (tmp_path / "next.partial").exists()


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_qwen_exports_take_multimodal_positions_from_the_host(family_export, family):
    """M-RoPE positions are a [3, batch, query] input; Qwen3-VL's decoder also takes the deepstack features."""
    _, out, _ = family_export(family)
    manifest = read_manifest(out)
    decoder = {i["name"]: i for i in manifest.graphs["decoder"]["inputs"]}
    assert decoder["position_ids"]["shape"][0] == 3
    assert ("deepstack_embeds" in decoder) == (family == "qwen3_vl")
    vision = [i["name"] for i in manifest.graphs["vision"]["inputs"]]
    assert vision[:3] == ["pixel_values", "position_ids", "cu_seqlens"]


def test_generate_mode_on_the_export_matches_pytorch_greedy(family_export, study_png, capsys):
    """The reasoning preset's mode (MedVLM-R1 is a Qwen2-VL): generated on the graphs, token for token as
    PyTorch's greedy generation, with the image and without it."""
    model, out, _ = family_export("qwen2_vl")
    capsys.readouterr()  # the export's own lines, when this test is the first to build it
    args = ["check", "--image", study_png, "--question", "Is there a pneumothorax?", "--json", "--scoring",
            "generate", "--max-new-tokens", "6", "-k", "2"]
    assert main(args + ["--model", out]) == 0
    onnx = json.loads(capsys.readouterr().out)
    assert main(args + ["--model", model]) == 0
    reference = json.loads(capsys.readouterr().out)
    assert onnx["model"]["backend"] == "onnx" and onnx["scoring"] == "generate"
    texts = [p["generated"] for p in onnx["prompts"]] + [onnx["text_only"]["generated"]]
    assert texts == [p["generated"] for p in reference["prompts"]] + [reference["text_only"]["generated"]]
    assert any(texts)


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_rope_index_is_the_models_own(tiny_model, family):
    """The host's M-RoPE positions (used by both backends) against each model's own get_rope_index, on a
    right-padded batch of two image sizes and a text-only row."""
    from transformers import AutoModelForImageTextToText

    from quadrant.families.qwen_vl import rope_index

    loaded = load_model(ModelSpec(model=tiny_model(family)))
    family_, processor = loaded.family, loaded.processor
    rng = np.random.default_rng(2)
    images = [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)) for shape in ((64, 64, 3), (40, 96, 3))]
    rendered = [family_.render(processor, loaded.wrap(q), True) for q in QUESTIONS]
    inputs = family_.encode(processor, rendered, images)
    text = family_.encode(processor, [family_.render(processor, loaded.wrap(QUESTIONS[0]), False)], None)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model(family))
    for batch in (inputs, text):
        kinds = batch.get("mm_token_type_ids", torch.zeros_like(batch["input_ids"]))
        mine = rope_index(loaded.config, batch["input_ids"], kinds, batch.get("image_grid_thw"),
                          batch["attention_mask"])
        theirs = model.model.get_rope_index(batch["input_ids"], mm_token_type_ids=kinds,
                                            image_grid_thw=batch.get("image_grid_thw"),
                                            attention_mask=batch["attention_mask"])
        assert torch.equal(mine[0], theirs[0]) and torch.equal(mine[1].view(-1), theirs[1].view(-1).cpu())
    assert inputs["image_grid_thw"][0].tolist() != inputs["image_grid_thw"][1].tolist()
