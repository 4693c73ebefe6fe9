"""Model options that change what is asked or how reliance is judged: each one observably takes effect."""

from __future__ import annotations

import json

from conftest import write_png
from quadrant.cli.main import main

QUESTION = "Is there a pneumothorax?"


def check(capsys, *argv) -> dict:
    code = main(["check", "--question", QUESTION, "--json", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_prompt_and_chat_template_overrides_reach_the_rendered_text(tiny_model, study_png, tmp_path, capsys):
    model = tiny_model("llava")
    verdict = check(capsys, "--image", study_png, "--model", model, "--prompt", "Question: {question} Reply yes or no.")
    assert verdict["prompts"][0]["rendered"] == "USER: <image>\nQuestion: Is there a pneumothorax? Reply yes or no. ASSISTANT:"
    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>"
                        "{% else %}[Q] {{ c['text'] }}{% endif %}{% endfor %}{% endfor %} [A]:")
    verdict = check(capsys, "--image", study_png, "--model", model, "--chat-template", str(template))
    assert verdict["prompts"][0]["rendered"] == "<image>[Q] Is there a pneumothorax? Answer with yes or no. [A]:"
    assert verdict["text_only"]["rendered"] == "[Q] Is there a pneumothorax? Answer with yes or no. [A]:"
    assert main(["check", "--question", QUESTION, "--image", study_png, "--model", model, "--prompt", "no slot"]) == 2
    assert "{question}" in capsys.readouterr().err


def test_ablate_all_scores_every_phrasing_without_the_image(tiny_model, study_png, capsys):
    verdict = check(capsys, "--image", study_png, "--model", tiny_model("llava"), "--ablate-all", "-k", "3")
    assert len(verdict["prompts"]) == 4
    assert [t["text"] for t in verdict["text_only_all"]] == [p["text"] for p in verdict["prompts"]]
    assert verdict["text_only_all"][0] == verdict["text_only"]
    assert all("<image>" not in t["rendered"] for t in verdict["text_only_all"])


def test_image_ablations_are_recorded_and_differ(tiny_model, study_png, capsys):
    margins = {}
    for mode in ("none", "blank", "white", "noise"):
        verdict = check(capsys, "--image", study_png, "--model", tiny_model("llava"), "--ablation", mode)
        assert verdict["text_only"]["ablation"] == mode
        margins[mode] = verdict["text_only"]["margin"]
    assert len(set(round(m, 6) for m in margins.values())) == 4


def test_swap_ablation_uses_another_studys_image(tiny_model, tmp_path, capsys):
    write_png(tmp_path / "a.png", seed=1)
    write_png(tmp_path / "b.png", seed=2)
    (tmp_path / "m.csv").write_text(f"image,question,study_id\na.png,{QUESTION},a\nb.png,{QUESTION},b\n")
    argv = ["evaluate", "--manifest", str(tmp_path / "m.csv"), "--model", tiny_model("llava"), "--quiet"]
    assert main(argv + ["--out", str(tmp_path / "swap"), "--ablation", "swap"]) == 0
    assert main(argv + ["--out", str(tmp_path / "blank"), "--ablation", "blank"]) == 0
    swap = [json.loads(x) for x in (tmp_path / "swap" / "samples.jsonl").read_text().splitlines()]
    blank = [json.loads(x) for x in (tmp_path / "blank" / "samples.jsonl").read_text().splitlines()]
    assert {s["text_only"]["ablation"] for s in swap} == {"swap"}
    assert swap[0]["text_only"]["margin"] != blank[0]["text_only"]["margin"]
    assert main(["check", "--question", QUESTION, "--image", str(tmp_path / "a.png"), "--model",
                 tiny_model("llava"), "--ablation", "swap"]) == 2
    assert "another study" in capsys.readouterr().err
