"""The prefix-shared fast path against the naive way, for every family: same margins (1e-4, fp32), same
verdicts, with paraphrases of very different lengths, inverted ones, and several studies in one batch."""

from __future__ import annotations

import copy

import pytest
import torch

from conftest import ALL_FAMILIES, LATER_FAMILIES, write_png
from quadrant.backends.last_layer import READS_ONLY
from quadrant.backends.torch_prefix import PrefixSharedScorer
from quadrant.check import Checker, CheckOptions, CheckRequest
from quadrant.images import load_study
from quadrant.backends import load_model
from quadrant.loading import ModelSpec
from quadrant.paraphrases import Phrasing

TOLERANCE = 1e-4
PHRASINGS = [
    Phrasing("Any effusion?"),
    Phrasing("Is there any layering pleural fluid in either hemithorax, blunting the costophrenic angles, on "
             "this frontal chest radiograph taken in the upright position?"),
    Phrasing("Can a pleural effusion be ruled out?", inverted=True),
    Phrasing("Is fluid present?"),
]
#: the same shapes (short, long, inverted) for another question: a user's phrasings must ask their question
HEART_PHRASINGS = [
    Phrasing("Any cardiomegaly?"),
    Phrasing("Is the cardiac silhouette enlarged beyond half of the thoracic width on this frontal chest "
             "radiograph taken in the upright position?"),
    Phrasing("Can cardiomegaly be ruled out?", inverted=True),
    Phrasing("Is the heart enlarged?"),
]
EXPECTED_PATH = {"llava": "prefix-shared", "gemma3": "prefix-shared", "idefics3": "prefix-shared",
                 "paligemma": "batched"}


@pytest.fixture
def studies(tmp_path):
    sizes = [(72, 64), (64, 64), (64, 144)]  # Idefics3 splits images by aspect ratio: prefixes differ
    return [load_study(write_png(tmp_path / f"s{i}.png", seed=i, size=size)) for i, size in enumerate(sizes)]


def _requests(studies):
    questions = ["Is there a pleural effusion?", "Is there a pneumothorax?", "Is there cardiomegaly?"]
    phrasings = [PHRASINGS, None, HEART_PHRASINGS]
    return [CheckRequest(study, question, given, label="yes")
            for study, question, given in zip(studies, questions, phrasings, strict=True)]


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_fast_path_equals_naive_for_a_batch_of_studies(family, tiny_model, studies, monkeypatch):
    """The batch's new studies are read through the processor on worker threads (each with its own copy of the
    processor), whatever this machine's cores, and spliced with their prompts on the calling thread."""
    import quadrant.backends.fast_path

    monkeypatch.setattr(quadrant.backends.fast_path, "PREPROCESS_WORKERS", 2)
    loaded = load_model(ModelSpec(model=tiny_model(family)))
    options = CheckOptions(ablation="blank" if family == "paligemma" else None)
    fast = Checker(loaded, "torch", options).check_many(_requests(studies))
    naive = Checker(loaded, "torch-naive", options).check_many(_requests(studies))
    assert len(fast) == len(naive) == 3
    for f, n in zip(fast, naive):
        assert f.quadrant == n.quadrant and f.consistent == n.consistent and f.image_reliant == n.image_reliant
        assert [p.answer for p in f.prompts] == [p.answer for p in n.prompts]
        for a, b in zip(f.prompts + [f.text_only], n.prompts + [n.text_only]):
            assert abs(a.margin - b.margin) < TOLERANCE
        assert EXPECTED_PATH[family] in f.timing_ms["path"]
        assert n.timing_ms["path"] == "naive"
        assert f.timing_ms["studies_in_batch"] == 3


def test_batches_stay_within_the_bound(tiny_model, studies):
    """Memory stays flat as a dataset grows: no forward ever sees more rows than max_batch."""
    loaded = load_model(ModelSpec(model=tiny_model("llava")))
    checker = Checker(loaded, "torch")
    checker.scorer.max_batch = 5
    seen: list[int] = []
    hook = loaded.model.model.language_model.register_forward_hook(
        lambda module, args, kwargs, output: seen.append(kwargs["inputs_embeds"].shape[0]), with_kwargs=True
    )
    try:
        verdicts = checker.check_many(_requests(studies) * 3)
    finally:
        hook.remove()
    assert len(verdicts) == 9
    assert seen and max(seen) <= 5


