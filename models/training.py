"""What the demo recipes share: training phrasings, phantom pools, prompt layout, the prefix-shared forward
with gradients, and the losses.

The demo model is trained on exactly the prompts Quadrant scores: ``family.render(processor,
"{question} Answer with yes or no.", with_image=True)`` tokenized the processor's way, and the answer read
from the next-token logits after "ASSISTANT:" (" yes" / " no"). Training phrasings are written here per
finding; the phrasings Quadrant asks at check time (the phantom QUESTIONS, prompt 0, and the built-in
paraphrase bank) are held out, and `assert_held_out` proves it before any training starts.

Speed on a 2-core CPU comes from three things: ``torch.set_flush_denormal(True)`` (about 3.7x), running
each image's prefix (BOS, "USER: ", the image tokens, the newline) once and reusing its KV cache for all
of its questions (exact, about 3.8x per sequence), and computing the language model head only at the
answer position.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from quadrant.answers import AnswerTokens, margins_from_logits

from .phantoms import FINDINGS, QUESTIONS, finding_mask, render_phantom, to_uint8
from .presets import DEFAULT_PROMPT

#: image side the phantoms are drawn at, as `generate_phantoms` writes them; the processor scales to 64
PHANTOM_SIZE = 256

#: Training phrasings, about eight per finding. They share key words with clinical phrasings (heart,
#: cardiac silhouette, fluid, pleural space, collapsed lung, round opacity, airspace...) but none of them
#: is a phrasing Quadrant asks at check time: those stay held out for evaluation (`assert_held_out`).
TRAIN_PHRASINGS: dict[str, tuple[str, ...]] = {
    "cardiomegaly": (
        "Is the heart larger than normal?",
        "Is the heart big on this radiograph?",
        "Do you see cardiomegaly here?",
        "Is cardiomegaly noted on this film?",
        "Does the patient have an enlarged heart?",
        "Is the cardiothoracic ratio above normal?",
        "Is the cardiac silhouette larger than normal?",
        "Is there evidence of an enlarged heart on this chest X-ray?",
    ),
    "pleural effusion": (
        "Is there fluid around the lung?",
        "Does this radiograph demonstrate pleural fluid?",
        "Is an effusion noted on this film?",
        "Is there a fluid collection at the lung base?",
        "Are the costophrenic angles blunted?",
        "Does the patient have an effusion on this chest X-ray?",
        "Is there a pleural effusion on either side?",
        "Is there effusion in either hemithorax?",
        "Is fluid collecting in the pleural cavity?",
    ),
    "pneumothorax": (
        "Is there free air around the lung?",
        "Does this radiograph demonstrate pneumothorax?",
        "Is part of a lung collapsed?",
        "Is there a pleural line with no lung markings beyond it?",
        "Is pneumothorax noted on this film?",
        "Does the patient have a collapsed lung?",
        "Is there a pneumothorax on either side?",
        "Is there evidence of pneumothorax on this chest X-ray?",
        "Is air collecting in the pleural cavity?",
        "Is there gas between the lung and the chest wall?",
    ),
    "nodule": (
        "Does this radiograph demonstrate a nodule?",
        "Is a round opacity seen in the lung?",
        "Is there a solitary nodule in either lung?",
        "Does the patient have a lung nodule on this film?",
        "Is there a nodular lesion?",
        "Is a nodule noted on this chest X-ray?",
        "Is there a small round mass in the lung?",
        "Is there a pulmonary nodule on either side?",
    ),
    "consolidation": (
        "Is there a patchy opacity in the lung?",
        "Do you see consolidation here?",
        "Is there airspace opacity suggesting pneumonia?",
        "Is consolidation noted on this film?",
        "Does the patient have lobar consolidation?",
        "Are there air bronchograms?",
        "Is there an area of consolidated lung?",
        "Is there evidence of consolidation on this chest X-ray?",
    ),
}


def tokenizer_words() -> tuple[str, ...]:
    """Words of the training phrasings, for the tokenizer's corpus (they then tokenize compactly)."""
    words = []
    for phrasings in TRAIN_PHRASINGS.values():
        for text in phrasings:
            for word in re.findall(r"[A-Za-z]+", text):
                if word.lower() not in words:
                    words.append(word.lower())
    return tuple(words)


# ------------------------------------------------------------------------------------------ held-out check


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", text.lower()).split())


