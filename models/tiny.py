"""Tiny, real Hugging Face image-text-to-text models, built offline with random weights.

Every model here is a genuine ``transformers`` class (LLaVA, Gemma3, Idefics3, PaliGemma) with a
byte-level BPE tokenizer trained on the spot, a processor and -- where the real checkpoints have one --
a chat template that follows the real checkpoint's conventions. Nothing is downloaded: the test suite,
the benchmark and the demo-model recipe all need models that exist without a network, behave like the
real families at the interfaces Quadrant touches (chat template, processor, image-token expansion,
special tokens, forward signature) and are small enough to build in well under a second.

Public API::

    FAMILIES                                    # ("llava", "gemma3", "idefics3", "paligemma")
    NEW_FAMILIES, GENERIC_FAMILIES              # Qwen-VL, InternVL, LLaVA-OneVision; LLaVA-NeXT, VipLLaVA (tiny_families.py)
    TinySpec(...)                               # shape knobs, tiny by default
    train_tokenizer(extra_words=())             # LLaVA/Llama-flavoured tokenizer
    build_tiny(family, out_dir, spec, **over)   # -> out_dir, reloadable with the Auto classes
    llava_15_shaped(out_dir, hidden=256, ...)   # CLIP 336 px / patch 14 -> 576 image tokens

A saved directory reloads with ``AutoProcessor.from_pretrained(dir)`` and
``AutoModelForImageTextToText.from_pretrained(dir)``, weights in float32 safetensors.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

FAMILIES = ("llava", "gemma3", "idefics3", "paligemma")

#: Target size of the trained BPE vocabulary (before family tokens are added). Small, so that the
#: embedding and LM-head matrices stay tiny, but large enough that every yes/no variant is one token.
BPE_VOCAB_SIZE = 1000


@dataclass(frozen=True)
class TinySpec:
    """Shape knobs. The defaults are tiny: each family builds and saves in well under 2 s on a CPU.

    ``extra_words`` are extra corpus words for the tokenizer (e.g. a recipe's own finding names), so
    that they tokenize compactly; they do not change the defaults' behaviour when empty.
    """

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 128
    vision_hidden: int = 32
    vision_layers: int = 2
    image_size: int = 32
    patch_size: int = 8
    seed: int = 0
    extra_words: tuple[str, ...] = ()

    @property
    def vision_heads(self) -> int:
        """Vision attention heads: head width 8 where possible (CLIP/SigLIP need hidden % heads == 0)."""
        for heads in (max(1, self.vision_hidden // 8), 4, 2, 1):
            if self.vision_hidden % heads == 0:
                return heads
        return 1

    @property
    def patches_per_side(self) -> int:
        return self.image_size // self.patch_size


# --------------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------------

FINDINGS = (
    # The 14 CheXpert labels
    "atelectasis", "cardiomegaly", "consolidation", "edema", "enlarged cardiomediastinum", "fracture",
    "lung lesion", "lung opacity", "no finding", "pleural effusion", "pleural other", "pneumonia",
    "pneumothorax", "support devices",
    # Common PadChest labels
    "nodule", "mass", "hilar enlargement", "scoliosis", "aortic elongation", "kyphosis", "pacemaker",
    "emphysema", "granuloma", "calcified granuloma", "infiltrates", "interstitial pattern",
    "costophrenic angle blunting", "hemidiaphragm elevation", "tuberculosis", "laminar atelectasis",
    "apical pleural thickening", "air trapping", "effusion", "cardiac enlargement",
)

_QUESTIONS = (
    "Is there {f} in this chest X-ray?",
    "Does this radiograph show {f}?",
    "Is {f} present?",
    "Can {f} be seen on this image?",
    "Are there signs of {f}?",
    "Is {f} visible on the chest radiograph?",
    "Can {f} be ruled out?",
    "Does the patient have {f}?",
    "Is the study positive for {f}?",
    "Is there evidence of {f} on this film?",
)

_INSTRUCTIONS = (
    "Answer with yes or no.",
    "Answer yes or no.",
    "Please answer yes or no.",
    "Respond with a single word: yes or no.",
    "Answer the question using a single word or phrase.",
)

_ANSWERS = (
    "Yes.", "No.", "yes", "no", "Yes", "No", "Yes, there is {f}.", "No, there is no {f}.",
    "The answer is yes.", "The answer is no.", "yes, {f} is present.", "no, {f} is absent.",
)

_REPORT = (
    "The heart size is normal. The lungs are clear.",
    "No pleural effusion or pneumothorax.",
    "There is mild cardiomegaly with small bilateral pleural effusions.",
    "Left lower lobe opacity, likely atelectasis, pneumonia not excluded.",
    "Frontal and lateral views of the chest. PA and AP projections.",
    "Support devices: endotracheal tube, nasogastric tube and central line in place.",
    "Impression: no acute cardiopulmonary process.",
    "Findings: the cardiomediastinal silhouette is within normal limits.",
    "Comparison with the prior study shows interval improvement of the edema.",
    "USER: ASSISTANT: User: Assistant: model user question image answer",
    "user\nmodel\nUser: Assistant: USER: ASSISTANT: system\nSystem: You are a radiology assistant.",
    "1 2 3 4 5 6 7 8 9 10 left right upper lower middle lobe base apex bilateral",
)


def _corpus(extra_words: Sequence[str] = ()) -> list[str]:
    """A deterministic corpus of chest X-ray questions, answers and report phrases.

    Answer words appear in every position the chat templates put them in (line start, after a space,
    capitalised or not), many times, so that the BPE merges make "yes", " yes", "Yes", " Yes", "no",
    " no", "No" and " No" single tokens.
    """
    lines: list[str] = []
    for i, finding in enumerate(FINDINGS):
        for j, question in enumerate(_QUESTIONS):
            for form in (finding, finding.capitalize()):
                q = question.format(f=form)
                instruction = _INSTRUCTIONS[(i + j) % len(_INSTRUCTIONS)]
                answer = _ANSWERS[(i * 3 + j) % len(_ANSWERS)].format(f=finding)
                lines.append(f"{q} {instruction}")
                lines.append(f"USER: {q} {instruction} ASSISTANT: {answer}")
                lines.append(f"Assistant: {answer}")
                lines.append(answer)
    # Bare answers at line start and after a space, in every case.
    for word in ("yes", "no", "Yes", "No", "YES", "NO"):
        lines.extend([word, f" {word}", f"Answer: {word}", f"model\n{word}"] * 20)
    lines.extend(_REPORT * 10)
    if extra_words:
        lines.extend(" ".join(extra_words) for _ in range(20))
        lines.extend(f" {w}" for w in extra_words for _ in range(5))
    return lines


@functools.lru_cache(maxsize=32)
def _train_bpe_json(special_tokens: tuple[str, ...], extra_words: tuple[str, ...], vocab_size: int) -> str:
    """Train a byte-level BPE (GPT-2 style pre-tokenisation) and return it serialised.

    ``special_tokens`` take the lowest ids, as in the real checkpoints (e.g. Llama's <unk>=0, <s>=1,
    </s>=2). Cached as JSON because a ``Tokenizer`` is mutable and each family adds its own tokens.
    """
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(extra_words), trainer=trainer)
    return tok.to_str()


def _make_tokenizer(
    *,
    bos: str,
    eos: str,
    pad: str,
    unk: str,
    base_specials: Sequence[str],
    added_specials: Sequence[str] = (),
    named: dict[str, str] | None = None,
    add_bos_token: bool,
    extra_words: Sequence[str] = (),
    vocab_size: int = BPE_VOCAB_SIZE,
) -> PreTrainedTokenizerFast:
    """Wrap a freshly trained BPE in ``PreTrainedTokenizerFast``.

    ``base_specials`` get the lowest ids (trained in); ``added_specials`` are appended after the BPE
    vocabulary, like llava-hf's <image> at 32000. All of them are *special* added tokens, so the
    tokenizer never splits them and ``skip_special_tokens`` drops them. ``named`` become attributes
    (``tokenizer.image_token``, ``tokenizer.boi_token_id``...) that the processors read.
    ``model_input_names`` keeps ``token_type_ids`` out of the tokenizer's output (``generate``
    rejects it); ``padding_side="right"`` is what Quadrant's batched suffix scoring expects.
    """
    backend = Tokenizer.from_str(_train_bpe_json(tuple(base_specials), tuple(extra_words), vocab_size))
    if added_specials:
        backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in added_specials])
    kwargs = {}
    if named:
        kwargs["extra_special_tokens"] = dict(named)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        unk_token=unk,
        add_bos_token=add_bos_token,
        add_eos_token=False,
        padding_side="right",
        model_input_names=["input_ids", "attention_mask"],
        clean_up_tokenization_spaces=False,
        **kwargs,
    )


def train_tokenizer(extra_words: Sequence[str] = ()) -> PreTrainedTokenizerFast:
    """The LLaVA (Llama-flavoured) tokenizer: <unk>=0, <s>=1, </s>=2, BOS added, <image> and <pad> after
    the BPE vocabulary. Byte-level BPE over a chest X-ray Q/A corpus; the yes/no variants are one token each.
    """
    return _llava_tokenizer(extra_words)


def _llava_tokenizer(extra_words: Sequence[str] = ()) -> PreTrainedTokenizerFast:
    return _make_tokenizer(
        bos="<s>", eos="</s>", pad="<pad>", unk="<unk>",
        base_specials=("<unk>", "<s>", "</s>"),
        added_specials=("<image>", "<pad>"),
        named={"image_token": "<image>"},
        add_bos_token=True,
        extra_words=extra_words,
    )


def _gemma_tokenizer(extra_words: Sequence[str], multimodal: bool) -> PreTrainedTokenizerFast:
    """Gemma layout: <pad>=0, <eos>=1, <bos>=2, <unk>=3, BOS added by the tokenizer."""
    base = ["<pad>", "<eos>", "<bos>", "<unk>"]
    named = None
    added: list[str] = []
    if multimodal:  # Gemma3: turn markers in the base vocab, image tokens appended
        base += ["<start_of_turn>", "<end_of_turn>"]
        added = ["<start_of_image>", "<end_of_image>", "<image_soft_token>"]
        named = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
    else:  # PaliGemma: <image> appended; the processor adds the <loc>/<seg> tokens itself
        added = ["<image>"]
        named = {"image_token": "<image>"}
    return _make_tokenizer(
        bos="<bos>", eos="<eos>", pad="<pad>", unk="<unk>",
        base_specials=base, added_specials=added, named=named,
        add_bos_token=True, extra_words=extra_words,
    )


IDEFICS3_ROW_COL_TOKENS = tuple(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7))


def _idefics3_tokenizer(extra_words: Sequence[str]) -> PreTrainedTokenizerFast:
    """SmolVLM layout: <|endoftext|> (unk)=0, <|im_start|> (bos)=1, <|im_end|> (pad)=2, no BOS added
    (the chat template writes it); image-layout tokens and <end_of_utterance> (eos) appended."""
    return _make_tokenizer(
        bos="<|im_start|>", eos="<end_of_utterance>", pad="<|im_end|>", unk="<|endoftext|>",
        base_specials=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        added_specials=("<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>")
        + IDEFICS3_ROW_COL_TOKENS,
        named={"image_token": "<image>"},
        add_bos_token=False,
        extra_words=extra_words,
    )


# --------------------------------------------------------------------------------------------------
# Chat templates (as in the real checkpoints, plus string content and text-only messages)
# --------------------------------------------------------------------------------------------------

#: llava-hf/llava-1.5-7b-hf: "USER: <image>\n{text} ASSISTANT:"; BOS comes from the tokenizer, and the
#: answer follows after a space (" Yes"). Images are rendered before the text whatever the order.
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] + ' ' }}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}{% endfor %}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' ' }}{% endgeneration %}{% endfor %}"
    "{% endif %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

#: google/gemma-3-4b-it / MedGemma: "<bos><start_of_turn>user\n<start_of_image>{text}<end_of_turn>\n
#: <start_of_turn>model\n"; the answer follows the newline with no space ("Yes"). A system message is
#: folded into the first user turn. The processor expands <start_of_image> into
#: "\n\n<start_of_image><image_soft_token>*N<end_of_image>\n\n".
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}"
    "{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}"
    "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{%- if message['content'] is string -%}"
    "{{ message['content'] | trim }}"
    "{%- elif message['content'] is iterable -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- else -%}"
    "{{ raise_exception('Invalid content type') }}"
    "{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

#: HuggingFaceTB/SmolVLM-Instruct: "<|im_start|>User:<image>{text}<end_of_utterance>\nAssistant:";
#: a text-first message gets "User: {text}". The answer follows "Assistant:" after a space (" Yes").
IDEFICS3_CHAT_TEMPLATE = (
    "<|im_start|>"
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}{{ ': ' + message['content'] }}"
    "{% else %}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}"
    "{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<end_of_utterance>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

CHAT_TEMPLATES = {
    "llava": LLAVA_CHAT_TEMPLATE,
    "gemma3": GEMMA3_CHAT_TEMPLATE,
    "idefics3": IDEFICS3_CHAT_TEMPLATE,
    "paligemma": None,  # PaliGemma has none: its processor builds "<image>*N<bos>{prompt}\n" itself
}


# --------------------------------------------------------------------------------------------------
# Per-family builders
# --------------------------------------------------------------------------------------------------


def vision_tower(spec: TinySpec) -> dict:
    """The vision encoder's size, the same for every family's tower (CLIP, SigLIP, Idefics3's), so that
    one spec sizes them all alike."""
    return dict(hidden_size=spec.vision_hidden, intermediate_size=spec.vision_hidden * 4,
                num_hidden_layers=spec.vision_layers, num_attention_heads=spec.vision_heads,
                image_size=spec.image_size, patch_size=spec.patch_size)


def language_model(spec: TinySpec, tok: PreTrainedTokenizerFast) -> dict:
    """The decoder's size, the same for every family's language model (Llama, Gemma, Qwen2), over the
    tokenizer's whole vocabulary (special tokens a processor added included)."""
    return dict(vocab_size=len(tok), hidden_size=spec.hidden, intermediate_size=spec.intermediate,
                num_hidden_layers=spec.layers, num_attention_heads=spec.heads, num_key_value_heads=spec.kv_heads)


def _llama_text_config(spec: TinySpec, tok: PreTrainedTokenizerFast, max_positions: int = 2048) -> dict:
    """A Llama decoder (LLaVA-1.5's Vicuna, SmolVLM's SmolLM2) at the spec's size."""
    return dict(
        language_model(spec, tok),
        max_position_embeddings=max_positions,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )


def _save(model, processor, out_dir: Path, eos_token_ids: Sequence[int] | None = None,
          dtype: torch.dtype = torch.float32) -> Path:
    """Save model (float32 safetensors, unless told otherwise) and processor side by side; pin the generation
    config's ids."""
    model = model.to(dtype).eval()
    tok = processor.tokenizer
    gen = model.generation_config
    gen.bos_token_id = tok.bos_token_id
    gen.pad_token_id = tok.pad_token_id
    gen.eos_token_id = list(eos_token_ids) if eos_token_ids else tok.eos_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def _build_llava(spec: TinySpec, out_dir: Path, max_positions: int = 2048) -> Path:
    """LLaVA-1.5: CLIP vision tower (penultimate layer, CLS dropped) -> 2-layer GELU MLP -> Llama.

    Image tokens per image = (image_size / patch_size)^2: the processor counts the CLS token
    (``num_additional_image_tokens=1``) and ``vision_feature_select_strategy="default"`` drops it again.
    """
    from transformers import (
        CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig,
        LlavaForConditionalGeneration, LlavaProcessor,
    )

    tok = _llava_tokenizer(spec.extra_words)
    tok.chat_template = LLAVA_CHAT_TEMPLATE
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": spec.image_size},
        crop_size={"height": spec.image_size, "width": spec.image_size},
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=spec.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_CHAT_TEMPLATE,
    )
    text = _llama_text_config(spec, tok, max_positions)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**vision_tower(spec), projection_dim=spec.vision_hidden),
        text_config=LlamaConfig(**text),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_seq_length=spec.patches_per_side**2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )
    torch.manual_seed(spec.seed)
    model = LlavaForConditionalGeneration(config)
    return _save(model, processor, out_dir)


