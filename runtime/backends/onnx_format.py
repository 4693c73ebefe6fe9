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
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ModelError

MANIFEST_NAME = "quadrant_onnx.json"
VALIDATION_NAME = "validation.json"  # the verdict-level validation report, beside the graphs
EMBEDDINGS = "embeddings.safetensors"
#: the export layout this code writes and reads; bump it when files, names or graph signatures change
FORMAT = 2
#: how a float32 export may be shrunk: int8 (dynamic: weights and activations), int4 (weights only)
QUANTIZATIONS = ("int8", "int4")
_PRECISIONS = {"float32": "fp32", "float16": "fp16"}


@dataclass(frozen=True)
class OnnxManifest:
    """What `quadrant export onnx` wrote, and from what."""

    family: str
    dtype: str  # "float32" or "float16": what the graphs compute in
    opset: int
    source: dict  # {"model", "adapter", "fingerprint"}
    files: dict  # role ("vision", "decoder", "embeddings") -> file name
    sizes: dict  # every file of the export (external data included) -> bytes
    graphs: dict  # graph role -> {"inputs": [{"name", "shape", "dtype"}], "outputs": [...]}
    text: dict  # {"layers", "kv_heads", "head_dim", "hidden", "vocab", "image_token_id", "position_streams", ...}
    answer_tokens: dict  # {"yes": [...], "no": [...]}
    prompt: str
    versions: dict
    validation: dict = field(default_factory=dict)
    generation: dict = field(default_factory=dict)  # the source preset's scoring mode and token budget
    quantization: str | None = None  # "int8" or "int4" when the float32 graphs were quantized
    unquantized_sizes: dict | None = None  # the float32 export's `sizes`, where this one was quantized from it
    format: int = FORMAT
    kind: str = "onnx"

    @property
    def precision(self) -> str:
        """fp32, fp16, int8 or int4: what a person calls this export's numbers."""
        return self.quantization or _PRECISIONS[self.dtype]

    @property
    def model_bytes(self) -> int:
        """What the export ships: every file but the validation report."""
        return shipped_bytes(self.sizes)

    @property
    def weight_bytes(self) -> int:
        """The graphs' weights (their external data): what quantization shrinks."""
        return graph_weight_bytes(self.sizes)

    @property
    def verdicts(self) -> dict | None:
        """The verdict-level validation's summary, where one was run."""
        return self.validation.get("verdicts")


def shipped_bytes(sizes: dict) -> int:
    """The bytes of an export's files (as `OnnxManifest.sizes` lists them) but its validation report, which
    grows with the studies validated on and is not loaded to run the model."""
    return sum(size for name, size in sizes.items() if name != VALIDATION_NAME)


def graph_weight_bytes(sizes: dict) -> int:
    """The bytes of the graphs' external data: their weights, apart from the graphs' structure and the
    embedding table (which quantization leaves in float)."""
    return sum(size for name, size in sizes.items() if name.endswith(".onnx.data"))


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


def decoder_names(layers: int, deepstack: bool = False) -> tuple[list[str], list[str]]:
    """The decoder graph's input and output names (the runtime feeds and reads them by name)."""
    past = [f"past_{kind}_{i}" for i in range(layers) for kind in ("key", "value")]
    present = [f"present_{kind}_{i}" for i in range(layers) for kind in ("key", "value")]
    extra = ["deepstack_embeds"] if deepstack else []
    return ["inputs_embeds", "attention_mask", "position_ids", "read_index", *extra, *past], ["logits", *present]


def validation_summary(verdicts: dict) -> str:
    """One line for a person: "int8, 99.2% of 1000 verdicts as fp32 on 200 phantoms (seed 2031)". A share short of
    all is never rounded up to 100%."""
    shown = f"{math.floor(1000 * verdicts['quadrant_agreement']) / 10:g}%"
    return f"{verdicts['precision']}, {shown} of {verdicts['verdicts']} verdicts as fp32 on {verdicts['on']}"
