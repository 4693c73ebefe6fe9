"""`quadrant export merge`: the merged model answers like the adapter it came from."""

import json

from conftest import make_adapter
from quadrant.cli.main import main


def test_merge_saves_a_plain_model_with_the_adapters_answers(tiny_model, study_png, tmp_path, capsys):
    base = tiny_model("llava")
    adapter = make_adapter(base, tmp_path / "lora")
    out = tmp_path / "merged"
    assert main(["export", "merge", "--model", base, "--adapter", adapter, "--out", str(out)]) == 0
    manifest = json.loads((out / "quadrant_export.json").read_text())
    assert manifest["max_abs_logit_diff"] <= 1e-4 and manifest["kind"] == "merge"
    assert not (out / "adapter_config.json").exists()
    capsys.readouterr()
    args = ["check", "--image", study_png, "--question", "Is there a pneumothorax?", "--json"]
    assert main(args + ["--model", base, "--adapter", adapter]) == 0
    unmerged = json.loads(capsys.readouterr().out)
    assert main(args + ["--model", str(out)]) == 0
    merged = json.loads(capsys.readouterr().out)
    for a, b in zip(merged["prompts"] + [merged["text_only"]], unmerged["prompts"] + [unmerged["text_only"]]):
        assert abs(a["margin"] - b["margin"]) < 1e-4
    assert merged["model"]["fingerprint"] == manifest["fingerprint"]


def test_merge_refuses_a_used_folder_and_a_missing_adapter(tiny_model, tmp_path, capsys):
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("keep me")
    assert main(["export", "merge", "--model", tiny_model("llava"), "--adapter", str(tmp_path), "--out", str(used)]) == 2
    assert "not empty" in capsys.readouterr().err and (used / "x").read_text() == "keep me"
    assert main(["export", "merge", "--model", tiny_model("llava"), "--out", str(tmp_path / "new")]) == 2
    assert "nothing to merge" in capsys.readouterr().err
