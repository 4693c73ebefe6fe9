"""The tiny offline models (models/tiny/) behave like the real families at the interfaces Quadrant uses.

Every family is built with random weights and a freshly trained tokenizer, saved, and reloaded through
the Auto classes with the hub offline; then the chat template, the processor, the forward pass, the
image's effect on the logits, the yes/no tokens and the determinism by seed are checked.
"""

from __future__ import annotations

import hashlib
import os

# Before transformers / huggingface_hub are imported: nothing here may reach the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import numpy as np
import pytest
import torch
from PIL import Image

from quadrant.models.tiny import (
    BUILDERS, FAMILIES, GENERIC_FAMILIES, NEW_FAMILIES, TinySpec, build_tiny, llava_15_shaped, train_tokenizer,
)

TEMPLATED = ("llava", "gemma3", "idefics3")  # families with a chat template that allows text-only
QUESTION = "Is there pleural effusion? Answer with yes or no."
YES_NO = ("yes", " yes", "no", " no", "Yes", " Yes", "No", " No")

# What the generation prompt ends with, and how the first answer token attaches (space or not).
PROMPT_END = {"llava": " ASSISTANT:", "gemma3": "<start_of_turn>model\n", "idefics3": "\nAssistant:"}
MODEL_CLASS = {
    "llava": "LlavaForConditionalGeneration",
    "gemma3": "Gemma3ForConditionalGeneration",
    "idefics3": "Idefics3ForConditionalGeneration",
    "paligemma": "PaliGemmaForConditionalGeneration",
}
ANSWER = {"llava": " Yes", "gemma3": "Yes", "idefics3": " Yes"}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One saved model per family, built once for the module."""
    root = tmp_path_factory.mktemp("tiny")
    return {family: build_tiny(family, root / family) for family in FAMILIES}


@pytest.fixture(scope="module")
def loaded(built):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out = {}
    for family, path in built.items():
        processor = AutoProcessor.from_pretrained(path)
        model = AutoModelForImageTextToText.from_pretrained(path).eval()
        out[family] = (processor, model)
    return out


def _image(seed: int, size=(48, 40)) -> Image.Image:
    """Random grayscale saved as RGB, as conftest.write_png's studies: the image test below shows that two of
    them move every tiny family's logits."""
    rng = np.random.default_rng(seed)
    gray = rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8)
    return Image.fromarray(np.stack([gray] * 3, axis=-1), "RGB")


def _messages(with_image: bool) -> list[dict]:
    content = [{"type": "image"}] if with_image else []
    content.append({"type": "text", "text": QUESTION})
    return [{"role": "user", "content": content}]


def _encode(processor, family: str, image: Image.Image | None, *, with_image: bool = True):
    """Quadrant's rule: render through the chat template, add special tokens unless the rendered text
    already starts with the BOS token. PaliGemma has no template: its processor builds the prompt."""
    if family == "paligemma":
        enc = processor(text=QUESTION, images=image, return_tensors="pt")
        enc.pop("labels")
        return enc
    rendered = processor.apply_chat_template(_messages(with_image), add_generation_prompt=True)
    bos = processor.tokenizer.bos_token
    kwargs = dict(text=rendered, return_tensors="pt", add_special_tokens=not rendered.startswith(bos))
    if with_image:
        kwargs["images"] = image
    return processor(**kwargs)


def _forward(model, enc) -> torch.Tensor:
    with torch.no_grad():
        return model(**enc).logits


def _sha(path) -> str:
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_reloads_through_auto_classes(family, built, loaded):
    processor, model = loaded[family]
    path = built[family]
    assert (path / "model.safetensors").is_file()
    assert type(model).__name__ == MODEL_CLASS[family]
    tok = processor.tokenizer
    text_config = model.config.get_text_config()
    assert text_config.vocab_size == len(tok) == model.get_input_embeddings().num_embeddings
    assert text_config.pad_token_id == tok.pad_token_id is not None
    assert tok.padding_side == "right"
    assert "token_type_ids" not in tok.model_input_names
    assert all(p.dtype == torch.float32 for p in model.parameters())
    # Gemma3's processor names <start_of_image> as its placeholder; the expanded token is the tokenizer's.
    image_token_id = tok.image_token_id if family == "gemma3" else processor.image_token_id
    assert model.config.image_token_id == image_token_id != tok.unk_token_id


@pytest.mark.parametrize("family", FAMILIES)
def test_yes_no_variants_are_single_tokens(family, loaded):
    tok = loaded[family][0].tokenizer
    ids = {}
    for word in YES_NO:
        encoded = tok.encode(word, add_special_tokens=False)
        assert len(encoded) == 1, f"{family}: {word!r} -> {tok.convert_ids_to_tokens(encoded)}"
        assert tok.decode(encoded) == word
        ids[word] = encoded[0]
    assert len(set(ids.values())) == len(YES_NO)


