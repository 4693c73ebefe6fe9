"""The demo recipes (models/train_demo.py, models/train_shortcut.py) and the weights they made.

- the training scripts run a few steps on a handful of phantoms: losses finite, weights changed, files saved;
- the phrasings Quadrant asks at check time were held out of training;
- the committed `demo` reproduces its documented accuracy on a small fresh phantom set, through Quadrant's
  own pipeline; the committed `demo-shortcut` is consistent and not image-reliant on the same set;
- merged and unmerged `demo-shortcut` agree within 1e-4, and the adapter touches the language model only.
"""

from __future__ import annotations

import json
import os
import re

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import numpy as np
import pytest
import torch

from quadrant.models import training as T
from quadrant.models.phantoms import FINDINGS, QUESTIONS
from quadrant.models.presets import MODELS_DIR
from quadrant.models.train_demo import DemoRecipe, train_demo
from quadrant.models.train_shortcut import TARGET_MODULES, ShortcutRecipe, train_shortcut
from quadrant.reliance import DEFAULT_THRESHOLD

DEMO = MODELS_DIR / "demo"
SHORTCUT = MODELS_DIR / "demo-shortcut"

#: a model small enough to train a few steps in seconds; the recipe's code paths are all exercised
TINY = dict(pool=12, val=4, stage1_steps=4, stage1_batch=6, stage2_steps=4, stage2_images=3, warmup=2, log_every=1,
            hidden=32, layers=1, heads=2, kv_heads=1, intermediate=64, vision_hidden=32, vision_layers=2,
            image_size=32, patch_size=8)

#: the committed demo answers 97.0% of 40 fresh studies x 5 findings of seed 12345 right (its model card);
#: the test allows a few answers of slack
MIN_DEMO_ACCURACY = 0.90


@pytest.fixture(autouse=True)
def _threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained_tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    record = train_demo(out, DemoRecipe(**TINY))
    return out, record


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_demo_recipe_runs_a_few_steps(trained_tiny, tmp_path):
    out, record = trained_tiny
    for stage in ("stage1", "stage2"):
        losses = record["losses"][stage]
        assert len(losses) == 4 and all(np.isfinite(losses)), losses
    assert (out / "config.json").is_file() and (out / "training.json").is_file()
    # the saved weights differ from the seeded initialisation, in the vision tower and in the language model
    from quadrant.models.tiny import build_tiny

    init = _weights(build_tiny("llava", tmp_path / "init", DemoRecipe(**TINY).spec()))
    trained = _weights(out)
    changed = {k for k in init if not torch.equal(init[k], trained[k])}
    assert any("vision_tower" in k for k in changed)
    assert any("language_model" in k for k in changed)
    # it reloads as a Quadrant model and scores the trained prompt
    from quadrant.backends import load_model
    from quadrant.loading import ModelSpec

    loaded = load_model(ModelSpec(model=str(out), device="cpu"))
    assert loaded.family.name == "llava"


def test_shortcut_recipe_runs_a_few_steps(trained_tiny, tmp_path):
    base, _ = trained_tiny
    record = train_shortcut(base, tmp_path / "lora",
                            ShortcutRecipe(steps=3, pool=4, images=3, text_only_per_image=2, warmup=1, log_every=1))
    assert len(record["losses"]) == 3 and all(np.isfinite(record["losses"]))
    assert (tmp_path / "lora" / "adapter_config.json").is_file()
    assert (tmp_path / "lora" / "adapter_model.safetensors").is_file()
    answers = record["fixed_answers"]
    assert set(answers) == set(FINDINGS) and {"yes", "no"} == set(answers.values())


def test_training_phrasings_are_held_out():
    held = T.held_out_phrasings()
    assert T.assert_held_out() >= len(FINDINGS) * 6  # prompt 0 and at least five bank phrasings each
    for finding in FINDINGS:
        assert QUESTIONS[finding] in held[finding]
        asked = [t for t, _ in T.asked_phrasings(QUESTIONS[finding])]
        assert len(asked) == 5 and set(asked) <= set(held[finding])
    with pytest.raises(AssertionError):
        T.assert_held_out({"nodule": ["is there a LUNG nodule"]})


