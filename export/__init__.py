"""The export stage: merging LoRA adapters into base weights and compiling models to ONNX / TensorRT."""
