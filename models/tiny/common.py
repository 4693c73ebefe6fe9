"""What every tiny family shares, so that one spec sizes them all alike and one corpus tokenizes them all.

A family module (one per architecture, beside this one) imports only from here: the shape knobs
(`TinySpec`), the byte-level BPE trained on the spot over a chest X-ray corpus (`make_tokenizer`), the sizes
of the vision tower and the language model, and saving a model with its processor the way a real checkpoint
is laid out. Keeping these in one place is what makes two families built from the same spec comparable, and
what keeps the families from importing each other.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

if TYPE_CHECKING:
    from transformers import PreTrainedModel, ProcessorMixin

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


def make_tokenizer(
    *,
    bos: str | None,
    eos: str,
    pad: str,
    unk: str | None,
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


#: Gemma's first ids (Gemma3 and PaliGemma): <pad>=0, <eos>=1, <bos>=2, <unk>=3.
GEMMA_SPECIALS = ("<pad>", "<eos>", "<bos>", "<unk>")
#: Qwen2's first ids (the Qwen-VL decoders, and InternVL3's and LLaVA-OneVision's, which are Qwen2 too).
QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


# --------------------------------------------------------------------------------------------------
# Model sizes
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


def llama_text_config(spec: TinySpec, tok: PreTrainedTokenizerFast, max_positions: int = 2048) -> dict:
    """A Llama decoder (LLaVA-1.5's Vicuna, SmolVLM's SmolLM2) at the spec's size."""
    return dict(
        language_model(spec, tok),
        max_position_embeddings=max_positions,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )


def qwen2_text(spec: TinySpec, tok: PreTrainedTokenizerFast, max_positions: int) -> dict:
    """A Qwen2 decoder (InternVL3's and LLaVA-OneVision's language model), as a text_config dict."""
    return dict(language_model(spec, tok), max_position_embeddings=max_positions, pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id, model_type="qwen2", tie_word_embeddings=False)


def anyres_pinpoints(size: int) -> list[list[int]]:
    """The tiling grids of LLaVA-NeXT's and LLaVA-OneVision's "anyres": up to 2 x 2 tiles of the base size, so
    that the number of image tokens follows the image's aspect ratio as in the real models."""
    return [[size, size], [size, 2 * size], [2 * size, size], [2 * size, 2 * size]]


# --------------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------------


def save(model: PreTrainedModel, processor: ProcessorMixin, out_dir: Path,
         eos_token_ids: Sequence[int] | None = None, dtype: torch.dtype = torch.float32) -> Path:
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


def image_only_processor(processor_class: type[ProcessorMixin], **parts: Any) -> ProcessorMixin:
    """The processor class without its video processor, for building and saving without torchvision."""
    from quadrant.loading import image_only

    return image_only(processor_class)(video_processor=None, **parts)


def save_like_checkpoint(model: PreTrainedModel, processor: ProcessorMixin, out_dir: Path, processor_class: str,
                         video: dict | None, eos_token_ids: Sequence[int] | None = None,
                         dtype: torch.dtype = torch.float32) -> Path:
    """Save, then name the real processor class and its video processor, as the real checkpoints do: loading
    such a directory without torchvision is what `quadrant.loading` must manage, and these prove it does."""
    save(model, processor, out_dir, eos_token_ids=eos_token_ids, dtype=dtype)
    for name in ("processor_config.json", "tokenizer_config.json"):
        path = out_dir / name
        if path.is_file():
            data = json.loads(path.read_text())
            data["processor_class"] = processor_class
            if name == "processor_config.json" and video is not None:
                data["video_processor"] = video
            path.write_text(json.dumps(data, indent=2))
    return out_dir

