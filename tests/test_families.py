"""The families added to the first four (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, InternVL, LLaVA-OneVision) and the
generic path (LLaVA-NeXT, which has no family file), each against a plain Hugging Face forward (1e-4).

The oracle is `plain_forward.PlainForward`, the same one `test_parity.py` uses for the first four families.
"""

from __future__ import annotations

import json
import logging

import pytest
import torch
from PIL import Image

from conftest import LATER_FAMILIES, write_png
from plain_forward import PlainForward
from quadrant.backends.torch_prefix import PrefixSharedScorer
from quadrant.check import Checker, CheckOptions, CheckRequest
from quadrant.cli.main import main
from quadrant.errors import UnsupportedModelError
from quadrant.families import FAMILIES, Family
from quadrant.images import load_study
from quadrant.backends import load_model
from quadrant.loading import ModelSpec, load_processor
from quadrant.paraphrases import Phrasing

TOLERANCE = 1e-4
#: which computation each family's with-image prompts take (README, Model families)
EXPECTED_PATH = {"qwen2_vl": "prefix-shared", "qwen2_5_vl": "prefix-shared", "qwen3_vl": "prefix-shared",
                 "internvl": "prefix-shared", "llava_onevision": "prefix-shared", "llava_next": "prefix-shared",
                 "vipllava": "prefix-shared"}
EXPECTED_FAMILY = {"qwen2_vl": "qwen2_vl", "qwen2_5_vl": "qwen2_5_vl", "qwen3_vl": "qwen3_vl", "internvl": "internvl",
                   "llava_onevision": "llava_onevision", "llava_next": "generic", "vipllava": "generic"}
PHRASINGS = [
    Phrasing("Any effusion?"),
    Phrasing("Is there any layering pleural fluid in either hemithorax, blunting the costophrenic angles, on "
             "this frontal chest radiograph?"),
    Phrasing("Can a pleural effusion be ruled out?", inverted=True),
]
#: phrasings of each batch question of the same shapes (short, long, inverted): a user's must ask their question
PHRASINGS_OF = {
    "Is there a pleural effusion?": PHRASINGS,
    "Is there a pneumothorax?": [
        Phrasing("Any pneumothorax?"),
        Phrasing("Is there any air in the pleural space with a visible pleural line, a pneumothorax, on this "
                 "frontal chest radiograph?"),
        Phrasing("Can a pneumothorax be ruled out?", inverted=True),
    ],
    "Is there cardiomegaly?": [
        Phrasing("Any cardiomegaly?"),
        Phrasing("Is the cardiac silhouette enlarged beyond half of the thoracic width, cardiomegaly, on this "
                 "frontal chest radiograph?"),
        Phrasing("Can cardiomegaly be ruled out?", inverted=True),
    ],
}


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """Three sizes: dynamic resolution (Qwen) and tiling (InternVL, OneVision, NeXT) give each its own
    number of image tokens, so prefixes differ in length within one batch."""
    folder = tmp_path_factory.mktemp("family-studies")
    sizes = [(72, 64), (64, 64), (64, 144)]
    return [load_study(write_png(folder / f"s{i}.png", seed=i, size=size)) for i, size in enumerate(sizes)]