def test_a_prefix_pass_stays_within_the_runtimes_token_bound(tiny_model, studies):
    """On a CPU a prefix pass over many studies runs slower per token than smaller ones: the studies then go
    in several passes, within the bound, with the same margins."""
    loaded = load_model(ModelSpec(model=tiny_model("llava")))
    assert loaded.device.type == "cpu"
    shapes: list[tuple[int, int]] = []  # (rows, tokens) of every language model forward
    hook = loaded.model.model.language_model.register_forward_hook(
        lambda module, args, kwargs, output: shapes.append(tuple(kwargs["inputs_embeds"].shape[:2])),
        with_kwargs=True)

    def check(prefix_tokens: int | None) -> tuple[list, list[tuple[int, int]]]:
        checker = Checker(loaded, "torch").prepare()
        assert checker.scorer.steps.prefix_tokens is not None  # the CPU's default
        checker.scorer.steps.prefix_tokens = prefix_tokens
        shapes.clear()
        return checker.check_many(_requests(studies)), list(shapes)

    try:
        unbounded, unbounded_shapes = check(None)
        # the three studies' prefixes in one pass (and the content-free reference's in one of its own)
        prefix_len = min(tokens for rows, tokens in unbounded_shapes if rows == 3)
        bounded, bounded_shapes = check(2 * prefix_len)
    finally:
        hook.remove()
    unbounded_rows, bounded_rows = ([rows for rows, tokens in shapes_seen if tokens == prefix_len]
                                    for shapes_seen in (unbounded_shapes, bounded_shapes))
    assert max(unbounded_rows) == 3 and max(bounded_rows) == 2 and sum(bounded_rows) == sum(unbounded_rows)
    for a, b in zip(unbounded, bounded, strict=True):
        assert max(abs(x.margin - y.margin) for x, y in zip(a.prompts, b.prompts, strict=True)) < TOLERANCE


def test_a_text_only_prompt_is_scored_once_per_model(tiny_model, studies):
    """With no image a margin depends on the prompt alone: a batch of studies asking one question scores its
    text-only prompt once, and later checks asking it again take that margin without scoring it; every one the
    naive way's."""
    loaded = load_model(ModelSpec(model=tiny_model("llava")))
    fast, naive = Checker(loaded, "torch").prepare(), Checker(loaded, "torch-naive").prepare()
    scored: list[int] = []  # text-only prompts tokenized for a suffix pass, call by call
    tokenize = fast.scorer._tokenize_text_only
    fast.scorer._tokenize_text_only = lambda requests, indices: scored.append(len(indices)) or tokenize(requests, indices)
    question = "Is there a pleural effusion?"
    verdicts = fast.check_many([CheckRequest(study, question) for study in studies])
    verdicts += [fast.check(studies[1], question), fast.check(studies[2], "Is there a pneumothorax?")]
    assert [n for n in scored if n] == [1, 1]  # the second question's prompt is new
    assert "margin-kept" in verdicts[3].timing_ms["path"]
    for verdict, study in zip(verdicts, [*studies, studies[1], studies[2]], strict=True):
        expected = naive.check(study, verdict.question).text_only.margin
        assert abs(verdict.text_only.margin - expected) < TOLERANCE


