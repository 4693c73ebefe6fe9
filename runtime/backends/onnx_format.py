"""The ONNX export format: what an export folder holds and how its manifest reads. The export stage
(`quadrant export onnx`) writes it with `write_manifest`; the ONNX backend reads it back with its mirror
`read_manifest`. It lives with the backend because reading is what the runtime must do on its own: a
deployment that runs an export needs no part of the export stage.

The runtime trusts nothing in an export folder that the manifest does not vouch for: the layout version
(`format`), each file's size (a truncated copy is caught before ONNX Runtime reads it), the graphs' input
and output names and shapes, and what the export was made from (source fingerprint, adapter, opset,
dtype, library versions).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ModelError

MANIFEST_NAME = "quadrant_onnx.json"
#: the export layout this code writes and reads; bump it when files, names or graph signatures change
FORMAT = 1


@dataclass(frozen=True)
class OnnxManifest:
    """What `quadrant export onnx` wrote, and from what."""

    family: str
    dtype: str  # "float32" or "float16"
    opset: int
    source: dict  # {"model", "adapter", "fingerprint"}
    files: dict  # role ("vision", "decoder", "embeddings") -> file name
    sizes: dict  # every file of the export (external data included) -> bytes
    graphs: dict  # graph role -> {"inputs": [{"name", "shape", "dtype"}], "outputs": [...]}
    text: dict  # {"layers", "kv_heads", "head_dim", "hidden", "vocab", "image_token_id"}
    answer_tokens: dict  # {"yes": [...], "no": [...]}
    prompt: str
    versions: dict
    validation: dict = field(default_factory=dict)
    generation: dict = field(default_factory=dict)  # the source preset's scoring mode and token budget
    format: int = FORMAT
    kind: str = "onnx"


def write_manifest(directory: Path | str, manifest: OnnxManifest) -> Path:
    path = Path(directory) / MANIFEST_NAME
    path.write_text(json.dumps(asdict(manifest), indent=2) + "\n", encoding="utf-8")
    return path


def is_export(directory: Path | str) -> bool:
    """Whether a folder is an ONNX export (has the manifest), whatever state its files are in."""
    return (Path(directory) / MANIFEST_NAME).is_file()


def read_manifest(directory: Path | str) -> OnnxManifest:
    """The manifest of an export folder, refused with one line if it is from another layout version,
    unreadable, or if a file it lists is missing or has another size than when it was written."""
    directory = Path(directory)
    path = directory / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"{directory} is not an ONNX export (no {MANIFEST_NAME}); make one with "
                         "`quadrant export onnx --model M --out DIR`") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("kind") != "onnx":
        raise ModelError(f"{path} is not an ONNX export manifest")
    if data.get("format") != FORMAT:
        raise ModelError(
            f"{directory} is an ONNX export of layout format {data.get('format')!r} "
            f"(quadrant {data.get('versions', {}).get('quadrant', '?')}); this quadrant reads format {FORMAT}: "
            "export the model again with this version"
        )
    try:
        manifest = OnnxManifest(**data)
    except TypeError as exc:
        raise ModelError(f"{path} does not have the fields of format {FORMAT}: {exc}") from exc
    for name, size in manifest.sizes.items():
        file = directory / name
        if not file.is_file():
            raise ModelError(f"{directory} is an incomplete ONNX export: {name} is missing")
        if file.stat().st_size != size:
            raise ModelError(f"{file} is {file.stat().st_size} bytes but was exported as {size}: "
                             "truncated or replaced; export the model again")
    return manifest


def decoder_names(layers: int) -> tuple[list[str], list[str]]:
    """The decoder graph's input and output names (the runtime feeds and reads them by name)."""
    past = [f"past_{kind}_{i}" for i in range(layers) for kind in ("key", "value")]
    present = [f"present_{kind}_{i}" for i in range(layers) for kind in ("key", "value")]
    return ["inputs_embeds", "attention_mask", "position_ids", "read_index", *past], ["logits", *present]