def test_train_tokenizer_contract():
    tok = train_tokenizer(extra_words=("bronchiectasis",))
    assert 600 <= len(tok) <= 1200
    assert tok.padding_side == "right"
    assert tok.model_input_names == ["input_ids", "attention_mask"]
    assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token) == ("<s>", "</s>", "<pad>", "<unk>")
    assert tok("Is there edema?")["input_ids"][0] == tok.bos_token_id
    for word in YES_NO:
        assert len(tok.encode(word, add_special_tokens=False)) == 1, word
    assert len(tok.encode(" bronchiectasis", add_special_tokens=False)) <= 2
    assert tok.encode("<image>", add_special_tokens=False) == [tok.convert_tokens_to_ids("<image>")]


@pytest.mark.parametrize("family", FAMILIES)
def test_special_tokens_are_never_split(family, loaded):
    processor, model = loaded[family]
    tok = processor.tokenizer
    names = {
        "llava": ["<image>", "<s>", "</s>", "<pad>"],
        "gemma3": ["<start_of_image>", "<end_of_image>", "<image_soft_token>", "<start_of_turn>",
                   "<end_of_turn>", "<bos>", "<eos>", "<pad>"],
        "idefics3": ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>",
                     "<row_1_col_1>", "<row_6_col_6>", "<|im_start|>"],
        "paligemma": ["<image>", "<bos>", "<eos>", "<pad>"],
    }[family]
    special_ids = set(tok.all_special_ids) | {
        i for i, t in tok.added_tokens_decoder.items() if t.special
    }
    for name in names:
        ids = tok.encode(f"a{name}b", add_special_tokens=False)
        token_id = tok.convert_tokens_to_ids(name)
        assert token_id in ids and token_id != tok.unk_token_id, name
        assert token_id in special_ids, name


@pytest.mark.parametrize("family", TEMPLATED)
def test_chat_template_with_and_without_image(family, loaded):
    processor = loaded[family][0]
    with_image = processor.apply_chat_template(_messages(True), add_generation_prompt=True)
    text_only = processor.apply_chat_template(_messages(False), add_generation_prompt=True)
    expected = {
        "llava": ("USER: <image>\n" + QUESTION + " ASSISTANT:", "USER: " + QUESTION + " ASSISTANT:"),
        "gemma3": (
            "<bos><start_of_turn>user\n<start_of_image>" + QUESTION + "<end_of_turn>\n<start_of_turn>model\n",
            "<bos><start_of_turn>user\n" + QUESTION + "<end_of_turn>\n<start_of_turn>model\n",
        ),
        "idefics3": (
            "<|im_start|>User:<image>" + QUESTION + "<end_of_utterance>\nAssistant:",
            "<|im_start|>User: " + QUESTION + "<end_of_utterance>\nAssistant:",
        ),
    }[family]
    assert (with_image, text_only) == expected
    assert with_image.endswith(PROMPT_END[family]) and text_only.endswith(PROMPT_END[family])
    # The tokenizer carries the same template (some callers only load the tokenizer).
    rendered_by_tokenizer = processor.tokenizer.apply_chat_template(
        _messages(False), add_generation_prompt=True, tokenize=False
    )
    assert rendered_by_tokenizer == text_only


@pytest.mark.parametrize("family", TEMPLATED)
def test_answer_token_attaches_cleanly_after_generation_prompt(family, loaded):
    """The first answer token (" Yes" for LLaVA/Idefics3, "Yes" for Gemma3) does not merge with the
    prompt's last characters, so the next-token logits really score that token."""
    tok = loaded[family][0].tokenizer
    rendered = loaded[family][0].apply_chat_template(_messages(False), add_generation_prompt=True)
    prompt_ids = tok.encode(rendered, add_special_tokens=False)
    answer_id = tok.encode(ANSWER[family], add_special_tokens=False)
    assert len(answer_id) == 1
    assert tok.encode(rendered + ANSWER[family], add_special_tokens=False) == prompt_ids + answer_id


