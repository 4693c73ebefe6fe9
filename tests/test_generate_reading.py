"""Reading a generated answer where each model's convention puts it (recorded outputs in
tests/data/generated_answers.json), and the presets that say which convention and token budget a model uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quadrant.answers import ANSWER_FORMATS, Generation, read_generated
from quadrant.errors import OptionError
from quadrant.models.presets import PRESETS

CASES = json.loads((Path(__file__).parent / "data" / "generated_answers.json").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['format']}-{c['expected']}-{c['text'][:24]}")
def test_recorded_outputs_are_read_where_the_convention_puts_the_answer(case):
    answer = read_generated(case["text"], case["format"])
    assert answer.answer == case["expected"]
    assert answer.generated == case["text"] and answer.margin is None


def test_every_convention_has_recorded_cases_of_each_outcome():
    for answer_format in ANSWER_FORMATS:
        outcomes = {c["expected"] for c in CASES if c["format"] == answer_format}
        assert outcomes == {"yes", "no", "unclear"}, answer_format


def test_a_first_yes_inside_the_reasoning_is_not_the_answer():
    """The old reading (first yes/no word) takes a word of the reasoning; the convention's does not."""
    text = CASES[0]["text"]
    assert read_generated(text, "direct").answer == "no"
    assert read_generated(text, "answer-tag").answer == "yes"


def test_reasoning_presets_generate_with_a_budget_and_read_their_convention():
    r1 = PRESETS.get("medvlm-r1")
    assert r1.generation.scoring == "generate" and r1.generation.answer_format == "answer-tag"
    assert r1.generation.max_new_tokens >= 256
    assert "<answer>" in r1.prompt
    for name in ("lingshu-7b", "huatuogpt-vision-7b", "qwen2.5-vl-7b", "medgemma-1.5-4b"):
        assert PRESETS.get(name).generation.scoring == "logits", name


def test_bad_generation_settings_are_refused():
    with pytest.raises(OptionError, match="answer format"):
        Generation(answer_format="xml")
    with pytest.raises(OptionError, match="budget"):
        Generation(max_new_tokens=0)