def _gemma3_tokens_per_side(spec: TinySpec) -> int:
    """Gemma3 average-pools the patch grid to sqrt(mm_tokens_per_image) per side (4x4 pooling in the
    real 896/14 -> 64 -> 16 model). Here: pool by 2 when the grid is even, else keep it."""
    side = spec.patches_per_side
    return side // 2 if side % 2 == 0 and side >= 2 else side


def _build_gemma3(spec: TinySpec, out_dir: Path) -> Path:
    """Gemma3 (MedGemma's architecture): SigLIP tower -> avg-pool -> RMSNorm -> projection -> Gemma3 text.

    The tokenizer carries ``boi_token`` <start_of_image> (the chat template's placeholder),
    ``image_token`` <image_soft_token> (what the processor expands it into, ``mm_tokens_per_image``
    times; it must equal the processor's ``image_seq_length``) and ``eoi_token`` <end_of_image>.

    A fresh Gemma3 initialises ``mm_input_projection_weight`` to zeros, so the image would have no
    effect on the logits at all; it is re-initialised here (normal, std = initializer_range, like every
    other projection) so that image reliance is measurable on the tiny model.
    """
    from transformers import (
        Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessorPil, Gemma3Processor,
        Gemma3TextConfig, SiglipVisionConfig,
    )

    tok = _gemma_tokenizer(spec.extra_words, multimodal=True)
    tok.chat_template = GEMMA3_CHAT_TEMPLATE
    per_side = _gemma3_tokens_per_side(spec)
    mm_tokens = per_side**2
    image_processor = Gemma3ImageProcessorPil(
        size={"height": spec.image_size, "width": spec.image_size},
        do_pan_and_scan=False,
    )
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tok,
        chat_template=GEMMA3_CHAT_TEMPLATE,
        image_seq_length=mm_tokens,
    )
    head_dim = spec.hidden // spec.heads
    config = Gemma3Config(
        text_config=Gemma3TextConfig(
            **language_model(spec, tok),
            head_dim=head_dim,
            query_pre_attn_scalar=head_dim,
            max_position_embeddings=2048,
            sliding_window=512,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        ),
        vision_config=SiglipVisionConfig(**vision_tower(spec), vision_use_head=False),
        mm_tokens_per_image=mm_tokens,
        boi_token_index=tok.boi_token_id,
        eoi_token_index=tok.eoi_token_id,
        image_token_index=tok.image_token_id,
    )
    torch.manual_seed(spec.seed)
    model = Gemma3ForConditionalGeneration(config)
    projector = model.model.multi_modal_projector
    with torch.no_grad():
        projector.mm_input_projection_weight.normal_(0.0, config.text_config.initializer_range)
    end_of_turn = tok.convert_tokens_to_ids("<end_of_turn>")
    return _save(model, processor, out_dir, eos_token_ids=[tok.eos_token_id, end_of_turn])


