# The GPU training runner: ratchet with a CUDA build of torch and the offline base model inside,
# running a Prefect worker for the `gpu` work pool. `--build-arg VARIANT=cpu` builds a CPU image.
# Mount the project (params.yaml, dvc.yaml, data.dvc, the DVC cache) at /project.
ARG VARIANT=gpu
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04 AS base-gpu
FROM python:3.11-slim-bookworm AS base-cpu

# hadolint ignore=DL3006
FROM base-${VARIANT}
ARG VARIANT=gpu
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    DO_NOT_TRACK=true MLFLOW_DISABLE_TELEMETRY=true PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DVC_NO_ANALYTICS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 \
    PREFECT_LOGGING_EXTRA_LOGGERS=ratchet RATCHET_PROJECT_DIR=/project

# The CUDA base has no Python 3.11; the slim one has it already.
# hadolint ignore=DL3008
RUN if [ "$VARIANT" = "gpu" ]; then \
      apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv git \
      && rm -rf /var/lib/apt/lists/* && ln -sf /usr/bin/python3.11 /usr/local/bin/python; \
    else \
      apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*; \
    fi

WORKDIR /opt/ratchet
COPY pyproject.toml README.md ./
COPY requirements/ requirements/
COPY src/ src/
COPY flows/ flows/
COPY docker/ docker/
# On Linux, PyPI's torch==2.13.0 is the CUDA build (it runs on CPU too). For a smaller CPU image,
# pass TORCH_INDEX_URL pointing at PyTorch's CPU wheel index.
ARG TORCH_INDEX_URL=""
RUN sh docker/install.sh /opt/venv "$TORCH_INDEX_URL"
ENV PATH=/opt/venv/bin:$PATH

# The worker serves RATCHET_POOL (gpu; set cpu for the CPU variant's pool) after `ratchet doctor`.
ENV RATCHET_POOL=${VARIANT}
WORKDIR /project
ENTRYPOINT ["/opt/ratchet/docker/entrypoint.sh"]