@pytest.mark.parametrize("family", ALL_FAMILIES)
@pytest.mark.parametrize("backend", ["torch", "torch-naive"])
def test_the_head_runs_only_where_answers_are_read(family, backend, tiny_model, studies):
    """The language model head (a vocabulary wide: 152k on Qwen2-VL) sees only the positions whose answers are
    read, never every token of every prompt; margins stay the naive way's (the first test)."""
    loaded = load_model(ModelSpec(model=tiny_model(family)))
    options = CheckOptions(ablation="blank" if family == "paligemma" else None)
    checker = Checker(loaded, backend, options).prepare()
    positions: list[int] = []
    hook = loaded.model.get_output_embeddings().register_forward_hook(
        lambda module, args, output: positions.append(args[0].shape[-2]))
    try:
        verdict = checker.check(studies[0], "Is there a pleural effusion?", PHRASINGS)
    finally:
        hook.remove()
    read = len(verdict.prompts) + 2  # the phrasings, the text-only prompt, the content-free reference
    assert positions and max(positions) <= read


@pytest.mark.parametrize("family", [f for f in ALL_FAMILIES + LATER_FAMILIES if f != "paligemma"])
def test_the_last_layer_computes_only_what_each_pass_reads(family, tiny_model, studies):
    """Nothing reads a prefix's own outputs, so its last layer's attention, output projection and MLP are
    skipped (`quadrant.backends.last_layer`): the cache holds the same keys and values to the bit as a whole
    forward's. The suffix pass reads its outputs at the answer positions only, so the layer's MLP runs on
    those rows and no others; every margin is held to plain forwards by the parity tests."""
    loaded = load_model(ModelSpec(model=tiny_model(family)))
    checker = Checker(loaded, "torch", CheckOptions()).prepare()
    layer = loaded.model.get_decoder().layers[-1]
    ran: list[tuple[str, int]] = []
    hooks = [part.register_forward_hook(lambda module, args, output, name=name: ran.append((name, args[0].shape[1])))
             for name, part in (("mlp", layer.mlp), ("o_proj", layer.self_attn.o_proj))]
    steps, seen = checker.scorer.steps, []
    run_prefix, run_suffixes = steps.run_prefix, steps.run_suffixes

    def recorded(tokens, images):
        ran.append(("prefix", 0))
        prefix = run_prefix(tokens, images)
        seen.append((tokens, images, prefix))
        ran.append(("prefix done", 0))
        return prefix

    def suffixes(prefix, laid):
        ran.append(("suffixes", len({position for _, position in laid.answer_at})))
        return run_suffixes(prefix, laid)

    steps.run_prefix, steps.run_suffixes = recorded, suffixes
    try:
        verdict = checker.check(studies[1], "Is there a pleural effusion?")
    finally:
        for hook in hooks:
            hook.remove()
    assert "prefix-shared" in verdict.timing_ms["path"]
    passes = [index for index, (name, _) in enumerate(ran) if name in ("prefix", "prefix done", "suffixes")]
    assert ran[passes[0]][0] == "prefix" and "suffixes" in {ran[index][0] for index in passes}
    for start, end in zip(passes, [*passes[1:], len(ran)]):
        name, reads = ran[start]
        if name == "prefix":  # no part of the last layer in a prefix pass ...
            assert ran[start + 1 : end] == []
        elif name == "suffixes":  # ... and all of it in a suffix pass, at the read rows only
            assert sorted(ran[start + 1 : end]) == [("mlp", reads), ("o_proj", reads)]
    tokens, images, prefix = seen[0]
    inputs = {**tokens, **{key: torch.cat([image[key] for image in images]) for key in images[0]}}
    with torch.inference_mode():
        whole = loaded.model(**inputs, use_cache=True).past_key_values
    for trimmed, full in zip(prefix.cache.layers, whole.layers, strict=True):
        assert torch.equal(trimmed.keys, full.keys) and torch.equal(trimmed.values, full.values)
    assert all(getattr(getattr(module, "config", None), "_attn_implementation", None) != READS_ONLY
               and type(module).__name__ != "_AtReads" for module in loaded.model.modules())  # itself again


