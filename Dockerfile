# Quadrant with the bundled demo models. By default it serves the clinician app on port 7860:
#   docker build -t quadrant .
#   docker run --rm -p 7860:7860 -v quadrant-audit:/home/quadrant/.local/share/quadrant quadrant
# Any other command runs instead of the app, e.g.
#   docker run --rm -v "$PWD:/data" quadrant check --image /data/study.png --question "Is there a pneumothorax?"
# The CPU image is the default. The CUDA image (torch's CUDA build, onnxruntime-gpu; needs the NVIDIA
# container toolkit on the host and `docker run --gpus all`):
#   docker build --build-arg VARIANT=cuda -t quadrant:cuda .
ARG VARIANT=cpu

FROM python:3.11-slim AS base
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
# a face with Chinese, Japanese and Korean letters, for a question asked in them (runtime/fonts.py); Debian's
# current build, as the base image's other packages
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/quadrant

# torch's CPU wheel and onnxruntime (the default image)
FROM base AS torch-cpu
ARG TORCH_VERSION=2.13.0
ENV ONNX_EXTRA=onnx
RUN pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu

# torch's CUDA 12.6 build, whose CUDA and cuDNN libraries (pip packages) onnxruntime-gpu also loads
FROM base AS torch-cuda
ARG TORCH_VERSION=2.13.0
ENV ONNX_EXTRA=onnx-gpu
RUN pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cu126

# hadolint ignore=DL3006
FROM torch-${VARIANT} AS quadrant
WORKDIR /opt/quadrant
COPY pyproject.toml README.md ./
COPY runtime runtime
COPY export export
COPY app app
COPY models models
# this installs the local package; its dependencies are bounded in pyproject.toml
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[app,dicom-codecs,${ONNX_EXTRA}]"

# a non-root user; the audit log lives in its data folder (mount a volume there to keep it)
RUN groupadd --gid 10001 quadrant \
    && useradd --uid 10001 --gid 10001 --create-home quadrant \
    && install -d -o 10001 -g 10001 /home/quadrant/.local/share/quadrant
USER 10001:10001
WORKDIR /home/quadrant

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4).status != 200)"]
ENTRYPOINT ["quadrant"]
# 0.0.0.0 inside the container: the published port is the boundary. Add --auth FILE (mounted) for a login.
CMD ["app", "--host", "0.0.0.0", "--port", "7860"]
