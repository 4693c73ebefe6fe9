"""ONNX export and `--backend onnx`: real exports of tiny LLaVA, Gemma3 and Idefics3 models with a LoRA
adapter (each built once per session: exports are the slow part), checked against PyTorch's fast path and
against a plain, unmerged Hugging Face forward; the command line's refusals."""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_adapter, write_png
from quadrant.backends import BACKENDS, ScoreRequest
from quadrant.cli.main import main
from quadrant.backends.onnx_format import MANIFEST_NAME, read_manifest, write_manifest
from quadrant.families import FAMILIES
from quadrant.backends import load_model
from quadrant.check import Checker, CheckOptions, CheckRequest
from quadrant.images import load_study
from quadrant.loading import ModelSpec

pytest.importorskip("onnxruntime")
EXPORTED = ("llava", "gemma3", "idefics3")
QUESTIONS = ["Is there a pleural effusion?", "Is there fluid in the pleural space?", "Any evidence of cardiomegaly?"]


@pytest.fixture(scope="session")
def exported(tiny_model, tmp_path_factory):
    """family -> (base model dir, adapter dir, export dir, lines the export printed), exported on first use.

    The LLaVA case is the bundled `demo-shortcut` (a tiny LLaVA from models/tiny/ with its LoRA): the
    demo pair must be exported anyway, and each export costs most of a minute on a shared CPU."""
    from quadrant.export.onnx import export_onnx
    from quadrant.models.presets import PRESETS

    done: dict[str, tuple] = {}

    def get(family: str):
        if family not in done:
            root = tmp_path_factory.mktemp(f"onnx-{family}")
            if family == "llava":
                preset = PRESETS.get("demo-shortcut")
                base, adapter, model = preset.source, preset.adapter, "demo-shortcut"
            else:
                base = model = tiny_model(family)
                adapter = make_adapter(base, root / "lora")
            lines: list[str] = []
            export_onnx(model, adapter if model == base else None, root / "export", log=lines.append)
            done[family] = (base, adapter, str(root / "export"), lines)
        return done[family]

    return get


def _requests(loaded, seeds=(0, 1)) -> list[ScoreRequest]:
    """Two studies (one square, one not) with three phrasings each, and a text-only prompt."""
    family, processor = loaded.family, loaded.processor
    rng = np.random.default_rng(5)
    requests = []
    for seed, shape in zip(seeds, ((64, 64, 3), (60, 72, 3))):
        image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
        requests += [ScoreRequest(family.render(processor, loaded.wrap(q), True), image) for q in QUESTIONS]
    requests.append(ScoreRequest(family.render(processor, loaded.wrap(QUESTIONS[0]), False), None))
    return requests