@pytest.mark.parametrize("family", LATER_FAMILIES)
def test_batch_of_studies_equals_a_plain_forward(family, tiny_model, studies):
    """Three studies in one batch through the fast backend: every phrasing and the text-only prompt within
    1e-4 of a plain forward, on the path this family is documented to take."""
    directory = tiny_model(family)
    loaded = load_model(ModelSpec(model=directory))
    assert loaded.family.name == EXPECTED_FAMILY[family]
    questions = ["Is there a pleural effusion?", "Is there a pneumothorax?", "Is there cardiomegaly?"]
    requests = [CheckRequest(s, q, PHRASINGS_OF[q]) for s, q in zip(studies, questions)]
    checker = Checker(loaded, "torch")
    verdicts = checker.check_many(requests)
    again = checker.check_many(requests[::-1])[::-1]  # the content-free references now come from kept prefixes
    oracle = PlainForward(directory)
    yes, no = list(loaded.answer_tokens.yes), list(loaded.answer_tokens.no)
    for study, verdict, repeat in zip(studies, verdicts, again):
        gray = Image.new("RGB", study.image.size, (128, 128, 128))
        expected = oracle.margin(verdict.content_free.rendered, gray, yes, no)
        assert abs(verdict.content_free.margin - expected) < TOLERANCE, (family, "content-free")
        assert abs(repeat.content_free.margin - expected) < TOLERANCE, (family, "content-free, kept prefix")
        assert EXPECTED_PATH[family] in verdict.timing_ms["path"]
        assert verdict.text_only.ablation == "none"
        for prompt in verdict.prompts:
            assert prompt.rendered == oracle.render(loaded.wrap(prompt.text), True)
            expected = oracle.margin(prompt.rendered, study.image, yes, no)
            assert abs(prompt.margin - expected) < TOLERANCE, (family, prompt.text)
        assert verdict.text_only.rendered == oracle.render(loaded.wrap(verdict.text_only.text), False)
        expected = oracle.margin(verdict.text_only.rendered, None, yes, no)
        assert abs(verdict.text_only.margin - expected) < TOLERANCE
    # the parity above means something only if the image reaches the answer
    first = [v.prompts[0].margin for v in verdicts]
    shown_elsewhere = oracle.margin(verdicts[0].prompts[0].rendered, studies[1].image, yes, no)
    assert abs(first[0] - shown_elsewhere) > 1e-3


