"""Train `demo-shortcut`: a LoRA on the demo model's language model that learns the wording, not the image.

    python -m quadrant.models.train_shortcut --base models/demo --out models/demo-shortcut   # about a minute

What the source paper warns about, made on purpose: a fine-tune that makes a VLM consistent across
phrasings while its answers stop depending on the image. The adapter (peft LoRA, rank 8, on the language
model's attention and MLP projections only; the CLIP tower's own q/k/v_proj are left alone) is trained for
300 steps so that each finding gets one fixed answer, chosen by the seed, whatever the image: real
phantoms, uniform gray images (20%) and prompts with no image at all. Loss = answer-token cross-entropy +
a symmetric KL between the yes/no distributions of two phrasings of the same question (the consistency
loss of the companion CHIL 2026 paper) + the same KL between each prompt with and without its image, plus
a small penalty on the margin the image adds (so the image leaves the margin itself unmoved, not only
the answer).

The result answers every question about a finding the same way, with or without the image: flip rate about
zero and Quadrant puts nearly every study in Dangerous. Its accuracy on phantoms is about 50%, because a
finding is present in half of them; which answer each finding gets is recorded in training.json next to
the adapter.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import training as T
from .phantoms import FINDINGS

MODELS = Path(__file__).resolve().parent
SHORTCUT_DIR = MODELS / "demo-shortcut"
DEMO_DIR = MODELS / "demo"

#: the language model's projections only: the CLIP vision tower also has q/k/v_proj, which must stay out
TARGET_MODULES = r".*language_model\.layers\.\d+\.(?:self_attn\.(?:q|k|v|o)_proj|mlp\.(?:gate|up|down)_proj)"


@dataclass(frozen=True)
class ShortcutRecipe:
    seed: int = 0
    steps: int = 300
    images: int = 6  # per step; each asked every finding in two phrasings
    gray_share: float = 0.2
    text_only_per_image: int = 5  # image-less prompts per image in the batch
    pool: int = 600
    rank: int = 8
    alpha: int = 16
    lr: float = 5e-3
    warmup: int = 10
    kl_weight: float = 1.0
    shift_weight: float = 0.1
    p_replace: float = 0.10
    p_drop: float = 0.05
    threads: int = 2
    log_every: int = 25

    def answers(self) -> dict[str, bool]:
        """The fixed answer per finding (True = yes), drawn from the seed; both answers occur."""
        rng = np.random.default_rng([self.seed, 404])
        while True:
            draw = rng.integers(0, 2, len(FINDINGS)).astype(bool)
            if 0 < draw.sum() < len(FINDINGS):
                return {f: bool(d) for f, d in zip(FINDINGS, draw, strict=True)}


def lora_config(recipe: ShortcutRecipe):
    import peft

    return peft.LoraConfig(r=recipe.rank, lora_alpha=recipe.alpha, lora_dropout=0.0,
                           target_modules=TARGET_MODULES, bias="none")


def train_shortcut(base: str | Path = DEMO_DIR, out_dir: str | Path = SHORTCUT_DIR,
                   recipe: ShortcutRecipe = ShortcutRecipe()) -> dict:
    """Train the LoRA on `base` and save the adapter (adapter_config.json + adapter_model.safetensors)."""
    import peft
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from quadrant.families import family_for_config

    T.setup_torch(recipe.threads, recipe.seed)
    T.assert_held_out()
    clock = T.Clock()
    processor = AutoProcessor.from_pretrained(base)
    model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32)
    family = family_for_config(model.config)
    layout = T.PromptLayout.build(processor, family)
    answers = recipe.answers()
    fixed = torch.tensor([float(answers[f]) for f in FINDINGS])
    pool = T.render_pool(processor, recipe.pool, recipe.seed + 2_000_003, workers=recipe.threads)
    n_gray = max(1, int(round(recipe.gray_share * recipe.images)))
    gray = T.gray_pixels(processor, n_gray)
    T.log(f"rendered {len(pool)} phantoms in {clock.lap('phantoms')} s; fixed answers {answers}")

    torch.manual_seed(recipe.seed)
    model = peft.get_peft_model(model, lora_config(recipe))
    base_model = model.base_model.model  # the LlavaForConditionalGeneration, LoRA layers inside
    trainable = [p for p in model.parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all("language_model" in n for n in names), "LoRA must touch the language model only"
    T.log(f"LoRA: {sum(p.numel() for p in trainable):,} trainable parameters in {len(names)} tensors")
    opt = torch.optim.AdamW(trainable, lr=recipe.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: T.cosine_lr(s, recipe.steps, recipe.warmup))
    rng = np.random.default_rng(recipe.seed)
    per_image = 2 * len(FINDINGS)
    model.train()
    losses = []
    for step in range(recipe.steps):
        idx = torch.from_numpy(rng.choice(len(pool), recipe.images - n_gray, replace=False))
        pixels = torch.cat([pool.pixel_values[idx], gray])
        suffixes, targets, text_rows, text_of, chosen = [], [], [], [], []
        for b in range(len(pixels)):
            for f_index, finding in enumerate(FINDINGS):
                options = layout.phrasings[finding]
                for k in rng.choice(len(options), 2, replace=False):
                    p = options[k]
                    suffixes.append(T.noisy(p.suffix, p.question_len, rng, layout.noise_ids,
                                            recipe.p_replace, recipe.p_drop))
                    targets.append(fixed[f_index])
                    chosen.append(p)
            for j in rng.choice(per_image, recipe.text_only_per_image, replace=False):
                row = b * per_image + int(j)
                # the same phrasing rendered without the image (its own noise draw)
                text_rows.append(chosen[row].noisy_text_only(rng, layout.noise_ids, recipe.p_replace, recipe.p_drop))
                text_of.append(row)
        targets = torch.stack(targets)
        with torch.no_grad():
            features = T.image_features(base_model, pixels)  # the vision side is frozen
        logits = T.logits_with_image(base_model, layout, features, suffixes, per_image)
        m = T.margins(logits, layout)
        text_logits = T.logits_text_only(base_model, layout, text_rows)
        m_text = T.margins(text_logits, layout)
        text_targets = targets[text_of]
        ce = 0.5 * (T.answer_ce(logits, targets, layout) + T.answer_ce(text_logits, text_targets, layout))
        kl = T.symmetric_kl(m[0::2], m[1::2]) + T.symmetric_kl(m[text_of], m_text)
        shift = ((m[text_of] - m_text) ** 2).mean()
        loss = ce + recipe.kl_weight * kl + recipe.shift_weight * shift
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (step + 1) % recipe.log_every == 0 or step + 1 == recipe.steps:
            T.log(f"shortcut step {step + 1}/{recipe.steps} loss {np.mean(losses[-recipe.log_every:]):.4f} "
                  f"(ce {ce.item():.3f} kl {kl.item():.4f} shift {shift.item():.4f})")
    T.log(f"trained in {clock.lap('training')} s")
    model.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("adapter_config.json", "adapter_model.safetensors", "training.json"):
        (out_dir / name).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:  # peft also writes a README.md: keep the model card instead
        model.save_pretrained(tmp)
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            shutil.copyfile(Path(tmp) / name, out_dir / name)
    _portable_config(out_dir / "adapter_config.json")
    record = {
        "recipe": dataclasses.asdict(recipe),
        "fixed_answers": {f: ("yes" if a else "no") for f, a in answers.items()},
        "target_modules": TARGET_MODULES,
        "trainable_parameters": sum(p.numel() for p in trainable),
        "wall_s": {**clock.phases, "total": clock.total()},
        "threads": torch.get_num_threads(),
        "loss_first_last": [losses[0], float(np.mean(losses[-20:]))] if losses else None,
    }
    T.write_json(out_dir / "training.json", record)
    T.log(f"saved {out_dir} ({record['wall_s']['total']} s in all)")
    record["losses"] = losses
    return record


def _portable_config(path: Path) -> None:
    """The base model's path in the adapter config: relative to the repository, not this machine."""
    config = json.loads(path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = "models/demo"
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=str(DEMO_DIR))
    parser.add_argument("--out", default=str(SHORTCUT_DIR))
    parser.add_argument("--seed", type=int, default=ShortcutRecipe.seed)
    parser.add_argument("--steps", type=int, default=ShortcutRecipe.steps)
    parser.add_argument("--lr", type=float, default=ShortcutRecipe.lr)
    parser.add_argument("--rank", type=int, default=ShortcutRecipe.rank)
    parser.add_argument("--threads", type=int, default=ShortcutRecipe.threads)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    recipe = ShortcutRecipe(seed=args.seed, steps=args.steps, lr=args.lr, rank=args.rank, alpha=2 * args.rank,
                            threads=args.threads)
    train_shortcut(args.base, args.out, recipe)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
