# Quadrant with the bundled demo model: `docker run --rm -v $PWD:/data quadrant check --image /data/x.png --question "..."`
# CPU by default; for a GPU image build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False \
    PYTHONUNBUFFERED=1

WORKDIR /opt/quadrant
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"
COPY pyproject.toml README.md ./
COPY runtime runtime
COPY export export
COPY app app
COPY models models
RUN pip install ".[dicom-codecs]"

RUN useradd --create-home quadrant
USER quadrant
WORKDIR /home/quadrant
ENTRYPOINT ["quadrant"]
CMD ["--help"]