def _build_idefics3(spec: TinySpec, out_dir: Path) -> Path:
    """Idefics3 (SmolVLM): SigLIP-like tower -> pixel shuffle (scale_factor 2) -> linear -> Llama.

    ``image_seq_len`` = (image_size / patch)^2 / scale_factor^2 tokens per sub-image. Images are split
    like the real model: ``size.longest_edge`` = 2 x the vision image size and
    ``max_image_size.longest_edge`` = the vision image size, so a square image becomes 2 x 2 crops
    plus a global view (5 x image_seq_len <image> tokens, with <fake_token_around_image>,
    <row_i_col_j> and <global-img> around them); the count depends on the aspect ratio. The model
    needs ``pixel_attention_mask``, which the processor returns.
    """
    from transformers import (
        Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessorPil, Idefics3Processor,
        Idefics3VisionConfig, LlamaConfig,
    )

    scale_factor = 2
    if spec.patches_per_side % scale_factor:
        raise ValueError(f"idefics3 needs an even patch grid, got {spec.patches_per_side} patches per side")
    tok = _idefics3_tokenizer(spec.extra_words)
    tok.chat_template = IDEFICS3_CHAT_TEMPLATE
    image_seq_len = spec.patches_per_side**2 // scale_factor**2
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 2 * spec.image_size},
        max_image_size={"longest_edge": spec.image_size},
        do_image_splitting=True,
    )
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tok,
        image_seq_len=image_seq_len,
        chat_template=IDEFICS3_CHAT_TEMPLATE,
    )
    text = _llama_text_config(spec, tok)
    config = Idefics3Config(
        vision_config=Idefics3VisionConfig(**vision_tower(spec)),
        text_config=LlamaConfig(**text),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=scale_factor,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(spec.seed)
    model = Idefics3ForConditionalGeneration(config)
    return _save(model, processor, out_dir)


def _build_paligemma(spec: TinySpec, out_dir: Path) -> Path:
    """PaliGemma: SigLIP tower -> linear -> Gemma, prefix-LM (image + prompt attend both ways).

    No chat template: the processor writes "<image>*N<bos>{prompt}\\n" itself, refuses text without an
    image, and returns ``token_type_ids`` (pass them) and ``labels`` (drop them). Constructing the
    processor adds 1,024 <locNNNN> and 128 <segNNN> tokens, so the model's vocab_size is read from
    the tokenizer *after* that.
    """
    from transformers import (
        GemmaConfig, PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor,
        SiglipImageProcessorPil, SiglipVisionConfig,
    )

    tok = _gemma_tokenizer(spec.extra_words, multimodal=False)
    num_image_tokens = spec.patches_per_side**2
    image_processor = SiglipImageProcessorPil(
        size={"height": spec.image_size, "width": spec.image_size},
        image_seq_length=num_image_tokens,
    )
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tok)
    head_dim = spec.hidden // spec.heads
    config = PaliGemmaConfig(
        vision_config=SiglipVisionConfig(**vision_tower(spec), vision_use_head=False),
        text_config=GemmaConfig(
            **language_model(spec, tok),
            head_dim=head_dim,
            max_position_embeddings=2048,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        ),
        image_token_index=tok.image_token_id,
        vocab_size=len(tok),  # after the processor's <loc>/<seg> tokens
        projection_dim=spec.hidden,
        hidden_size=spec.hidden,
    )
    torch.manual_seed(spec.seed)
    model = PaliGemmaForConditionalGeneration(config)
    return _save(model, processor, out_dir)


