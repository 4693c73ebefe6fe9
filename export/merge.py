"""`quadrant export merge`: fold a LoRA adapter into its base weights and save a plain model directory.

The merged model scores at the base model's speed with no peft at run time, and is what the ONNX export
starts from. Merging must not change answers, so the merged logits are compared with the unmerged peft
model's on a probe prompt, and the export is refused above 1e-4 (README, "Export: ONNX and TensorRT").
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from quadrant.errors import ModelError, OptionError
from quadrant.fingerprint import fingerprint
from quadrant.backends import load_model
from quadrant.loading import ModelSpec, resolve_source

PARITY_TOLERANCE = 1e-4
MANIFEST = "quadrant_export.json"


def merge(model: str, adapter: str | None, out_dir: str | Path) -> dict:
    """Merge, save model and processor to out_dir, check parity, write the export manifest; return it."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise OptionError(f"{out} is not empty; choose a new --out folder")
    spec = ModelSpec(model=model, adapter=adapter, device="cpu", dtype="float32")
    _, source, adapter_dir, _ = resolve_source(spec)
    if adapter_dir is None:
        raise OptionError("nothing to merge: give --adapter DIR (or a preset that has one)")
    loaded = load_model(spec)
    error = parity(loaded, source, adapter_dir)
    if error > PARITY_TOLERANCE:
        raise ModelError(f"merged logits differ from the adapter's by {error:.2g} (> {PARITY_TOLERANCE}); not saved")
    out.mkdir(parents=True, exist_ok=True)
    loaded.model.save_pretrained(out)
    loaded.processor.save_pretrained(out)
    manifest = {
        "kind": "merge",
        "source": {"model": source, "adapter": adapter_dir, "fingerprint": loaded.fingerprint},
        "fingerprint": fingerprint(out),
        "max_abs_logit_diff": error,
        "versions": _versions(),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


@torch.inference_mode()
def parity(loaded, source: str, adapter_dir: str) -> float:
    """Largest |logit| difference, merged vs unmerged, over a probe prompt with a probe image."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    unmerged = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(source), adapter_dir).eval()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    rendered = loaded.family.render(loaded.processor, loaded.wrap("Is there a pleural effusion?"), True)
    inputs = loaded.family.encode(loaded.processor, [rendered], [image])
    merged_logits = loaded.model(**inputs).logits
    unmerged_logits = unmerged(**inputs).logits
    return float((merged_logits - unmerged_logits).abs().max())


def _versions() -> dict:
    import peft
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}