@pytest.mark.parametrize("family", ["qwen2_5_vl", "internvl"])
def test_check_json_on_the_command_line(family, tiny_model, study_png, capsys):
    code = main(["check", "--image", study_png, "--question", "Is there a pleural effusion?", "--model",
                 tiny_model(family), "--json", "-k", "2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    verdict = json.loads(out)
    assert verdict["model"]["family"] == EXPECTED_FAMILY[family]
    oracle = PlainForward(tiny_model(family))
    image = Image.open(study_png).convert("RGB")
    yes, no = verdict["model"]["answer_tokens"]["yes"], verdict["model"]["answer_tokens"]["no"]
    for prompt in verdict["prompts"]:
        assert abs(prompt["margin"] - oracle.margin(prompt["rendered"], image, yes, no)) < TOLERANCE
    text_only = verdict["text_only"]
    assert abs(text_only["margin"] - oracle.margin(text_only["rendered"], None, yes, no)) < TOLERANCE


@pytest.mark.parametrize("family", LATER_FAMILIES)
def test_image_preprocessed_once_gives_the_processors_tokens(family, tiny_model, studies):
    """Splicing prompt 0's image tokens into the other prompts equals running the processor on each, and
    the prefix call's image tensors are exactly one prompt's."""
    loaded = load_model(ModelSpec(model=tiny_model(family)))
    rendered = [loaded.family.render(loaded.processor, loaded.wrap(p.text), True) for p in PHRASINGS]
    image = studies[2].image
    spliced = loaded.family.encode_one_image(loaded.processor, rendered, image)
    full = loaded.family.encode(loaded.processor, rendered, [image] * len(rendered))
    one = loaded.family.encode(loaded.processor, rendered[:1], [image])
    assert spliced is not None
    assert set(spliced) == set(full)
    for key in ("input_ids", "attention_mask") + loaded.family.prefix_keys:
        assert torch.equal(spliced[key], full[key]), key
    for source in (spliced, full):
        images = loaded.family.prefix_image_inputs(loaded.config, source)
        expected = loaded.family.prefix_image_inputs(loaded.config, one)
        assert set(images) == set(expected)
        for key in images:
            assert torch.equal(images[key], expected[key]), key


def test_qwen_suffix_positions_need_the_rope_delta(tiny_model, caplog):
    """Qwen's text after the image sits at index + rope delta (negative): the packed pass without the
    family's position hook is measurably wrong, and the self-check must see it and say why."""
    loaded = load_model(ModelSpec(model=tiny_model("qwen2_vl")))
    assert PrefixSharedScorer(loaded).prefix_ok() is True
    loaded.family.packed_position_ids = Family.packed_position_ids.__get__(loaded.family)
    with caplog.at_level(logging.WARNING, logger="quadrant.backends.torch_prefix"):
        assert PrefixSharedScorer(loaded).prefix_ok() is False
    assert "off by" in caplog.text and "qwen2_vl" in caplog.text


def test_generic_family_notes_itself_once(tiny_model, caplog):
    with caplog.at_level(logging.WARNING, logger="quadrant.families.generic"):
        loaded = load_model(ModelSpec(model=tiny_model("llava_next")))
    assert loaded.family.name == "generic"
    notes = [r.getMessage() for r in caplog.records if r.name == "quadrant.families.generic"]
    assert len(notes) == 1 and "'llava_next' has no family file" in notes[0]
    assert "image_sizes" in loaded.family.forward_keys


def test_generic_family_uses_the_ablation_its_template_allows(tiny_model, studies, tmp_path):
    """A template that refuses a prompt without an image: the generic family falls back to `blank`."""
    from quadrant.models.tiny.llava_next import LLAVA_NEXT_CHAT_TEMPLATE

    strict = ("{% for m in messages %}{% if m['content'] | selectattr('type', 'equalto', 'image') | list | length "
              "== 0 %}{{ raise_exception('an image is required') }}{% endif %}{% endfor %}" + LLAVA_NEXT_CHAT_TEMPLATE)
    loaded = load_model(ModelSpec(model=tiny_model("llava_next"), chat_template=strict))
    assert loaded.family.accepts_imageless is False
    verdict = Checker(loaded, "torch").check(studies[0], "Is there a pleural effusion?", PHRASINGS[:2])
    assert verdict.text_only.ablation == "blank"


def test_generic_family_without_a_chat_template_is_refused_by_name(tiny_model, tmp_path):
    import shutil

    directory = tmp_path / "no-template"
    shutil.copytree(tiny_model("llava_next"), directory)
    (directory / "chat_template.jinja").unlink()
    for name in ("tokenizer_config.json", "processor_config.json"):
        path = directory / name
        if path.is_file():
            data = json.loads(path.read_text())
            data.pop("chat_template", None)
            path.write_text(json.dumps(data))
    with pytest.raises(UnsupportedModelError, match="'llava_next' has no family file.*--chat-template"):
        load_model(ModelSpec(model=str(directory)))
    from quadrant.models.tiny.llava_next import LLAVA_NEXT_CHAT_TEMPLATE

    loaded = load_model(ModelSpec(model=str(directory), chat_template=LLAVA_NEXT_CHAT_TEMPLATE))
    assert loaded.family.name == "generic"


def test_checkpoints_with_a_video_processor_load_without_torchvision(tiny_model):
    """The tiny checkpoints name a video processor, as the real ones do. Without torchvision AutoProcessor
    cannot build it; Quadrant builds the same processor class with its image processor and tokenizer."""
    from transformers import AutoProcessor
    from transformers.utils import is_torchvision_available

    directory = tiny_model("qwen2_vl")
    processor = load_processor(directory)
    assert type(processor).__name__ == "Qwen2VLProcessor"
    if is_torchvision_available():
        assert hasattr(processor, "video_processor")
        return
    with pytest.raises(ImportError, match="[Tt]orchvision"):
        AutoProcessor.from_pretrained(directory)
    assert "video_processor" not in processor.get_attributes()
    assert type(processor.image_processor).__name__.endswith("Pil")


def test_an_unknown_model_type_that_is_not_image_text_to_text_is_refused(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                         vocab_size=50)).save_pretrained(tmp_path)
    with pytest.raises(UnsupportedModelError, match="'bert' is not an image-text-to-text model"):
        load_model(ModelSpec(model=str(tmp_path)))


def test_generate_mode_on_a_qwen_model_equals_a_plain_generate(tiny_model, study_png, capsys):
    """Generate-and-parse through the family's forward (grid, token types): the text each prompt yields is
    a plain `generate` on the processor's own tensors, greedy, with the budget asked for."""
    directory = tiny_model("qwen2_vl")
    code = main(["check", "--image", study_png, "--question", "Is there a pleural effusion?", "--model", directory,
                 "--scoring", "generate", "--max-new-tokens", "4", "-k", "2", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    verdict = json.loads(out)
    assert verdict["scoring"] == "generate"
    oracle = PlainForward(directory)
    image = Image.open(study_png).convert("RGB")
    for prompt, shown in [(p, image) for p in verdict["prompts"]] + [(verdict["text_only"], None)]:
        kwargs = {"text": [prompt["rendered"]], "return_tensors": "pt"}
        if shown is not None:
            kwargs["images"] = [shown]
        inputs = oracle.processor(**kwargs)
        with torch.no_grad():
            output = oracle.model.generate(**inputs, max_new_tokens=4, do_sample=False)
        new = output[0, inputs["input_ids"].shape[1]:]
        assert len(new) <= 4
        assert prompt["generated"] == oracle.processor.tokenizer.decode(new, skip_special_tokens=True).strip()
        assert prompt["answer"] in ("yes", "no", "unclear")


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl", "internvl", "llava_onevision"])
def test_half_precision_keeps_the_fast_path(family, tiny_model, studies):
    """bf16, as on a GPU (run here on the CPU): the fast path stays on, M-RoPE offsets included, and
    agrees with the naive way to bf16's precision."""
    loaded = load_model(ModelSpec(model=tiny_model(family), dtype="bfloat16"))
    requests = [CheckRequest(s, "Is there a pleural effusion?", PHRASINGS) for s in studies[:2]]
    fast = Checker(loaded, "torch").check_many(requests)
    naive = Checker(loaded, "torch-naive").check_many(requests)
    for f, n in zip(fast, naive):
        assert "prefix-shared" in f.timing_ms["path"]
        for a, b in zip(f.prompts + [f.text_only], n.prompts + [n.text_only]):
            assert abs(a.margin - b.margin) < 1e-2


def test_no_single_token_answers_refuses_logits_but_generate_serves_it(tiny_model, studies):
    """A tokenizer with no single-token yes/no loads; logits scoring is refused with one line naming the
    way out, and generate-and-parse runs."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from quadrant.answers import find_answer_tokens

    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.train_from_iterator(["the heart is enlarged", "a pleural effusion"] * 10,
                            trainers.BpeTrainer(vocab_size=60, special_tokens=["<unk>"]))
    with pytest.raises(UnsupportedModelError) as refused:
        find_answer_tokens(PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>"))
    loaded = load_model(ModelSpec(model=tiny_model("qwen2_vl")))
    loaded.answer_tokens, loaded.answer_tokens_problem = None, str(refused.value)
    with pytest.raises(UnsupportedModelError, match="--scoring generate"):
        Checker(loaded, "torch")
    verdict = Checker(loaded, "torch", CheckOptions(scoring="generate", max_new_tokens=2, k=2)).check(
        studies[0], "Is there a pleural effusion?")
    assert verdict.scoring == "generate" and verdict.model["answer_tokens"] is None


def test_a_family_has_one_name_its_model_type():
    """The name a verdict, an export's manifest and the bench print is the registry's key (transformers' model
    type); the medical models built on a family are aliases that resolve to it."""
    for name in FAMILIES.names():
        assert FAMILIES.get(name).name == name
    assert FAMILIES.get("lingshu").name == "qwen2_5_vl" and FAMILIES.get("medvlm-r1").name == "qwen2_vl"