@torch.inference_mode()
def _plain_unmerged_margins(base: str, adapter: str, loaded, requests) -> list[float]:
    """The oracle: the unmerged peft model, one plain forward per prompt, through the processor itself."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from quadrant.answers import margins_from_logits

    model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(base), adapter).eval()
    margins = []
    for request in requests:
        images = None if request.image is None else [request.image]
        inputs = loaded.family.encode(loaded.processor, [request.rendered], images)
        logits = model(**inputs).logits[0, -1]
        margins.append(float(margins_from_logits(logits, loaded.answer_tokens)))
    return margins


@pytest.mark.parametrize("family", EXPORTED)
def test_export_merges_validates_and_writes_a_self_describing_folder(exported, family, tmp_path):
    base, adapter, out, lines = exported(family)
    manifest = read_manifest(out)
    assert manifest.family == family and manifest.dtype == "float32" and manifest.opset == 18
    assert manifest.source["adapter"] == adapter and manifest.source["fingerprint"].startswith("sha256:")
    assert {"torch", "transformers", "onnx", "onnxruntime", "onnxscript", "quadrant"} <= set(manifest.versions)
    assert manifest.validation["merged_vs_unmerged"] <= 1e-4
    assert max(manifest.validation["max_diff_vs_torch"], manifest.validation["max_diff_vs_plain"]) <= 1e-4
    assert set(manifest.validation["paths"]) == {"prefix-shared", "packed"}
    assert any(line.startswith("validation") for line in lines) and any("LoRA merged" in line for line in lines)
    names = [i["name"] for i in manifest.graphs["decoder"]["inputs"]]
    assert names[:4] == ["inputs_embeds", "attention_mask", "position_ids", "read_index"] and "past_key_0" in names
    for name in ("vision.onnx", "decoder.onnx", "decoder.onnx.data", "embeddings.safetensors", "tokenizer.json",
                 "config.json"):
        assert (Path(out) / name).is_file(), name
    shutil.copy(Path(out) / "decoder.onnx", tmp_path)  # the reader checks each listed file's size
    copy = dataclasses.replace(manifest, sizes={"decoder.onnx": manifest.sizes["decoder.onnx"]})
    write_manifest(tmp_path, copy)
    assert read_manifest(tmp_path) == copy  # the reader takes exactly what the writer wrote


def test_weights_live_in_external_data_files(exported):
    import onnx

    _, _, out, _ = exported("llava")
    for graph in ("vision.onnx", "decoder.onnx"):
        model = onnx.load(f"{out}/{graph}", load_external_data=False)
        big = [t for t in model.graph.initializer if np.prod(t.dims) >= 1024]
        assert big and all(t.data_location == onnx.TensorProto.EXTERNAL for t in big), graph


@pytest.mark.parametrize("family", EXPORTED)
def test_ort_fast_path_matches_pytorch_and_a_plain_unmerged_forward(exported, family):
    base, adapter, out, _ = exported(family)
    onnx_loaded = load_model(ModelSpec(model=out))
    scorer = BACKENDS.get("onnx")(onnx_loaded)
    assert scorer.prefix_ok()  # the load-time self-check passed on the graphs
    requests = _requests(onnx_loaded)
    ort = scorer.margins(requests)
    assert {r.path for r in ort} == {"prefix-shared", "packed"}
    torch_loaded = load_model(ModelSpec(model=base, adapter=adapter))
    fast = BACKENDS.get("torch")(torch_loaded).margins(_requests(torch_loaded))
    plain = _plain_unmerged_margins(base, adapter, torch_loaded, _requests(torch_loaded))
    assert max(abs(a.margin - b.margin) for a, b in zip(ort, fast)) < 1e-4
    assert max(abs(a.margin - b) for a, b in zip(ort, plain)) < 1e-4
    assert max(abs(a - b) for a, b in zip(plain[:3], plain[3:6])) > 1e-4  # the two images are told apart


def test_the_decoder_graph_runs_its_last_layer_at_the_read_positions_only(exported, tmp_path):
    """A margin reads one position a prompt, so the exported decoder computes its last layer's attention
    output, output projection and MLP at the `read_index` positions alone (`quadrant.backends.last_layer`),
    and every other layer over all tokens: ONNX Runtime's own profile of one call shows the MLP's widening
    matrix product over all 9 tokens in each layer but the last, and over the 2 read positions in the last.
    The margins themselves are held to PyTorch and plain forwards by the test above."""
    import onnxruntime
    from transformers import AutoConfig

    base, _, out, _ = exported("llava")
    text = read_manifest(Path(out)).text
    width = AutoConfig.from_pretrained(base).get_text_config().intermediate_size
    options = onnxruntime.SessionOptions()
    options.enable_profiling, options.profile_file_prefix = True, str(tmp_path / "decoder")
    session = onnxruntime.InferenceSession(str(Path(out) / "decoder.onnx"), options,
                                           providers=["CPUExecutionProvider"])
    queries, reads = 9, [[3, 8]]
    causal = np.tril(np.ones((queries, queries), dtype=bool))
    feeds = {"inputs_embeds": np.random.default_rng(0).standard_normal((1, queries, text["hidden"]), np.float32),
             "attention_mask": np.where(causal, 0, np.finfo(np.float32).min).astype(np.float32)[None, None],
             "position_ids": np.arange(queries)[None], "read_index": np.array(reads)}
    for past in (i.name for i in session.get_inputs() if i.name.startswith("past_")):
        feeds[past] = np.zeros((1, text["kv_heads"], 0, text["head_dim"]), np.float32)
    (logits, *_) = session.run(None, feeds)
    events = json.loads(Path(session.end_profiling()).read_text())
    widening = [shape for event in events if event.get("cat") == "Node" and event["args"].get("op_name") == "MatMul"
                for shape in (list(event["args"]["output_type_shape"][0].values())[0],)
                if len(shape) == 3 and shape[-1] == width]
    rows = [shape[1] for shape in widening]
    per_layer = rows.count(len(reads[0]))
    assert logits.shape[:2] == (1, 2) and per_layer >= 1
    assert sorted(rows) == sorted([queries] * per_layer * (text["layers"] - 1) + [len(reads[0])] * per_layer)


def test_studies_preprocessed_per_row_give_the_same_margins(exported, monkeypatch):
    """Where a family cannot preprocess a study's image once, every row carries the image: the prefix pass
    must still take it once per study."""
    _, _, out, _ = exported("idefics3")
    loaded = load_model(ModelSpec(model=out))
    scorer = BACKENDS.get("onnx")(loaded)
    requests = _requests(loaded)
    once = scorer.margins(requests)
    monkeypatch.setattr(loaded.family, "encode_one_image", lambda *args: None)
    per_row = BACKENDS.get("onnx")(loaded).margins(requests)  # a scorer of its own: nothing kept from the first
    assert [r.path for r in per_row] == [r.path for r in once]
    assert max(abs(a.margin - b.margin) for a, b in zip(per_row, once)) < 1e-5


def test_a_study_keeps_its_prefix_on_the_graphs_for_the_next_question(exported, monkeypatch):
    """A study named by its picture keeps its prefix on ONNX Runtime too: the next call asking about the same
    picture (other prompts, in another order, with the text-only prompt asked again, whose margin is kept too)
    makes no prefix pass and gives the margins the first call gave. The suffix pass reads the kept past
    key/values and must not change them."""
    _, _, out, _ = exported("llava")
    loaded = load_model(ModelSpec(model=out))
    scorer = BACKENDS.get("onnx")(loaded)
    scorer.prepare()
    requests = _requests(loaded)
    study = [dataclasses.replace(r, study_key="picture-0") for r in requests[:3]] + requests[-1:]
    first = scorer.margins(study)
    assert {r.path for r in first} == {"prefix-shared", "packed"}
    (kept,) = scorer._study_prefixes.values()
    assert scorer.steps.nbytes(kept) > 0  # what the bound on kept prefixes weighs
    passes = []
    run_prefix = scorer.steps.run_prefix
    monkeypatch.setattr(scorer.steps, "run_prefix", lambda *args: passes.append(args) or run_prefix(*args))
    for order in ([2, 0, 3], [1, 3]):
        again = scorer.margins([study[i] for i in order])
        assert passes == [] and {r.path for r in again} == {"prefix-reused", "margin-kept"}
        assert max(abs(a.margin - first[i].margin) for a, i in zip(again, order)) < 1e-5


def test_a_check_runs_its_reference_beside_the_prefix_pass_and_gives_the_same_margins(exported, tmp_path):
    """On CPU the content-free reference's suffix pass runs on a thread of its own while the study is read and
    its prefix pass runs (its fixed costs hide under the longer work): it is handed over before the study meets
    the processor, and every margin and path must be the one the same check gives with the calls in turn."""
    _, _, out, _ = exported("llava")
    beside, in_turn = (Checker(load_model(ModelSpec(model=out)), "onnx", CheckOptions()).prepare() for _ in range(2))
    in_turn.scorer.steps.overlaps = False
    assert beside.scorer.steps.overlaps
    studies = [load_study(write_png(tmp_path / f"s{i}.png", seed=i, size=(96, 80))) for i in range(2)]
    for checker in (beside, in_turn):  # the size's reference prefix made and kept: the next check reuses it
        checker.check(studies[0], QUESTIONS[0])
    calls, order = [], []
    decoder = beside.loaded.graphs.decoder
    run = decoder.run
    decoder.run = lambda names, feeds, *rest: calls.append(
        (threading.current_thread().name, feeds["past_key_0"].shape[2] > 0)) or run(names, feeds, *rest)
    family, thread = beside.loaded.family, beside.scorer._beside
    read_image, submit = family.read_image, thread.submit
    family.read_image = lambda *args: order.append("study read") or read_image(*args)
    thread.submit = lambda *args: order.append("reference handed over") or submit(*args)
    first, second = (checker.check(studies[1], QUESTIONS[2]) for checker in (beside, in_turn))
    family.read_image, thread.submit = read_image, submit
    # the reference's suffix pass on the reference thread; the study's prefix and suffix passes on the caller's
    assert sorted(calls) == sorted([("quadrant-reference_0", True), ("MainThread", False), ("MainThread", True)])
    assert order == ["reference handed over", "study read"]  # handed over before the study met the processor
    margins = [[p.margin for p in v.prompts + [v.text_only, v.content_free]] for v in (first, second)]
    assert margins[0] == margins[1]
    assert first.timing_ms["path"] == second.timing_ms["path"] == "packed+prefix-reused+prefix-shared"
    # a batch of studies of three sizes, asking three questions: one reference per question beside the studies
    decoder.run = run
    batch = [CheckRequest(load_study(write_png(tmp_path / f"b{i}.png", seed=10 + i, size=size)), question)
             for i, (size, question) in enumerate([((96, 80), QUESTIONS[1]), ((72, 90), QUESTIONS[0]),
                                                   ((120, 64), QUESTIONS[2]), ((72, 90), QUESTIONS[1])])]
    together = [[[p.margin for p in v.prompts + [v.text_only, v.content_free]] for v in checker.check_many(batch)]
                for checker in (beside, in_turn)]
    assert together[0] == together[1]


@pytest.mark.parametrize("family", EXPORTED)
def test_check_on_the_export_gives_the_torch_verdict(exported, family, study_png, capsys):
    base, adapter, out, _ = exported(family)
    args = ["check", "--image", study_png, "--question", "Is there a pneumothorax?", "--json"]
    assert main(args + ["--model", base, "--adapter", adapter, "--backend", "torch"]) == 0
    reference = json.loads(capsys.readouterr().out)
    assert main(args + ["--model", out, "--backend", "onnx"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["quadrant"] == reference["quadrant"] and verdict["answer"] == reference["answer"]
    pairs = zip(verdict["prompts"] + [verdict["text_only"]], reference["prompts"] + [reference["text_only"]])
    assert all(abs(a["margin"] - b["margin"]) < 1e-4 and a["rendered"] == b["rendered"] for a, b in pairs)
    assert verdict["model"]["backend"] == "onnx" and verdict["model"]["provider"] == "CPUExecutionProvider"
    assert verdict["model"]["source_fingerprint"] == reference["model"]["fingerprint"]
    assert main(args + ["--model", out]) == 0  # an export folder picks the onnx backend by itself
    assert json.loads(capsys.readouterr().out)["model"]["backend"] == "onnx"
    assert main(args[:-1] + ["--model", out]) == 0  # the terminal report names the provider that ran it
    assert f"({verdict['model']['family']}, onnx, cpu, float32, CPUExecutionProvider)" in capsys.readouterr().out


def test_generate_mode_matches_pytorch_greedy(exported):
    base, adapter, out, _ = exported("llava")
    onnx_loaded = load_model(ModelSpec(model=out))
    torch_loaded = load_model(ModelSpec(model=base, adapter=adapter))
    requests = _requests(onnx_loaded)[:1] + _requests(onnx_loaded)[-1:]
    ort = BACKENDS.get("onnx")(onnx_loaded).generate(requests, max_new_tokens=5)
    reference = BACKENDS.get("torch")(torch_loaded).generate(requests, max_new_tokens=5)
    assert ort == reference and any(ort)


# -- the bundled demo pair ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def demo_exports(exported, demo_onnx):
    """preset -> its export folder (demo-shortcut's is the LLaVA case's)."""
    return {"demo": demo_onnx, "demo-shortcut": exported("llava")[2]}


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["demo", "demo-shortcut"])
def test_demo_exports_give_the_demo_verdicts_on_every_sample(demo_exports, preset):
    from quadrant.check import Checker, CheckRequest
    from quadrant.images import load_study
    from quadrant.models.make_samples import WANTED
    from quadrant.models.presets import MODELS_DIR

    questions = ["Is there cardiomegaly?", "Is there a pleural effusion?", "Is there a pneumothorax?",
                 "Is there a lung nodule?", "Is there consolidation?"]
    samples = [MODELS_DIR / "samples" / f"{stem}.{fmt}" for stem, _, fmt in WANTED]  # the sample studies
    requests = [CheckRequest(load_study(p), q) for p in samples for q in questions]
    onnx_checker = Checker(load_model(ModelSpec(model=demo_exports[preset])), "onnx")
    torch_checker = Checker(load_model(ModelSpec(model=preset)), "torch")
    ort = onnx_checker.check_many(requests)  # all studies in one call: prefixes batched across studies
    reference = [torch_checker.check(r.study, r.question) for r in requests]
    assert len(samples) == 7
    for a, b in zip(ort, reference):
        assert (a.quadrant, a.answer, a.consistent) == (b.quadrant, b.answer, b.consistent)
        assert all(abs(x.margin - y.margin) < 1e-4 for x, y in zip(a.prompts, b.prompts))
        assert abs(a.text_only.margin - b.text_only.margin) < 1e-4


# -- refusals: exit 2 and one line ------------------------------------------------------------------------


def _one_line_error(capsys, args: list[str], expected: str) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err


@pytest.fixture
def export_copy(exported, tmp_path):
    """A scratch copy of the LLaVA export to damage."""
    _, _, out, _ = exported("llava")
    return shutil.copytree(out, tmp_path / "copy")


def test_a_missing_provider_is_refused(exported, study_png, capsys):
    _, _, out, _ = exported("llava")
    check = ["check", "--image", study_png, "--question", "Is there a pneumothorax?", "--model", out]
    _one_line_error(capsys, check + ["--device", "cuda"], "CUDAExecutionProvider")
    _one_line_error(capsys, check + ["--device", "tensorrt"], "TensorrtExecutionProvider")
    _one_line_error(capsys, check + ["--backend", "torch"], "is an ONNX export")


def test_a_corrupt_or_truncated_graph_is_refused(export_copy, study_png, capsys):
    check = ["check", "--image", study_png, "--question", "Is there a pneumothorax?", "--model", str(export_copy)]
    graph = export_copy / "decoder.onnx"
    graph.write_bytes(b"\x00garbage" * (graph.stat().st_size // 8) + b"\x00" * (graph.stat().st_size % 8))
    _one_line_error(capsys, check, "corrupt")
    data = export_copy / "vision.onnx.data"
    data.write_bytes(data.read_bytes()[:100])
    _one_line_error(capsys, check, "truncated")


def test_an_export_of_another_version_is_refused(export_copy, study_png, capsys):
    manifest = json.loads((export_copy / MANIFEST_NAME).read_text())
    manifest["format"] = 0
    (export_copy / MANIFEST_NAME).write_text(json.dumps(manifest))
    check = ["check", "--image", study_png, "--question", "Is there a pneumothorax?", "--model", str(export_copy)]
    _one_line_error(capsys, check, "export the model again")


def test_a_preset_whose_source_is_an_export_runs_on_onnx(exported, study_png, monkeypatch, capsys):
    """The backend is chosen once, from the resolved source: a preset naming an export folder gets ONNX Runtime,
    as the folder named directly does, and --backend torch is refused for it the same way."""
    from quadrant.backends import choose_backend, load_model as load
    from quadrant.models.presets import PRESETS, Preset

    _, _, out, _ = exported("llava")
    monkeypatch.setitem(PRESETS._entries, "shortcut-onnx", Preset("shortcut-onnx", out, "an exported preset"))
    loaded = load(ModelSpec(model="shortcut-onnx"))
    assert loaded.backend == "onnx" and not hasattr(loaded, "model") and loaded.graphs.manifest.family == "llava"
    assert choose_backend(out) == "onnx" and choose_backend(PRESETS.get("demo").source) == "torch"
    check = ["check", "--image", study_png, "--question", "Is there a pneumothorax?", "--json"]
    assert main(check + ["--model", "shortcut-onnx"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["backend"] == "onnx"
    _one_line_error(capsys, check + ["--model", "shortcut-onnx", "--backend", "torch"], "is an ONNX export")


def test_onnx_backend_on_a_model_that_is_not_an_export_is_refused(tiny_model, study_png, capsys):
    check = ["check", "--image", study_png, "--question", "Is there a pneumothorax?", "--backend", "onnx"]
    _one_line_error(capsys, check + ["--model", tiny_model("llava")], "quadrant export onnx")


def test_a_family_that_has_not_opted_in_is_refused_by_name(tiny_model, tmp_path, capsys, monkeypatch):
    """Every family Quadrant serves declares its ONNX split (tests/test_onnx_families.py exports the rest); a
    family added later without one is refused with a line naming it, and nothing is written."""
    from quadrant.families.llava import LlavaFamily

    assert all(FAMILIES.get(name).onnx_exportable for name in FAMILIES.names())
    monkeypatch.setattr(LlavaFamily, "onnx_exportable", False)
    model = tiny_model("llava")
    capsys.readouterr()
    _one_line_error(capsys, ["export", "onnx", "--model", model, "--out", str(tmp_path / "x")],
                    "llava family cannot be exported to ONNX: nobody has written and checked its ONNX split")
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.partial").exists()


def test_tensorrt_export_says_what_is_missing(exported, tmp_path, capsys):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    _, _, out, _ = exported("llava")
    _one_line_error(capsys, ["export", "tensorrt", "--model", out, "--out", str(tmp_path / "engines")],
                    "https://pypi.nvidia.com")
    _one_line_error(capsys, ["export", "tensorrt", "--model", str(tmp_path), "--out", str(tmp_path / "e")],
                    "is not an ONNX export")


def test_export_refuses_a_used_folder(tmp_path, capsys):
    (tmp_path / "keep").write_text("mine")
    _one_line_error(capsys, ["export", "onnx", "--model", "demo", "--out", str(tmp_path)], "not empty")
    assert (tmp_path / "keep").read_text() == "mine"