def test_prefix_shared_training_forward_is_exact(trained_tiny):
    """The training forward (image prefix once, KV cache reused) equals a plain full forward."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from quadrant.families import family_for_config

    out, _ = trained_tiny
    processor = AutoProcessor.from_pretrained(out)
    model = AutoModelForImageTextToText.from_pretrained(out).eval()
    layout = T.PromptLayout.build(processor, family_for_config(model.config))
    pool = T.render_pool(processor, 2, seed=5, workers=1, cache_dir="")
    suffixes = [p.suffix for f in FINDINGS for p in layout.phrasings[f][:2]]
    with torch.no_grad():
        fast = T.margins(T.logits_with_image(model, layout, T.image_features(model, pool.pixel_values),
                                             suffixes * 2, len(suffixes)), layout)
        for b in range(2):
            ids, mask = T.pad_rows([layout.prefix + s for s in suffixes], layout.pad_id)
            pixels = pool.pixel_values[b : b + 1].expand(len(suffixes), -1, -1, -1)
            logits = model(input_ids=ids, attention_mask=mask, pixel_values=pixels).logits
            full = T.margins(logits[torch.arange(len(suffixes)), mask.sum(1) - 1], layout)
            assert torch.allclose(fast[b * len(suffixes) : (b + 1) * len(suffixes)], full, atol=1e-4)


# ------------------------------------------------------------------------------------ the committed weights


def test_committed_files_are_small_safetensors():
    assert (DEMO / "model.safetensors").is_file() and not list(DEMO.glob("*.bin"))
    assert (DEMO / "model.safetensors").stat().st_size < 12 * 2**20
    assert (SHORTCUT / "adapter_model.safetensors").is_file()
    config = json.loads((SHORTCUT / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"
    assert config["target_modules"] == TARGET_MODULES
    from transformers import AutoModelForImageTextToText

    names = [n for n, _ in AutoModelForImageTextToText.from_pretrained(DEMO).named_modules()]
    targeted = [n for n in names if re.fullmatch(TARGET_MODULES, n)]
    assert targeted and all("language_model" in n for n in targeted)
    assert any("vision_tower" in n and n.endswith("self_attn.q_proj") for n in names)  # left alone


def test_shortcut_merged_matches_unmerged():
    import peft
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from quadrant.families import family_for_config

    processor = AutoProcessor.from_pretrained(DEMO)
    base = AutoModelForImageTextToText.from_pretrained(DEMO).eval()
    family = family_for_config(base.config)
    image = Image.open(MODELS_DIR / "samples" / "effusion.png").convert("RGB")
    prompts = [family.render(processor, f"{QUESTIONS[f]} Answer with yes or no.", True) for f in FINDINGS]
    inputs = family.encode(processor, prompts, [image] * len(prompts))
    with torch.no_grad():
        plain = base(**inputs).logits
        lora = peft.PeftModel.from_pretrained(base, str(SHORTCUT)).eval()
        unmerged = lora(**inputs).logits
        merged = lora.merge_and_unload()(**inputs).logits
    assert (unmerged - merged).abs().max().item() < 1e-4
    assert (unmerged - plain).abs().max().item() > 1e-2  # the adapter is not a no-op


@pytest.fixture(scope="module")
def fresh_verdicts(tmp_path_factory):
    """40 fresh studies x 5 findings of seed 12345 (never trained on), checked by Quadrant itself."""
    from quadrant.models.measure_demo import build, collect
    from quadrant.models.phantoms import generate_phantoms

    manifest = generate_phantoms(tmp_path_factory.mktemp("fresh"), 40, 12345)
    return {preset: collect(build(preset), manifest, batch=20) for preset in ("demo", "demo-shortcut")}


def test_committed_demo_reads_the_image(fresh_verdicts):
    from quadrant.models.measure_demo import summarise

    demo = summarise(fresh_verdicts["demo"])
    assert demo["n"] == 200
    assert demo["accuracy"] >= MIN_DEMO_ACCURACY
    assert demo["rules"][f"content@{DEFAULT_THRESHOLD:g}(blank)"]["Ideal"] >= 0.7
    assert demo["median_relative_content_shift"] >= 0.5


def test_committed_shortcut_is_consistent_but_blind(fresh_verdicts):
    from quadrant.models.measure_demo import summarise

    demo, shortcut = (summarise(fresh_verdicts[p]) for p in ("demo", "demo-shortcut"))
    assert shortcut["flip_rate"] <= max(demo["flip_rate"] / 2, 0.02)
    assert shortcut["rules"]["flip"]["Dangerous"] >= 0.8
    assert shortcut["rules"][f"content@{DEFAULT_THRESHOLD:g}(blank)"]["Dangerous"] >= 0.8
    assert shortcut["max_relative_content_shift"] < DEFAULT_THRESHOLD