_BUILDERS: dict[str, Callable[[TinySpec, Path], Path]] = {
    "llava": _build_llava,
    "gemma3": _build_gemma3,
    "idefics3": _build_idefics3,
    "paligemma": _build_paligemma,
}


def build_tiny(family: str, out_dir: str | Path, spec: TinySpec = TinySpec(), **overrides) -> Path:
    """Build a tiny random-weight model of ``family`` and save it (model + processor) in ``out_dir``.

    ``overrides`` replace fields of ``spec`` (``build_tiny("llava", d, hidden=128)``). Weights depend
    only on the spec: ``torch.manual_seed(spec.seed)`` runs right before construction.
    """
    from .tiny_families import BUILDERS as MORE_BUILDERS

    builders = {**_BUILDERS, **MORE_BUILDERS}
    if family not in builders:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(builders)}")
    if overrides:
        unknown = set(overrides) - {f.name for f in dataclasses.fields(TinySpec)}
        if unknown:
            raise TypeError(f"unknown TinySpec field(s): {', '.join(sorted(unknown))}")
        if "extra_words" in overrides:
            overrides["extra_words"] = tuple(overrides["extra_words"])
        spec = dataclasses.replace(spec, **overrides)
    if spec.image_size % spec.patch_size:
        raise ValueError(f"image_size {spec.image_size} is not a multiple of patch_size {spec.patch_size}")
    return builders[family](spec, Path(out_dir))


