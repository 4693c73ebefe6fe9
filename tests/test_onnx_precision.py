"""Smaller exports, judged on verdicts: int8 and int4 exports of the bundled demo model (quantized from its
float32 export, as `quadrant export onnx --model EXPORT --quantize ...` does), their validation reports, the
refusal below --min-agreement (nothing kept), half precision on this CPU, and what a check shows of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quadrant.backends.onnx_format import VALIDATION_NAME, read_manifest
from quadrant.cli.main import main
from quadrant.errors import OptionError

onnx = pytest.importorskip("onnx")
#: the validation studies here: fresh phantoms, fewer than the command's default 200 (README: the measured
#: figures on 200); a seed used for nothing else
PHANTOMS, SEED = 20, 2031


@pytest.fixture(scope="session")
def phantoms(tmp_path_factory):
    from quadrant.export.verdicts import ValidationSet
    from quadrant.models.phantoms import generate_phantoms

    manifest = generate_phantoms(tmp_path_factory.mktemp("validation-phantoms"), PHANTOMS, SEED)
    return ValidationSet(manifest, f"{PHANTOMS} phantoms (seed {SEED})")


@pytest.fixture(scope="session")
def quantized(demo_onnx, phantoms, tmp_path_factory):
    """precision -> (export folder, lines its export printed), made once per session."""
    from quadrant.export.onnx import export_onnx

    done: dict[str, tuple[str, list[str]]] = {}

    def get(kind: str):
        if kind not in done:
            out = tmp_path_factory.mktemp(f"demo-{kind}") / kind
            lines: list[str] = []
            export_onnx(demo_onnx, None, out, quantize=kind, validate_on=phantoms, log=lines.append)
            done[kind] = (str(out), lines)
        return done[kind]

    return get


def _ops(folder: str) -> set[str]:
    graphs = [onnx.load(str(Path(folder) / name), load_external_data=False) for name in ("vision.onnx", "decoder.onnx")]
    return {node.op_type for graph in graphs for node in graph.graph.node}


@pytest.mark.parametrize("kind, weights, operator", [("int8", 0.40, "MatMulInteger"), ("int4", 0.30, "MatMulNBits")])
def test_quantized_exports_are_smaller_and_prove_their_verdicts(quantized, demo_onnx, kind, weights, operator):
    """At most 40% of the float32 export's files (the float embedding table and the graphs' structure weigh
    on a model this small), and the graphs' weights at most 40% (int8) or 30% (int4) of float32's."""
    out, lines = quantized(kind)
    manifest, source = read_manifest(out), read_manifest(demo_onnx)
    assert manifest.quantization == kind and manifest.precision == kind and manifest.dtype == "float32"
    assert manifest.unquantized_sizes == source.sizes and VALIDATION_NAME in manifest.sizes
    assert manifest.model_bytes <= 0.40 * source.model_bytes
    assert manifest.weight_bytes <= weights * source.weight_bytes
    assert operator in _ops(out) and operator not in _ops(demo_onnx)
    verdicts = manifest.verdicts
    assert verdicts["verdicts"] == 5 * PHANTOMS and verdicts["images"] == PHANTOMS
    assert verdicts["quadrant_agreement"] >= 0.98 and verdicts["min_agreement"] == 0.98
    assert verdicts["summary"].startswith(f"{kind}, ") and f"as fp32 on {PHANTOMS} phantoms" in verdicts["summary"]
    report = json.loads((Path(out) / VALIDATION_NAME).read_text())
    assert len(report["studies"]) == 5 * PHANTOMS
    agree = sum(s["quadrant_agrees"] for s in report["studies"]) / len(report["studies"])
    assert agree == pytest.approx(report["quadrant_agreement"])
    assert report["changed"] == [s["study_id"] for s in report["studies"] if not s["quadrant_agrees"]]
    assert all(s["max_margin_diff"] >= 0 for s in report["studies"])
    assert any(line.startswith("verdicts: ") for line in lines)


def test_a_check_on_a_quantized_export_says_what_it_is(quantized, study_png, capsys):
    out, _ = quantized("int8")
    args = ["check", "--image", study_png, "--question", "Is there a pleural effusion?", "--model", out]
    assert main(args + ["--json"]) == 0
    model = json.loads(capsys.readouterr().out)["model"]
    assert model["backend"] == "onnx" and model["precision"] == "int8"
    summary = read_manifest(out).verdicts["summary"]
    assert model["validation"]["summary"] == summary and model["validation"]["verdicts"] == 5 * PHANTOMS
    assert main(args) == 0
    assert f"Export {summary}" in capsys.readouterr().out


def test_below_the_bar_nothing_is_kept(quantized, demo_onnx, phantoms, tmp_path, capsys):
    """4-bit weights move a few of the demo model's verdicts on these phantoms (its report says which): at
    --min-agreement 1 the same export is refused in one line naming the share, and no folder is left behind."""
    made, _ = quantized("int4")
    assert read_manifest(made).verdicts["quadrant_agreement"] < 1
    out = tmp_path / "int4"
    code = main(["export", "onnx", "--model", demo_onnx, "--quantize", "int4", "--validate-on", str(phantoms.manifest),
                 "--min-agreement", "1", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "below --min-agreement 1" in err and "nothing was kept" in err
    assert not out.exists() and not (tmp_path / "int4.partial").exists()


def test_smaller_exports_need_verdicts_and_a_float32_start(demo_onnx, tmp_path):
    from quadrant.export.onnx import export_onnx

    with pytest.raises(OptionError, match="--validate-on"):
        export_onnx("demo", None, tmp_path / "a", quantize="int8", validate_on=None)
    with pytest.raises(OptionError, match="already an ONNX export"):
        export_onnx(demo_onnx, None, tmp_path / "b")
    with pytest.raises(OptionError, match="between 0 and 1"):
        export_onnx(demo_onnx, None, tmp_path / "c", quantize="int8", validate_on="x", min_agreement=98)
    assert not any(tmp_path.iterdir())


def test_half_precision_export_on_this_cpu(tiny_model, phantoms, tmp_path):
    """float16 is meant for GPUs; here, on the CPU, what can be checked is checked: the graphs are float16,
    the margins within half precision's 5e-2 of PyTorch's float32, and the verdicts compared. Its speed and
    memory need a GPU (models/gpu_check.py)."""
    from quadrant.export.onnx import export_onnx

    manifest = export_onnx(tiny_model("llava"), None, tmp_path / "fp16", dtype="float16", validate_on=phantoms,
                           min_agreement=0.0, log=lambda line: None)
    assert manifest.dtype == "float16" and manifest.precision == "fp16"
    assert manifest.validation["tolerance"] == 5e-2
    assert max(manifest.validation["max_diff_vs_torch"], manifest.validation["max_diff_vs_plain"]) <= 5e-2
    decoder = {i["name"]: i for i in manifest.graphs["decoder"]["inputs"]}
    assert decoder["inputs_embeds"]["dtype"] == "float16" and decoder["past_key_0"]["dtype"] == "float16"
    assert manifest.verdicts["verdicts"] == 5 * PHANTOMS


def test_bench_times_each_precision_beside_fp32_with_its_size(capsys):
    """`quadrant bench --backend onnx --quantize int8`: a row per precision, its ratio to fp32 recomputed from
    the reported medians, its files' size against fp32's, its verdicts as compared at export; no time asserted."""
    argv = ["bench", "--json", "--backend", "onnx", "--quantize", "int8", "--hidden", "32", "--layers", "1",
            "--repeats", "1", "--no-families", "--device", "cpu"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    rows = result["precisions"]
    assert [row["precision"] for row in rows] == ["fp32", "int8"]
    fp32, int8 = rows
    # one measurement, timed in turn with int8's: the headline's fp32 figures are the fp32 row's
    assert (fp32["quadrant_ms"], fp32["one_forward_ms"]) == (result["quadrant_ms"], result["one_forward_ms"])
    assert int8["faster_than_fp32"] == pytest.approx(fp32["quadrant_ms"] / int8["quadrant_ms"], rel=1e-12)
    assert int8["size_vs_fp32"] == pytest.approx(int8["bytes"] / fp32["bytes"], rel=1e-12)
    # at this width the float parts quantization leaves (graph structure, embedding table, the vision tower's
    # patch convolution and position table) weigh more than they do in the demo model (see the test above)
    assert int8["size_vs_fp32"] < 1 and int8["weights_vs_fp32"] < 1
    assert fp32["max_margin_diff"] < 1e-4 and "prefix-shared" in int8["path"]
    assert int8["verdicts"].startswith("int8, ") and int8["verdicts"].endswith("as fp32 on 10 phantoms (seed 2031)")


def test_bench_times_an_export_of_the_opset_asked(capsys):
    """`quadrant bench --backend onnx --opset 23`: the exports are made at that opset (its fused attention,
    rotary and RMS norm operators) and say so; the fast path on them is still exact. `--opset` without ONNX
    is refused by name."""
    argv = ["bench", "--json", "--backend", "onnx", "--opset", "23", "--hidden", "32", "--layers", "1",
            "--repeats", "1", "--no-families", "--device", "cpu"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["opset"] == 23 and result["max_margin_diff"] < 1e-4 and "prefix-shared" in result["path"]
    assert main(["bench", "--opset", "23", "--no-families"]) == 2
    assert "--opset" in capsys.readouterr().err
