"""The optional local paraphrase model: a tiny random Llama with a chat template, built offline. Its output is
garbage, so what the test sees is the filter throwing it away and the rules topping the set up."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from quadrant.backends import load_model
from quadrant.check import Checker
from quadrant.cli.main import build_parser, main
from quadrant.cli.options import spec_and_options
from quadrant.errors import ModelError, ModelNotFoundError
from quadrant.fingerprint import fingerprint
from quadrant.models.tiny import train_tokenizer
from quadrant.paraphrase_model import LocalParaphraser, clean_lines, faithful_candidates, faithfulness_problem
from quadrant.paraphrases import paraphrase_set, rule_paraphrases
from quadrant.questions import key, validate_question

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_chat_lm(tmp_path_factory):
    """A random LlamaForCausalLM with a tokenizer trained on the spot and a ChatML template."""
    out = tmp_path_factory.mktemp("tiny-chat-lm")
    tokenizer = train_tokenizer()
    tokenizer.chat_template = CHATML
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_a_random_models_garbage_is_filtered_and_the_rules_top_the_set_up(tiny_chat_lm):
    paraphraser = LocalParaphraser(tiny_chat_lm, max_new_tokens=48).load()
    question = "Is there a small left pleural effusion?"
    raw = paraphraser.generate(question, 8)
    assert raw.strip(), "the model wrote something"
    assert paraphraser.generate(question, 8) == raw, "greedy: the same reply every time"
    candidates = clean_lines(raw)
    kept = faithful_candidates(question, candidates)
    assert kept == [], kept  # random tokens are never a faithful yes/no question
    out = paraphrase_set(question, paraphraser=paraphraser)
    assert len(out) == 6 and len({key(p.text) for p in out}) == 6
    assert out[1:] == [p for p in rule_paraphrases(question) if key(p.text) != key(question)][:5]
    for p in out[1:]:
        validate_question(p.text)


def test_the_filter_keeps_only_faithful_accepted_distinct_candidates():
    question = "Is there a small left pleural effusion?"
    reply = "\n".join([
        "1. Is there a small left effusion?",            # a bank synonym, qualifiers kept: kept
        "2) Is there a small left effusion?",            # duplicate: dropped
        "- Is there an effusion?",                       # drops 'small' and 'left'
        "* Is there a small right pleural effusion?",    # swaps the side
        '"Is there a small left pneumothorax?"',         # another finding
        "What is the size of the effusion?",             # not a yes/no question
        "Can a small left pleural effusion be ruled out?",  # the opposite polarity
        "Does this radiograph show a small left pleural effusion?",  # kept
        "Is a small left pleural effusion present on this chest X-ray?",  # kept
    ])
    kept = faithful_candidates(question, clean_lines(reply))
    assert [p.text for p in kept] == [
        "Is there a small left effusion?",
        "Does this radiograph show a small left pleural effusion?",
        "Is a small left pleural effusion present on this chest X-ray?",
    ]
    assert {p.source for p in kept} == {"model"}


@pytest.mark.parametrize(
    "question,candidate,problem",
    [
        ("Are the lungs hyperinflated?", "Are there signs of COPD?", "drops the finding 'hyperinflation'"),
        ("Is there a pleural effusion?", "Is there a pleural effusion or a pneumothorax?", "adds the finding"),
        ("Is there a left pleural effusion?", "Is there a pleural effusion?", "drops 'left'"),
        ("Is there a pleural effusion?", "Is there a large pleural effusion?", "adds 'large'"),
        ("Is there a pneumothorax?", "Can a pneumothorax be ruled out?", "presence into one about absence"),
        ("Is the ETT well positioned?", "Is the endotracheal tube well positioned?", None),
        ("Effusion?", "Is there any fluid in the pleural space?", None),
        ("Yes or no: is the trachea midline?", "Based on this radiograph, is the trachea midline?", None),
    ],
)
def test_faithfulness_problem(question, candidate, problem):
    found = faithfulness_problem(question, candidate)
    assert (found is None) if problem is None else (problem in (found or "")), found


def test_paraphraser_errors(tmp_path, tiny_chat_lm):
    with pytest.raises(ModelNotFoundError, match="not a local model directory: download the model beforehand"):
        LocalParaphraser(tmp_path / "absent").load()
    with pytest.raises(ModelError, match="cannot load paraphraser"):
        LocalParaphraser(tmp_path).load()
    no_template = tmp_path / "no-template"
    no_template.mkdir()
    for item in tiny_chat_lm.iterdir():
        if item.name != "chat_template.jinja":
            (no_template / item.name).write_bytes(item.read_bytes())
    config = json.loads((no_template / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (no_template / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="has no chat template"):
        LocalParaphraser(no_template).load()


def test_command_line_paraphraser(tmp_path, study_png, tiny_model, tiny_chat_lm, capsys):
    code = main(["check", "--image", study_png, "--question", "Is the NG tube in the stomach?", "--json",
                 "--model", tiny_model("llava"), "--paraphraser", str(tiny_chat_lm)])
    verdict = json.loads(capsys.readouterr().out)
    assert code == 0 and len(verdict["prompts"]) == 6
    # "NG" written out is the first rewrite ("Is the nasogastric tube in the stomach?"), then frames
    assert [p["source"] for p in verdict["prompts"]] == ["question", "rewrite", "frame", "frame", "frame", "frame"]
    code = main(["check", "--image", study_png, "--question", "Effusion?", "--paraphraser", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "download the model beforehand" in err


def test_options_carry_the_paraphraser_unloaded_and_prepare_loads_it_once(tiny_model, tiny_chat_lm, study_png):
    """Parsing options loads no model (an evaluation's workers receive them light); the run record still
    fingerprints the paraphraser's weights; `Checker.prepare` is the step that loads it, once."""
    args = build_parser("check").parse_args(["check", "--image", study_png, "--question", "Is there an effusion?",
                                             "--model", tiny_model("llava"), "--paraphraser", str(tiny_chat_lm)])
    spec, options = spec_and_options(args)
    paraphraser = options.paraphraser
    assert paraphraser.model is None and paraphraser.tokenizer is None
    assert paraphraser.fingerprint == fingerprint(tiny_chat_lm)
    checker = Checker(load_model(spec), options=options)
    assert paraphraser.model is None, "building a checker only holds its settings"
    assert checker.prepare() is checker
    model = paraphraser.model
    assert model is not None and not model.training
    Checker(checker.loaded, options=options).prepare()
    assert paraphraser.model is model, "a paraphraser shared by two checkers is loaded once"