def llava_15_shaped(
    out_dir: str | Path,
    *,
    hidden: int = 256,
    layers: int = 4,
    seed: int = 0,
    vision_hidden: int = 128,
    vision_layers: int = 2,
) -> Path:
    """A LLaVA-1.5-shaped model for the benchmark: CLIP at 336 px with patch 14, penultimate layer, CLS
    dropped -> exactly 576 image tokens per image, like llava-1.5-7b; a narrow Llama decoder.

    Only the shape of the token stream is real-sized (576 image tokens + the prompt), which is what
    prefix sharing and batching are measured on; the widths stay small so it builds in seconds.
    """
    heads = max(1, hidden // 64)
    spec = TinySpec(
        hidden=hidden,
        layers=layers,
        heads=heads,
        kv_heads=heads,
        intermediate=hidden * 4,
        vision_hidden=vision_hidden,
        vision_layers=vision_layers,
        image_size=336,
        patch_size=14,
        seed=seed,
    )
    return _build_llava(spec, Path(out_dir), max_positions=4096)


def llava_15_7b_parts(layers: int = 32) -> tuple:
    """The configuration and processor of a model of llava-1.5-7b's shape, for the GPU check
    (`quadrant.models.gpu_check`): CLIP ViT-L/14 at 336 px (1024 wide, 24 layers, 16 heads: 576 image tokens),
    a two-layer GELU projector, and a Llama of 4096 x `layers` (32 in the real model), 32 heads, MLP 11008,
    vocabulary 32064. Only the tokenizer is small (trained on the spot; the embedding table keeps the real
    vocabulary's size)."""
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaProcessor

    tok = _llava_tokenizer()
    tok.chat_template = LLAVA_CHAT_TEMPLATE
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=14,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=LLAVA_CHAT_TEMPLATE)
    text = LlamaConfig(vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=layers,
                       num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                       pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                              image_size=336, patch_size=14, projection_dim=768)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
                         image_seq_length=576, vision_feature_select_strategy="default", vision_feature_layer=-2,
                         projector_hidden_act="gelu", tie_word_embeddings=False)
    return config, processor


def llava_15_7b_shaped(out_dir: str | Path, *, layers: int = 32, device: str = "cpu",
                       dtype: torch.dtype = torch.bfloat16, seed: int = 0) -> Path:
    """`llava_15_7b_parts` with random weights, drawn on `device` (a GPU draws 7B of them in seconds) and
    saved in `dtype`."""
    from transformers import LlavaForConditionalGeneration

    config, processor = llava_15_7b_parts(layers)
    torch.manual_seed(seed)
    with torch.device(device):
        model = LlavaForConditionalGeneration(config).to(dtype)
    return _save(model, processor, Path(out_dir), dtype=dtype)
