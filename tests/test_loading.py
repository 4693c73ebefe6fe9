"""Loading: LoRA adapters, fingerprints, presets, answer tokens, devices, and the generate-and-parse mode."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedTokenizerFast

from conftest import make_adapter
from quadrant.answers import find_answer_tokens
from quadrant.cli.main import main
from quadrant.errors import ModelNotFoundError, OptionError, UnsupportedModelError
from quadrant.fingerprint import fingerprint
from quadrant.backends import load_model
from quadrant.loading import ModelSpec, resolve_device

def test_adapter_margins_match_an_unmerged_peft_forward(tiny_model, study_png, tmp_path, capsys):
    from peft import PeftModel

    base = tiny_model("llava")
    adapter = make_adapter(base, tmp_path / "lora")
    code = main(["check", "--image", study_png, "--question", "Is there a pneumothorax?", "--model", base,
                 "--adapter", adapter, "--json"])
    verdict = json.loads(capsys.readouterr().out)
    assert code == 0
    processor = AutoProcessor.from_pretrained(base)
    model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(base), adapter).eval()
    plain = AutoModelForImageTextToText.from_pretrained(base).eval()
    yes, no = verdict["model"]["answer_tokens"]["yes"], verdict["model"]["answer_tokens"]["no"]
    image = Image.open(study_png).convert("RGB")
    inputs = processor(text=verdict["prompts"][0]["rendered"], images=image, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0, -1]
        base_logits = plain(**inputs).logits[0, -1]
    margin = float(torch.logsumexp(logits[yes], 0) - torch.logsumexp(logits[no], 0))
    base_margin = float(torch.logsumexp(base_logits[yes], 0) - torch.logsumexp(base_logits[no], 0))
    assert abs(verdict["prompts"][0]["margin"] - margin) < 1e-4
    assert abs(margin - base_margin) > 1e-3  # the adapter really changed the answer's margin
    assert verdict["model"]["fingerprint"] != fingerprint(base)


def test_fingerprint_follows_the_weights_not_the_path(tiny_model, tmp_path):
    base = tiny_model("llava")
    copy = shutil.copytree(base, tmp_path / "copy")
    assert fingerprint(base) == fingerprint(copy)
    weights = next(copy.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert fingerprint(base) != fingerprint(copy)


def test_unknown_model_names_a_close_preset(tmp_path):
    with pytest.raises(ModelNotFoundError, match="did you mean the preset 'medgemma-4b'"):
        load_model(ModelSpec(model="medgemma-4"))
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        load_model(ModelSpec(model=str(tmp_path)))


def test_preset_whose_source_needs_setup_says_how(tmp_path):
    with pytest.raises(ModelNotFoundError, match="convert"):
        load_model(ModelSpec(model="llava-med"))


def test_tokenizer_without_single_token_answers_is_refused():
    trainer = trainers.BpeTrainer(vocab_size=60, special_tokens=["<unk>"])
    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.train_from_iterator(["the heart is enlarged", "a pleural effusion"] * 10, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>")
    with pytest.raises(UnsupportedModelError, match="--scoring generate"):
        find_answer_tokens(tokenizer)


def test_cuda_refused_where_there_is_none():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(OptionError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_generate_and_parse_mode_runs_end_to_end(tiny_model, study_png, capsys):
    code = main(["check", "--image", study_png, "--question", "Is there a pneumothorax?",
                 "--model", tiny_model("llava"), "--scoring", "generate", "--json"])
    verdict = json.loads(capsys.readouterr().out)
    assert code == 0
    assert verdict["scoring"] == "generate" and verdict["timing_ms"]["path"] == "generate"
    for prompt in verdict["prompts"]:
        assert prompt["margin"] is None and isinstance(prompt["generated"], str)
        assert prompt["answer"] in ("yes", "no", "unclear")
    assert verdict["quadrant"] in ("Ideal", "Fragile", "Dangerous", "Worst")


def test_a_digest_cache_cut_off_mid_write_leaves_the_old_file_and_no_stray_one(tmp_path, monkeypatch):
    """A full disk or Ctrl-C while the cache is written: the cache is what it was, and the half-written file
    is gone (an evaluation's run folder holds one of these caches)."""
    import quadrant.atomic as module
    from quadrant.fingerprint import DigestCache

    path = tmp_path / "digests.json"
    path.write_text('{"kept": [1, 2, "abc"]}')
    cache = DigestCache.load(path)
    cache.digest(path)  # a new entry: the cache has something to save

    def cut_off(error):
        def sync(descriptor):  # the new text written, not yet on disk
            raise error
        return sync

    for error in (OSError(28, "No space left on device"), KeyboardInterrupt()):
        monkeypatch.setattr(module.os, "fsync", cut_off(error))
        if isinstance(error, OSError):
            cache.save()
        else:
            with pytest.raises(KeyboardInterrupt):
                cache.save()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["digests.json"]
        assert json.loads(path.read_text()) == {"kept": [1, 2, "abc"]}
    monkeypatch.undo()
    cache.save()
    assert set(json.loads(path.read_text())) == {"kept", str(path.resolve())}


def test_fingerprint_cache_notices_a_changed_file(tiny_model, tmp_path, monkeypatch):
    """Digests are cached by path, size and mtime: an edit in place must still change the fingerprint."""
    import os

    monkeypatch.setenv("QUADRANT_CACHE", str(tmp_path / "cache"))
    model = shutil.copytree(tiny_model("llava"), tmp_path / "model")
    first = fingerprint(model)
    assert (tmp_path / "cache" / "fingerprints.json").exists()
    assert fingerprint(model) == first  # served from the cache
    weights = next(model.glob("*.safetensors"))
    stat = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert fingerprint(model) != first
    (tmp_path / "cache" / "fingerprints.json").write_text("not json")
    assert fingerprint(model) != first  # a corrupt cache is ignored, not trusted