def held_out_phrasings() -> dict[str, list[str]]:
    """Everything Quadrant may ask about a phantom finding at check time: the phantom question (prompt 0),
    every phrasing of the matched finding in the built-in bank (inverted ones included) and every generic
    template phrasing that tops the set up when K exceeds the bank."""
    held = {finding: [QUESTIONS[finding]] for finding in FINDINGS}
    try:
        from quadrant.paraphrases import bank_phrasings, find_finding
    except ImportError:  # the bank is not part of this checkout
        return held
    for finding in FINDINGS:
        held[finding] += [t for t, _ in asked_phrasings(QUESTIONS[finding], k=None)]
        matched = find_finding(QUESTIONS[finding])
        if matched is not None:
            held[finding] += [p.text for p in bank_phrasings(matched)]
    return held


def asked_phrasings(question: str, k: int | None = 5) -> list[tuple[str, bool]]:
    """(text, inverted) of the paraphrases Quadrant asks with `question` (prompt 0 excluded); with k None,
    all the candidates it could ever ask."""
    from quadrant.errors import ParaphraseError
    from quadrant.paraphrases import paraphrase_set

    for n in ([k] if k is not None else range(64, 0, -1)):
        try:
            return [(p.text, bool(p.inverted)) for p in paraphrase_set(question, k=n)[1:]]
        except ParaphraseError:
            if k is not None:
                raise
    return []


