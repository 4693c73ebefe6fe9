"""`quadrant doctor`: what this machine can run, one line each, and the known traps. Nothing is loaded
but the libraries themselves; the command always exits 0 (it reports, it does not judge)."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    found = lines()
    width = max(len(label) for label, _ in found) + 2
    for label, text in found:
        print(f"{label:<{width}}{text}")
    return 0


def lines() -> list[tuple[str, str]]:
    from quadrant import __version__

    found = [("quadrant", f"{__version__} on Python {platform.python_version()} ({sys.executable})")]
    found += [_cpu()]
    found += _torch()
    found += _onnxruntime()
    found += [_export_stage(), _tensorrt(), _nvidia_smi()]
    found += _presets()
    return found


def _version(module: str) -> str | None:
    try:
        return importlib.import_module(module).__version__
    except ImportError:
        return None


#: The instruction sets ONNX Runtime's int8 kernels are built on, as Linux names them in /proc/cpuinfo: with
#: none of them an int8 export saves size, not time (README, Export)
INT8_INSTRUCTIONS = {"avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI", "amx_int8": "AMX"}


def _cpu() -> tuple[str, str]:
    """The CPU and whether int8 can be fast on it: the same export is faster than float32 on one machine and
    slower on another, by these flags alone."""
    if platform.machine().lower() not in ("x86_64", "amd64"):  # ARM's int8 instructions (SDOT, I8MM) differ
        return "cpu", f"{platform.machine()}, {os.cpu_count()} cores: not x86, int8 speed not judged here"
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "cpu", f"{platform.processor() or platform.machine()}: instruction sets not readable on this system"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.machine())
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    cores = os.cpu_count()
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    int8 = [label for flag, label in INT8_INSTRUCTIONS.items() if flag in flags]
    if int8:
        verdict = f"{', '.join(int8)}: int8 ONNX exports run on integer dot-product kernels"
    else:
        verdict = "no VNNI or AMX: int8 ONNX exports save size, not time, here"
    return "cpu", f"{name}, {cores} cores, {vector}; {verdict}"


def _torch() -> list[tuple[str, str]]:
    import torch

    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
    if not torch.cuda.is_available():
        return [("torch", f"{torch.__version__} ({build}): device cpu; no CUDA GPU visible to PyTorch")]
    found = [("torch", f"{torch.__version__} ({build}): devices cpu, "
              + ", ".join(f"cuda:{i}" for i in range(torch.cuda.device_count())))]
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        found.append((f"  cuda:{index}", f"{torch.cuda.get_device_name(index)}, {free / 2**30:.1f} of "
                      f"{total / 2**30:.1f} GiB free, bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}"))
    return found


def _onnxruntime() -> list[tuple[str, str]]:
    from quadrant.backends.onnx import runtime_distributions

    installed = runtime_distributions()
    if not installed:
        return [("onnxruntime", "not installed: --backend onnx needs pip install 'quadrant[onnx]' (or [onnx-gpu])")]
    import onnxruntime

    found = [("onnxruntime", f"{onnxruntime.__version__} ({' and '.join(installed)}): providers "
              + ", ".join(_provider_states(onnxruntime)))]
    if len(installed) == 2:
        found.append(("  TRAP", "onnxruntime and onnxruntime-gpu are both installed and share one module, so which "
                      "one runs depends on install order; --backend onnx refuses to start: pip uninstall -y "
                      "onnxruntime onnxruntime-gpu, then install one of them"))
    return found


def _provider_states(onnxruntime) -> list[str]:
    """Each listed provider, and whether it really starts: a GPU wheel lists CUDA and TensorRT everywhere,
    and falls back to the CPU where their libraries or a GPU are missing."""
    states = []
    for provider in onnxruntime.get_available_providers():
        if provider == "CPUExecutionProvider":
            states.append("CPU")
            continue
        name = provider.replace("ExecutionProvider", "")
        states.append(f"{name} ({'starts' if _starts(onnxruntime, provider) else 'listed, cannot start here'})")
    return states


def _starts(onnxruntime, provider: str) -> bool:
    """Whether a one-node graph gets `provider` when asked for it (it silently falls back when it cannot)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4
    try:
        session = onnxruntime.InferenceSession(model.SerializeToString(), sess_options=options,
                                               providers=[provider, "CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - a provider that cannot start raises whatever its library raises
        return False
    return session.get_providers()[0] == provider


def _export_stage() -> tuple[str, str]:
    versions = {name: _version(name) for name in ("onnx", "onnxscript")}
    if None in versions.values():
        missing = ", ".join(k for k, v in versions.items() if v is None)
        return "export onnx", f"not available ({missing} missing): pip install 'quadrant[onnx]'"
    return "export onnx", f"onnx {versions['onnx']}, onnxscript {versions['onnxscript']}: quadrant export onnx runs"


def _tensorrt() -> tuple[str, str]:
    version = _version("tensorrt")
    if version is None:
        return "tensorrt", ("not installed (quadrant export tensorrt and --device tensorrt need it: pip install "
                            "tensorrt --extra-index-url https://pypi.nvidia.com, on a machine with an NVIDIA GPU)")
    return "tensorrt", f"{version}"


def _nvidia_smi() -> tuple[str, str]:
    """The GPUs the driver sees, whatever the Python packages can use."""
    if shutil.which("nvidia-smi") is None:
        return "nvidia-smi", "not found: no NVIDIA driver here"
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.free,memory.total,driver_version",
                               "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "nvidia-smi", f"did not answer ({exc})"
    gpus = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    return "nvidia-smi", "; ".join(gpus) if gpus else f"no GPU listed ({done.stderr.strip() or 'no output'})"


def _presets() -> list[tuple[str, str]]:
    """Which backend, device and dtype each preset would get here, and whether its files are here."""
    from quadrant.backends import choose_backend
    from quadrant.errors import QuadrantError
    from quadrant.loading import ModelSpec, resolve_device, resolve_dtype, resolve_source
    from quadrant.models.presets import PRESETS

    found = []
    for name in PRESETS.names():
        try:
            source = resolve_source(ModelSpec(model=name))
        except QuadrantError as exc:
            found.append((f"preset {name}", f"not here: {exc}"))
            continue
        backend = choose_backend(source.source)
        device = resolve_device("auto")
        dtype = str(resolve_dtype("auto", device, None)).replace("torch.", "")
        found.append((f"preset {name}", f"{backend} on {device.type}, {dtype}; {_where(source.source)}"))
    return found


def _where(source: str) -> str:
    from pathlib import Path

    if Path(source).is_dir():
        return "files here"
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(source, "config.json")
    return "in the local Hugging Face cache" if isinstance(cached, str) else f"not downloaded ({source})"
