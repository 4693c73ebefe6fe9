"""Train the bundled `demo` model: a 1.9M-parameter LLaVA that reads synthetic chest phantoms.

    python -m quadrant.models.train_demo --out models/demo     # about 7 minutes on 2 CPU cores (longer
                                                               # when other jobs share them)

Two stages (end-to-end training from scratch sat at chance for hundreds of steps):

1. The vision tower and projector learn the five findings through a probe head (attention pooling per
   finding over the projected patch tokens, multi-label BCE) plus, for the small or thin findings
   (pneumothorax, nodule), a per-patch BCE on where the renderer drew them. The language model waits.
2. End to end: each step takes 12 phantoms and asks each about all five findings in two training
   phrasings. Loss = cross-entropy of the answer token (" yes" / " no" after "ASSISTANT:") + a symmetric
   KL between the two phrasings' yes/no distributions + 0.5 x the stage-1 probe loss. Question tokens
   are noised (10% replaced, 5% dropped) so that unseen words in a held-out phrasing do not derail the
   answer. Learning rates 5e-4 vision / 1e-3 projector / 2e-3 language model, cosine decay.

The model never sees a prompt without its image: it is taught no answer for Quadrant's text-only pass.
Everything is seeded; the same seed and thread count give the same weights. The phrasings Quadrant asks
at check time are held out (training.assert_held_out). The model card is models/demo/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import training as T
from .phantoms import FINDINGS
from .tiny import TinySpec, build_tiny

DEMO_DIR = Path(__file__).resolve().parent / "demo"


@dataclass(frozen=True)
class DemoRecipe:
    """Every knob of the recipe; the defaults made the committed weights."""

    seed: int = 0
    pool: int = 4000  # training phantoms, drawn once, reused
    val: int = 100  # validation phantoms (training phrasings), logged only
    stage1_steps: int = 700
    stage1_batch: int = 32
    stage1_lr: float = 1e-3
    stage2_steps: int = 1500
    stage2_images: int = 12
    lr_vision: float = 5e-4
    lr_projector: float = 1e-3
    lr_lm: float = 2e-3
    bce_weight: float = 0.5
    dense: bool = True  # also locate pneumothorax and nodule per patch in the probe loss
    kl_weight: float = 1.0
    p_replace: float = 0.10
    p_drop: float = 0.05
    warmup: int = 30
    weight_decay: float = 0.01
    threads: int = 2
    log_every: int = 25
    # model shape
    hidden: int = 160
    layers: int = 3
    heads: int = 4
    kv_heads: int = 4
    intermediate: int = 432
    vision_hidden: int = 128
    vision_layers: int = 3
    image_size: int = 64
    patch_size: int = 8
    #: which vision layer feeds the projector: the last (-1), so that no CLIP layer is computed for nothing
    vision_feature_layer: int = -1

    def spec(self) -> TinySpec:
        return TinySpec(
            hidden=self.hidden, layers=self.layers, heads=self.heads, kv_heads=self.kv_heads,
            intermediate=self.intermediate, vision_hidden=self.vision_hidden, vision_layers=self.vision_layers,
            image_size=self.image_size, patch_size=self.patch_size, seed=self.seed,
            extra_words=T.tokenizer_words(),
        )


def _load(path: Path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from quadrant.families import family_for_config

    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)
    return model, processor, family_for_config(model.config)


def stage1(model, head: T.ProbeHead, pool: T.Pool, val: T.Pool, recipe: DemoRecipe, rng) -> list[float]:
    """Vision tower + projector + probe head on the multi-label BCE."""
    params = [*model.model.vision_tower.parameters(), *model.model.multi_modal_projector.parameters(),
              *head.parameters()]
    opt = torch.optim.AdamW(params, lr=recipe.stage1_lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: T.cosine_lr(s, recipe.stage1_steps, recipe.warmup))
    model.train()
    losses = []
    for step in range(recipe.stage1_steps):
        idx = torch.from_numpy(rng.choice(len(pool), min(recipe.stage1_batch, len(pool)), replace=False))
        loss = head.loss(T.image_features(model, pool.pixel_values[idx]), pool.labels[idx], _where(pool, idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (step + 1) % recipe.log_every == 0 or step + 1 == recipe.stage1_steps:
            T.log(f"stage 1 step {step + 1}/{recipe.stage1_steps} bce {np.mean(losses[-recipe.log_every:]):.4f}")
    acc = probe_accuracy(model, head, val)
    T.log("stage 1 probe accuracy " + " ".join(f"{f}={a:.3f}" for f, a in acc.items()))
    return losses


@torch.no_grad()
def probe_accuracy(model, head, pool: T.Pool) -> dict[str, float]:
    model.eval()
    logits = torch.cat([head(T.image_features(model, pool.pixel_values[i : i + 64]))[0] for i in range(0, len(pool), 64)])
    model.train()
    right = ((logits > 0).float() == pool.labels).float().mean(dim=0)
    return {f: round(float(a), 4) for f, a in zip(FINDINGS, right, strict=True)}


def _where(pool: T.Pool, idx) -> torch.Tensor | None:
    return None if pool.patch_labels is None else pool.patch_labels[idx]


def stage2_batch(layout: T.PromptLayout, pool: T.Pool, idx, rng, recipe: DemoRecipe):
    """Each image asked every finding in two different training phrasings: (suffixes, targets)."""
    suffixes, targets = [], []
    for b in idx.tolist():
        for f_index, finding in enumerate(FINDINGS):
            options = layout.phrasings[finding]
            for k in rng.choice(len(options), 2, replace=False):
                p = options[k]
                suffixes.append(T.noisy(p.suffix, p.question_len, rng, layout.noise_ids, recipe.p_replace, recipe.p_drop))
                targets.append(float(pool.labels[b, f_index]))
    return suffixes, torch.tensor(targets)


def stage2(model, head, layout: T.PromptLayout, pool: T.Pool, val: T.Pool, recipe: DemoRecipe, rng) -> list[float]:
    """End to end: answer CE + symmetric KL between phrasing pairs + 0.5 x probe BCE."""
    groups = [
        {"params": list(model.model.vision_tower.parameters()), "lr": recipe.lr_vision},
        {"params": list(model.model.multi_modal_projector.parameters()) + list(head.parameters()),
         "lr": recipe.lr_projector},
        {"params": list(model.model.language_model.parameters()) + list(model.lm_head.parameters()),
         "lr": recipe.lr_lm},
    ]
    opt = torch.optim.AdamW(groups, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: T.cosine_lr(s, recipe.stage2_steps, recipe.warmup))
    params = [p for g in groups for p in g["params"]]
    per_image = 2 * len(FINDINGS)
    model.train()
    losses = []
    for step in range(recipe.stage2_steps):
        idx = torch.from_numpy(rng.choice(len(pool), min(recipe.stage2_images, len(pool)), replace=False))
        suffixes, targets = stage2_batch(layout, pool, idx, rng, recipe)
        features = T.image_features(model, pool.pixel_values[idx])
        logits = T.logits_with_image(model, layout, features, suffixes, per_image)
        m = T.margins(logits, layout)
        ce = T.answer_ce(logits, targets, layout)
        kl = T.symmetric_kl(m[0::2], m[1::2])
        bce = head.loss(features, pool.labels[idx], _where(pool, idx))
        loss = ce + recipe.kl_weight * kl + recipe.bce_weight * bce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        acc = ((m > 0).float() == targets).float().mean().item()
        losses.append(loss.item())
        if (step + 1) % recipe.log_every == 0 or step + 1 == recipe.stage2_steps:
            T.log(f"stage 2 step {step + 1}/{recipe.stage2_steps} loss {np.mean(losses[-recipe.log_every:]):.4f} "
                  f"(ce {ce.item():.3f} kl {kl.item():.3f} bce {bce.item():.3f}) batch acc {acc:.3f}")
    return losses


@torch.no_grad()
def answer_accuracy(model, layout: T.PromptLayout, pool: T.Pool) -> dict[str, float]:
    """Accuracy on training phrasings (all of them, clean), per finding: a sanity check, not the metric."""
    model.eval()
    right = {f: [] for f in FINDINGS}
    for start in range(0, len(pool), 16):
        pix = pool.pixel_values[start : start + 16]
        suffixes, finding_of = [], []
        for f in FINDINGS:
            for p in layout.phrasings[f]:
                suffixes.append(p.suffix)
                finding_of.append(f)
        per_image = len(suffixes)
        m = T.margins(T.logits_with_image(model, layout, T.image_features(model, pix), suffixes * len(pix), per_image), layout)
        m = m.view(len(pix), per_image)
        for b in range(len(pix)):
            for j, f in enumerate(finding_of):
                right[f].append(float((m[b, j] > 0) == (pool.labels[start + b, FINDINGS.index(f)] > 0.5)))
    model.train()
    return {f: round(float(np.mean(v)), 4) for f, v in right.items()}


def train_demo(out_dir: str | Path = DEMO_DIR, recipe: DemoRecipe = DemoRecipe()) -> dict:
    """Build, train and save the demo model in out_dir; return the training record (also saved there)."""
    T.setup_torch(recipe.threads, recipe.seed)
    T.assert_held_out()
    clock = T.Clock()
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        build_tiny("llava", Path(tmp) / "init", recipe.spec())
        model, processor, family = _load(Path(tmp) / "init")
    model.config.vision_feature_layer = recipe.vision_feature_layer
    layout = T.PromptLayout.build(processor, family)
    T.log(f"model: {sum(p.numel() for p in model.parameters()):,} parameters; prefix {len(layout.prefix)} tokens")
    grid = recipe.image_size // recipe.patch_size if recipe.dense else 0
    pool = T.render_pool(processor, recipe.pool, recipe.seed, workers=recipe.threads, grid=grid)
    val = T.render_pool(processor, recipe.val, recipe.seed + 1_000_003, workers=recipe.threads)
    T.log(f"rendered {len(pool)} training and {len(val)} validation phantoms in {clock.lap('phantoms')} s")
    rng = np.random.default_rng(recipe.seed)
    torch.manual_seed(recipe.seed)
    head = T.ProbeHead(recipe.hidden)
    loss1 = stage1(model, head, pool, val, recipe, rng)
    probe = probe_accuracy(model, head, val)
    T.log(f"stage 1 done in {clock.lap('stage 1')} s")
    loss2 = stage2(model, head, layout, pool, val, recipe, rng)
    T.log(f"stage 2 done in {clock.lap('stage 2')} s")
    val_acc = answer_accuracy(model, layout, val)
    T.log("validation accuracy (training phrasings) " + " ".join(f"{f}={a:.3f}" for f, a in val_acc.items()))
    model.eval()
    if out_dir.exists():
        for child in out_dir.iterdir():  # keep a model card written by hand
            if child.name != "README.md":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    from .tiny.common import save

    save(model, processor, out_dir)
    record = {
        "recipe": dataclasses.asdict(recipe),
        "parameters": sum(p.numel() for p in model.parameters()),
        "wall_s": {**clock.phases, "total": clock.total()},
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "stage1_probe_accuracy": probe,
        "validation_accuracy_training_phrasings": val_acc,
        "stage1_loss_first_last": [loss1[0], float(np.mean(loss1[-20:]))] if loss1 else None,
        "stage2_loss_first_last": [loss2[0], float(np.mean(loss2[-20:]))] if loss2 else None,
        "train_phrasings": {f: list(v) for f, v in T.TRAIN_PHRASINGS.items()},
    }
    T.write_json(out_dir / "training.json", record)
    T.log(f"saved {out_dir} ({record['wall_s']['total']} s in all)")
    record["losses"] = {"stage1": loss1, "stage2": loss2}
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEMO_DIR))
    parser.add_argument("--seed", type=int, default=DemoRecipe.seed)
    parser.add_argument("--stage1-steps", type=int, default=DemoRecipe.stage1_steps)
    parser.add_argument("--stage2-steps", type=int, default=DemoRecipe.stage2_steps)
    parser.add_argument("--pool", type=int, default=DemoRecipe.pool)
    parser.add_argument("--threads", type=int, default=DemoRecipe.threads)
    parser.add_argument("--stage1-lr", type=float, default=DemoRecipe.stage1_lr)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    recipe = DemoRecipe(seed=args.seed, stage1_steps=args.stage1_steps, stage2_steps=args.stage2_steps,
                        pool=args.pool, threads=args.threads, stage1_lr=args.stage1_lr)
    train_demo(args.out, recipe)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