def test_the_last_layer_at_read_positions_matches_a_plain_forward_without_a_mask(tiny_model):
    """A forward given no mask (a causal kernel's own square) attends everywhere and restricts only the output
    projection and MLP to the read rows: the logits there are a plain forward's."""
    from quadrant.backends.last_layer import last_layer_reads_only

    loaded = load_model(ModelSpec(model=tiny_model("llava")))
    ids = loaded.processor.tokenizer("Is there a pleural effusion in this study?", return_tensors="pt").input_ids
    reads = torch.tensor([[2, ids.shape[1] - 1]])
    with torch.inference_mode():
        plain = loaded.model(input_ids=ids).logits[:, reads[0]]
        with last_layer_reads_only(loaded.model.get_decoder(), reads):
            picked = loaded.model(input_ids=ids, logits_to_keep=reads[0]).logits
    assert torch.allclose(picked, plain, atol=1e-5)


def test_a_last_layer_whose_attention_takes_no_mask_runs_whole_where_positions_are_read(tiny_model):
    """Flash attention takes no [batch, 1, queries, keys] mask to pick rows with: given read positions, the
    layer is left as it is; with none (a prefix pass) nothing of the attention is called, so it is replaced."""
    from quadrant.backends.last_layer import last_layer_reads_only

    loaded = load_model(ModelSpec(model=tiny_model("llava")))
    decoder = loaded.model.get_decoder()
    attention, mlp = decoder.layers[-1].self_attn, decoder.layers[-1].mlp
    own, attention.config = attention.config, copy.copy(attention.config)
    attention.config._attn_implementation = "flash_attention_2"
    try:
        with last_layer_reads_only(decoder, torch.tensor([[3]])):
            assert decoder.layers[-1].mlp is mlp and attention.config._attn_implementation == "flash_attention_2"
        with last_layer_reads_only(decoder):
            assert decoder.layers[-1].mlp is not mlp and attention.config._attn_implementation == READS_ONLY
        assert decoder.layers[-1].mlp is mlp and attention.config._attn_implementation == "flash_attention_2"
    finally:
        attention.config = own


def test_self_check_falls_back_when_the_cache_is_not_exact(tiny_model, studies):
    """PaliGemma's prefix-LM attention makes a cached image prefix inexact: the self-check must see it."""
    loaded = load_model(ModelSpec(model=tiny_model("paligemma")))
    loaded.family.prefix_cache_exact = True  # pretend not to know, as with an unfamiliar family
    scorer = PrefixSharedScorer(loaded)
    assert scorer.prefix_ok() is False


def test_prefix_tokens_equal_the_processors_for_every_family(tiny_model, studies):
    """Preprocessing the image once and expanding its tokens into every prompt must give exactly what the
    processor gives when it preprocesses the image for every prompt."""
    for family in ALL_FAMILIES:
        loaded = load_model(ModelSpec(model=tiny_model(family)))
        rendered = [loaded.family.render(loaded.processor, loaded.wrap(p.text), True) for p in PHRASINGS]
        spliced = loaded.family.encode_one_image(loaded.processor, rendered, studies[2].image)
        full = loaded.family.encode(loaded.processor, rendered, [studies[2].image] * len(rendered))
        if family == "paligemma":
            assert spliced is None  # its processor places the image itself: nothing to splice
            continue
        assert spliced is not None, family
        for key in full:
            if key == "pixel_values" or key == "pixel_attention_mask":
                assert torch.equal(spliced[key][0], full[key][0]), key
            else:
                assert torch.equal(spliced[key], full[key]), key


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_half_precision_keeps_the_fast_path(family, tiny_model, studies):
    """bf16, as on a GPU (run here on the CPU): the self-check must not reject the cache for rounding
    alone, and the two ways must still agree to bf16's precision."""
    loaded = load_model(ModelSpec(model=tiny_model(family), dtype="bfloat16"))
    options = CheckOptions(ablation="blank" if family == "paligemma" else None)
    fast = Checker(loaded, "torch", options).check_many(_requests(studies))
    naive = Checker(loaded, "torch-naive", options).check_many(_requests(studies))
    for f, n in zip(fast, naive):
        assert f.model["dtype"] == "bfloat16"
        assert EXPECTED_PATH[family] in f.timing_ms["path"]
        for a, b in zip(f.prompts + [f.text_only], n.prompts + [n.text_only]):
            assert abs(a.margin - b.margin) < 1e-2