def _edit_distance(a: list[str], b: list[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def assert_held_out(phrasings: dict[str, Sequence[str]] = TRAIN_PHRASINGS) -> int:
    """Refuse to train on a phrasing Quadrant asks at check time, or on one that differs from it by a single
    word (case and punctuation ignored). Returns how many held-out phrasings were compared."""
    held = {_normalise(t) for texts in held_out_phrasings().values() for t in texts}
    clash = sorted(
        t for texts in phrasings.values() for t in texts
        if any(_edit_distance(_normalise(t).split(), h.split()) <= 1 for h in held)
    )
    if clash:
        raise AssertionError(f"training phrasings that are (nearly) held-out evaluation phrasings: {clash}")
    return len(held)


# ----------------------------------------------------------------------------------------------- torch set-up


def setup_torch(threads: int = 2, seed: int = 0) -> None:
    """Two CPU threads, denormals flushed (3.7x faster steps here), everything seeded."""
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


# ------------------------------------------------------------------------------------------------ phantoms


#: findings whose pixels are also located per patch for the probe (small or thin: a global label alone
#: teaches a tiny ViT too slowly to see them)
DENSE_FINDINGS = ("pneumothorax", "nodule")


@dataclass
class Pool:
    """Phantoms ready for the model: pixel values as the processor makes them, and the labels."""

    pixel_values: torch.Tensor  # [n, 3, H, W]
    labels: torch.Tensor  # [n, len(FINDINGS)] float 0/1
    patch_labels: torch.Tensor | None = None  # [n, grid*grid, len(DENSE_FINDINGS)]: where each finding is

    def __len__(self) -> int:
        return self.labels.shape[0]


def _render(args) -> tuple[np.ndarray, list[bool], np.ndarray | None]:
    """One training phantom; with `grid`, also where each DENSE_FINDINGS finding lies on the patch grid: the
    patches holding a pixel of its mask (`finding_mask`, the same rule as the phantoms' masks)."""
    import copy

    seed, index, p_finding, grid = args
    rng = np.random.default_rng([seed, 7, index])  # three words: never a generate_phantoms study
    draws = rng.random(len(FINDINGS))
    findings = {name: bool(d < p_finding) for name, d in zip(FINDINGS, draws, strict=True)}
    state = copy.deepcopy(rng)
    image = render_phantom(rng, findings, PHANTOM_SIZE)
    where = None
    if grid:
        block = PHANTOM_SIZE // grid
        where = np.zeros((grid * grid, len(DENSE_FINDINGS)), dtype=np.float32)
        for k, finding in enumerate(DENSE_FINDINGS):
            if findings[finding]:
                mask = finding_mask(state, image, findings, finding)
                where[:, k] = mask.reshape(grid, block, grid, block).any(axis=(1, 3)).reshape(-1)
    return to_uint8(image), [findings[f] for f in FINDINGS], where


def render_pool(processor, n: int, seed: int, p_finding: float = 0.5, workers: int = 2,
                cache_dir: str | Path | None = None, grid: int = 0) -> Pool:
    """n training phantoms drawn from seed (independent of any `generate_phantoms` seed), as pixel values;
    with `grid` (patches per side), per-patch locations of DENSE_FINDINGS too.

    With `cache_dir` (or $QUADRANT_POOL_CACHE) the pool is kept there as a .pt file and reused: the same
    arguments always give the same pool, so this only saves the rendering time."""
    cache_dir = os.environ.get("QUADRANT_POOL_CACHE") if cache_dir is None else cache_dir
    if cache_dir:
        path = Path(cache_dir) / f"pool-{seed}-{n}-{p_finding}-{PHANTOM_SIZE}-{grid}.pt"
        if path.is_file():
            return Pool(**torch.load(path))
        pool = render_pool(processor, n, seed, p_finding, workers, cache_dir="", grid=grid)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(vars(pool), path)
        return pool
    jobs = [(seed, i, p_finding, grid) for i in range(n)]
    if workers > 1 and n >= 64:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            rendered = list(pool.map(_render, jobs, chunksize=32))
    else:
        rendered = [_render(job) for job in jobs]
    images = [Image.fromarray(img).convert("RGB") for img, _, _ in rendered]
    pixels = pixel_values(processor, images)
    labels = torch.tensor([lab for _, lab, _ in rendered], dtype=torch.float32)
    where = torch.from_numpy(np.stack([w for _, _, w in rendered])) if grid else None
    return Pool(pixels, labels, where)


def pixel_values(processor, images: Sequence[Image.Image], chunk: int = 256) -> torch.Tensor:
    """The processor's own resizing and normalisation, exactly what scoring feeds the vision tower."""
    parts = []
    for start in range(0, len(images), chunk):
        out = processor.image_processor(images=list(images[start : start + chunk]), return_tensors="pt")
        parts.append(out["pixel_values"].float())
    return torch.cat(parts)


def gray_pixels(processor, n: int, value: int = 128) -> torch.Tensor:
    """Uniform gray images (the `blank` ablation), as pixel values."""
    image = Image.new("RGB", (PHANTOM_SIZE, PHANTOM_SIZE), (value, value, value))
    return pixel_values(processor, [image]).expand(n, -1, -1, -1).clone()


# ------------------------------------------------------------------------------------------- prompt layout


@dataclass
class Phrasing:
    finding: str
    text: str
    suffix: list[int]  # token ids after the shared image prefix
    question_len: int  # how many of the suffix's first tokens are the question (noise goes there)
    text_only: list[int]  # the whole prompt rendered without the image
    text_head: int  # tokens of text_only before the question ("<s>USER:")

    def noisy_text_only(self, rng: np.random.Generator, noise_ids: torch.Tensor, p_replace: float = 0.10,
                        p_drop: float = 0.05) -> list[int]:
        """The image-less prompt with its question noised like `noisy` does it."""
        body = self.text_only[self.text_head :]
        q_len = len(body) - (len(self.suffix) - self.question_len)
        return self.text_only[: self.text_head] + noisy(body, q_len, rng, noise_ids, p_replace, p_drop)


@dataclass
class PromptLayout:
    """Every training phrasing tokenized the way Quadrant tokenizes it, split at the shared image prefix."""

    prefix: list[int]
    image_token_id: int
    phrasings: dict[str, list[Phrasing]]
    pad_id: int
    noise_ids: torch.Tensor  # token ids a noisy question may borrow
    yes_id: int
    no_id: int
    answer_yes: tuple[int, ...]
    answer_no: tuple[int, ...]

    @classmethod
    def build(cls, processor, family, texts: dict[str, Sequence[str]] = TRAIN_PHRASINGS) -> "PromptLayout":
        from quadrant.answers import find_answer_tokens

        tok = processor.tokenizer
        dummy = Image.new("RGB", (PHANTOM_SIZE, PHANTOM_SIZE), (128, 128, 128))
        encoded: dict[str, list[tuple[str, list[int], list[int]]]] = {}
        for finding, phrasings in texts.items():
            encoded[finding] = []
            for text in phrasings:
                prompt = DEFAULT_PROMPT.replace("{question}", text)
                with_image = family.encode(processor, [family.render(processor, prompt, True)], [dummy])
                text_only = family.encode(processor, [family.render(processor, prompt, False)], None)
                encoded[finding].append(
                    (text, with_image["input_ids"][0].tolist(), text_only["input_ids"][0].tolist())
                )
        rows = [ids for items in encoded.values() for _, ids, _ in items]
        prefix_len = min(len(r) for r in rows) - 1
        for i in range(prefix_len):
            if any(r[i] != rows[0][i] for r in rows):
                prefix_len = i
                break
        prefix = rows[0][:prefix_len]
        image_token = tok.convert_tokens_to_ids(getattr(tok, "image_token", None) or "<image>")
        if image_token in rows[0][prefix_len:]:
            raise ValueError("the shared prefix does not cover the image tokens")
        # the instruction tail ("Answer with yes or no. ASSISTANT:") is the longest common suffix
        tail = 0
        shortest = min(len(r) for r in rows) - prefix_len
        while tail < shortest and all(r[-1 - tail] == rows[0][-1 - tail] for r in rows):
            tail += 1
        text_rows = [t for items in encoded.values() for _, _, t in items]
        text_head = 0
        while all(len(r) > text_head and r[text_head] == text_rows[0][text_head] for r in text_rows):
            text_head += 1
        answers = find_answer_tokens(tok)
        special = set(tok.all_special_ids)
        noise = torch.tensor([i for i in range(len(tok)) if i not in special], dtype=torch.long)
        phr = {
            f: [Phrasing(f, text, ids[prefix_len:], len(ids) - prefix_len - tail, t_ids, text_head)
                for text, ids, t_ids in items]
            for f, items in encoded.items()
        }
        return cls(
            prefix=prefix,
            image_token_id=int(image_token),
            phrasings=phr,
            pad_id=int(tok.pad_token_id),
            noise_ids=noise,
            yes_id=tok.encode(" yes", add_special_tokens=False)[0],
            no_id=tok.encode(" no", add_special_tokens=False)[0],
            answer_yes=answers.yes,
            answer_no=answers.no,
        )


def noisy(ids: list[int], question_len: int, rng: np.random.Generator, noise_ids: torch.Tensor,
          p_replace: float = 0.10, p_drop: float = 0.05) -> list[int]:
    """The question's tokens with some replaced by random tokens and some dropped; the tail untouched."""
    out = []
    for i, token in enumerate(ids):
        if i < question_len:
            r = rng.random()
            if r < p_drop and question_len > 2:
                continue
            if r < p_drop + p_replace:
                token = int(noise_ids[rng.integers(len(noise_ids))])
        out.append(token)
    return out


def pad_rows(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and their attention mask."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


# ------------------------------------------------------------------------------------------------ forward


def image_features(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """Projected patch features [B, N, D], the way LLaVA selects them (config's layer and strategy)."""
    config = model.config
    out = model.model.vision_tower(pixel_values, output_hidden_states=True)
    hidden = out.hidden_states[config.vision_feature_layer]
    if config.vision_feature_select_strategy == "default":
        hidden = hidden[:, 1:]
    return model.model.multi_modal_projector(hidden)


def logits_with_image(model, layout: PromptLayout, features: torch.Tensor, suffixes: Sequence[Sequence[int]],
                      per_image: int) -> torch.Tensor:
    """Next-token logits at the answer position for `per_image` suffixes per image, rows image-major.

    The prefix (with the image's features in place of the image tokens) runs once per image; its KV cache
    is repeated for that image's suffixes, which run as one right-padded batch.
    """
    lm = model.model.language_model
    batch = features.shape[0]
    prefix = torch.tensor(layout.prefix, dtype=torch.long)
    embeds = lm.embed_tokens(prefix).unsqueeze(0).expand(batch, -1, -1)
    is_image = (prefix == layout.image_token_id).nonzero().squeeze(1)
    embeds = embeds.clone()
    embeds[:, is_image] = features.to(embeds.dtype)
    out = lm(inputs_embeds=embeds, use_cache=True)
    cache = out.cache
    cache.batch_repeat_interleave(per_image)
    ids, mask = pad_rows(suffixes, layout.pad_id)
    p = len(layout.prefix)
    full_mask = torch.cat([torch.ones(ids.shape[0], p, dtype=torch.long), mask], dim=1)
    position_ids = (torch.arange(ids.shape[1]) + p).unsqueeze(0).expand(ids.shape[0], -1)
    hidden = lm(input_ids=ids, attention_mask=full_mask, position_ids=position_ids, cache=cache,
                use_cache=True).last_hidden_state
    last = mask.sum(dim=1) - 1
    picked = hidden[torch.arange(ids.shape[0]), last]
    return model.lm_head(picked)


def logits_text_only(model, layout: PromptLayout, rows: Sequence[Sequence[int]]) -> torch.Tensor:
    """Next-token logits at the answer position of whole prompts rendered without the image."""
    lm = model.model.language_model
    ids, mask = pad_rows(rows, layout.pad_id)
    hidden = lm(input_ids=ids, attention_mask=mask).last_hidden_state
    last = mask.sum(dim=1) - 1
    return model.lm_head(hidden[torch.arange(ids.shape[0]), last])


def margins(logits: torch.Tensor, layout: PromptLayout) -> torch.Tensor:
    """Quadrant's margin: logsumexp over the yes spellings minus logsumexp over the no spellings."""
    return margins_from_logits(logits, AnswerTokens(yes=layout.answer_yes, no=layout.answer_no))


def answer_ce(logits: torch.Tensor, targets: torch.Tensor, layout: PromptLayout) -> torch.Tensor:
    """Cross-entropy of the " yes" / " no" token after "ASSISTANT:" (targets: 1 yes, 0 no)."""
    ids = torch.where(targets > 0.5, torch.tensor(layout.yes_id), torch.tensor(layout.no_id))
    return F.cross_entropy(logits.float(), ids)


def symmetric_kl(m1: torch.Tensor, m2: torch.Tensor) -> torch.Tensor:
    """KL(p1||p2) + KL(p2||p1) between the yes/no distributions sigmoid(m1) and sigmoid(m2), averaged.

    For Bernoulli distributions this is (p1 - p2) * (m1 - m2), with p = sigmoid(m)."""
    return ((torch.sigmoid(m1) - torch.sigmoid(m2)) * (m1 - m2)).mean()


# --------------------------------------------------------------------------------------------- probe head


class ProbeHead(torch.nn.Module):
    """Multi-label finding probe: per finding, attention pooling over the projected patch tokens, then a
    linear read-out; and per patch, a linear read-out of where the DENSE_FINDINGS lie. Trains the vision
    tower and projector before the language model joins (stage 1); dropped after training."""

    def __init__(self, width: int, n_findings: int = len(FINDINGS), n_dense: int = len(DENSE_FINDINGS)):
        super().__init__()
        self.norm = torch.nn.LayerNorm(width)
        self.query = torch.nn.Parameter(torch.randn(n_findings, width) * width**-0.5)
        self.key = torch.nn.Linear(width, width)
        self.read = torch.nn.Parameter(torch.randn(n_findings, width) * width**-0.5)
        self.bias = torch.nn.Parameter(torch.zeros(n_findings))
        self.dense = torch.nn.Linear(width, n_dense)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(finding logits [B, F], per-patch logits [B, N, len(DENSE_FINDINGS)])."""
        x = self.norm(features)  # [B, N, D]
        scores = torch.einsum("bnd,fd->bfn", self.key(x), self.query) * x.shape[-1] ** -0.5
        pooled = torch.einsum("bfn,bnd->bfd", scores.softmax(dim=-1), x)
        return torch.einsum("bfd,fd->bf", pooled, self.read) + self.bias, self.dense(x)

    def loss(self, features: torch.Tensor, labels: torch.Tensor, where: torch.Tensor | None) -> torch.Tensor:
        """BCE on the findings, plus BCE on their locations where known."""
        logits, dense = self(features)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        if where is not None:
            loss = loss + F.binary_cross_entropy_with_logits(dense, where)
        return loss


# ---------------------------------------------------------------------------------------------- schedules


def cosine_lr(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 5% of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


@dataclass
class Clock:
    """Wall time of named phases, for the model card."""

    started: float = field(default_factory=time.perf_counter)
    phases: dict[str, float] = field(default_factory=dict)
    _last: float = field(default_factory=time.perf_counter)

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        self.phases[name] = round(now - self._last, 1)
        self._last = now
        return self.phases[name]

    def total(self) -> float:
        return round(time.perf_counter() - self.started, 1)


def write_json(path: Path, data: dict) -> None:
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)