def test_paligemma_has_no_chat_template_and_builds_its_own_prompt(loaded):
    processor, model = loaded["paligemma"]
    assert processor.chat_template is None
    with pytest.raises(ValueError):
        processor.apply_chat_template(_messages(True), add_generation_prompt=True)
    with pytest.raises(ValueError):
        processor(text=QUESTION, return_tensors="pt")  # refuses text without an image
    enc = processor(text=QUESTION, images=_image(0), return_tensors="pt")
    assert {"token_type_ids", "labels", "pixel_values"} <= set(enc)
    tokens = processor.tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    n = processor.image_seq_length
    assert tokens[:n] == ["<image>"] * n and tokens[n] == "<bos>" and tokens[-1] == "Ċ"
    assert enc["token_type_ids"][0].sum() == 0  # no suffix: the whole prompt is prefix
    # The processor added the <loc>/<seg> tokens and the model's vocabulary covers them.
    assert "<loc1023>" in processor.tokenizer.get_vocab() and "<seg127>" in processor.tokenizer.get_vocab()
    assert model.config.get_text_config().vocab_size == len(processor.tokenizer)


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_gives_finite_logits(family, loaded):
    processor, model = loaded[family]
    enc = _encode(processor, family, _image(0))
    image_id = model.config.image_token_id
    assert (enc["input_ids"] == image_id).sum() > 0
    assert (enc["input_ids"][0] == processor.tokenizer.bos_token_id).sum() == 1  # BOS exactly once
    logits = _forward(model, enc)
    assert logits.shape == (1, enc["input_ids"].shape[1], len(processor.tokenizer))
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_image_moves_the_logits(family, loaded):
    processor, model = loaded[family]
    a = _forward(model, _encode(processor, family, _image(1)))[0, -1]
    b = _forward(model, _encode(processor, family, _image(2)))[0, -1]
    assert (a - b).abs().max().item() > 1e-3


@pytest.mark.parametrize("family", TEMPLATED)
def test_text_only_prompt_through_the_tokenizer_path(family, loaded):
    processor, model = loaded[family]
    enc = _encode(processor, family, None, with_image=False)
    assert "pixel_values" not in enc
    ids = enc["input_ids"][0]
    assert ids[0] == processor.tokenizer.bos_token_id and (ids == processor.tokenizer.bos_token_id).sum() == 1
    assert (ids == model.config.image_token_id).sum() == 0
    logits = _forward(model, enc)
    assert logits.shape == (1, ids.shape[0], len(processor.tokenizer))
    assert torch.isfinite(logits).all()


def test_gemma3_image_wiring(loaded):
    processor, model = loaded["gemma3"]
    assert model.config.mm_tokens_per_image == processor.image_seq_length
    # Zeros in a fresh Gemma3: re-initialised so the image matters (and saved that way).
    assert model.model.multi_modal_projector.mm_input_projection_weight.abs().sum() > 0
    enc = _encode(processor, "gemma3", _image(0))
    tok = processor.tokenizer
    assert (enc["input_ids"] == tok.image_token_id).sum() == processor.image_seq_length
    assert torch.equal(enc["token_type_ids"].bool(), enc["input_ids"] == tok.image_token_id)
    assert model.config.boi_token_index == tok.boi_token_id and model.config.eoi_token_index == tok.eoi_token_id


def test_idefics3_image_splitting(loaded):
    processor, model = loaded["idefics3"]
    config = model.config
    expected_len = (config.vision_config.image_size // config.vision_config.patch_size) ** 2 // config.scale_factor**2
    assert processor.image_seq_len == expected_len
    square = _encode(processor, "idefics3", _image(0, size=(64, 64)))
    assert "pixel_attention_mask" in square
    # 2 x 2 crops plus the global view, each image_seq_len <image> tokens.
    assert (square["input_ids"] == config.image_token_id).sum() == 5 * expected_len
    wide = _encode(processor, "idefics3", _image(0, size=(64, 20)))
    assert (wide["input_ids"] == config.image_token_id).sum() != 5 * expected_len  # aspect ratio matters


@pytest.mark.parametrize("family", FAMILIES)
def test_weights_are_deterministic_by_seed(family, tmp_path, built):
    again = build_tiny(family, tmp_path / "again")
    assert _sha(again) == _sha(built[family])
    other = build_tiny(family, tmp_path / "other", seed=1)
    assert _sha(other) != _sha(built[family])


def test_overrides_and_errors(tmp_path):
    from transformers import AutoConfig

    path = build_tiny("llava", tmp_path / "wide", TinySpec(layers=1), hidden=32, intermediate=64)
    config = AutoConfig.from_pretrained(path)
    assert config.text_config.hidden_size == 32 and config.text_config.num_hidden_layers == 1
    with pytest.raises(TypeError):
        build_tiny("llava", tmp_path / "bad", widht=3)
    with pytest.raises(ValueError):
        build_tiny("no_such_family", tmp_path / "bad")
    assert FAMILIES + NEW_FAMILIES + GENERIC_FAMILIES == tuple(BUILDERS)  # the groups cover the registry, in order


def test_llava_15_shaped_has_576_image_tokens(tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = llava_15_shaped(tmp_path / "l15", hidden=64, layers=1)
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path)
    assert model.config.vision_config.image_size == 336 and model.config.vision_config.patch_size == 14
    enc = _encode(processor, "llava", _image(0, size=(500, 400)))
    assert (enc["input_ids"] == model.config.image_token_id).sum().item() == 576
    logits = _forward(model, enc)
    assert logits.shape[1] == enc["input_ids"].shape[1] and torch.isfinite(logits).all()
