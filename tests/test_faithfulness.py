"""Faithfulness, judged by a person: every paraphrase Quadrant writes for a corpus of real-world chest X-ray
questions (tests/data/faithfulness_corpus.json) was read and judged. The suite fails when a paraphrase judged
unfaithful comes back, and when a new one appears that nobody has judged, so a change to the bank or the
rules is reviewed in the data file before it ships."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quadrant.errors import InputError
from quadrant.paraphrases import paraphrase_set

CORPUS = json.loads((Path(__file__).parent / "data" / "faithfulness_corpus.json").read_text(encoding="utf-8"))
QUESTIONS = CORPUS["questions"]
CATEGORIES = {"terse", "lines and tubes", "qualifiers", "laterality", "negatives", "devices", "bones", "mediastinum",
              "pediatric", "typos", "long-winded", "other languages", "not yes/no"}


def test_the_corpus_covers_every_category_with_enough_questions():
    assert len(QUESTIONS) >= 60 and {q["category"] for q in QUESTIONS} == CATEGORIES
    assert len({q["question"] for q in QUESTIONS}) == len(QUESTIONS)
    for item in QUESTIONS:
        if item["accepted"]:
            assert set(item["faithful"]).isdisjoint(item["unfaithful"]), item["question"]
            assert all(why.strip() for why in item["unfaithful"].values()), "every unfaithful one says why"


@pytest.mark.parametrize("item", QUESTIONS, ids=[q["question"][:50] for q in QUESTIONS])
def test_every_paraphrase_is_judged_faithful(item):
    if not item["accepted"]:
        with pytest.raises(InputError) as info:
            paraphrase_set(item["question"])
        assert item["refusal"] in str(info.value)
        return
    written = [("!" if p.inverted else "") + p.text for p in paraphrase_set(item["question"])[1:]]
    came_back = {t: item["unfaithful"][t] for t in written if t in item["unfaithful"]}
    assert not came_back, f"judged unfaithful, written again: {came_back}"
    unjudged = [t for t in written if t not in item["faithful"]]
    assert not unjudged, f"not judged yet (read them, then add each to 'faithful' or 'unfaithful'): {unjudged}"
