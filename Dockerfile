# syntax=docker/dockerfile:1.7
#
# LiveTag images. Two targets from one file:
#
#   docker build --target cpu -t livetag:cpu .   # python:3.11-slim, ONNX Runtime on CPU
#   docker build --target gpu -t livetag:gpu .   # NVIDIA TensorRT runtime image, TensorRT + CUDA torch
#
# Both run as the non-root user ``livetag`` (uid 10001), read model packages from the /models volume
# and keep built TensorRT engines in the engine-cache volume, and answer a HEALTHCHECK on /healthz of
# the metrics port (9108). The entrypoint is the ``livetag`` CLI; the default command is ``infer``.
# CI lints this file with hadolint (.hadolint.yaml); it is not built there (no Docker engine).

ARG PYTHON_IMAGE=python:3.11.9-slim-bookworm
ARG TENSORRT_IMAGE=nvcr.io/nvidia/tensorrt:24.05-py3

# ---------------------------------------------------------------------------------------------------
# wheels: the livetag wheel (pure Python), built once and installed by both runtime targets.
FROM ${PYTHON_IMAGE} AS wheels
WORKDIR /src
COPY pyproject.toml README.md ./
COPY stream ./stream
COPY engines ./engines
COPY consumers ./consumers
COPY training ./training
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------------
# cpu: the inference path without torch (ONNX Runtime, FAISS on CPU, PyAV with its own FFmpeg).
FROM ${PYTHON_IMAGE} AS cpu
LABEL org.opencontainers.image.title="livetag-cpu" \
      org.opencontainers.image.description="LiveTag live-broadcast product tagging (ONNX Runtime on CPU)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.com/livetag"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LIVETAG_OBSERVABILITY_PORT=9108 \
    LIVETAG_OBSERVABILITY_LOG_FORMAT=json
RUN groupadd --gid 10001 livetag \
    && useradd --uid 10001 --gid livetag --create-home --home-dir /home/livetag --shell /usr/sbin/nologin livetag \
    && mkdir -p /models /home/livetag/.cache/livetag/tensorrt \
    && chown -R livetag:livetag /models /home/livetag/.cache
COPY --from=wheels /wheels /tmp/wheels
COPY requirements/runtime-py311.txt /tmp/constraints.txt
RUN python -m pip install --no-cache-dir -c /tmp/constraints.txt /tmp/wheels/livetag-*.whl \
    && rm -rf /tmp/wheels /tmp/constraints.txt
COPY --chown=livetag:livetag models /models
COPY --chown=livetag:livetag scripts/build_engines.py /opt/livetag/scripts/build_engines.py
USER 10001:10001
WORKDIR /home/livetag
VOLUME ["/models", "/home/livetag/.cache/livetag/tensorrt"]
EXPOSE 9108
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["livetag"]
CMD ["infer", "--detector", "/models/detector", "--embedder", "/models/embedder", "--person-model", "/models/person"]

# ---------------------------------------------------------------------------------------------------
# gpu: TensorRT 10 runtime image (CUDA 12, Python 3.10) plus CUDA torch for device buffers and NVDEC.
FROM ${TENSORRT_IMAGE} AS gpu
LABEL org.opencontainers.image.title="livetag-gpu" \
      org.opencontainers.image.description="LiveTag live-broadcast product tagging (TensorRT on NVIDIA GPUs)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.com/livetag"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LIVETAG_MODELS_BACKEND=tensorrt \
    LIVETAG_OBSERVABILITY_PORT=9108 \
    LIVETAG_OBSERVABILITY_LOG_FORMAT=json
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN groupadd --gid 10001 livetag \
    && useradd --uid 10001 --gid livetag --create-home --home-dir /home/livetag --shell /usr/sbin/nologin livetag \
    && mkdir -p /models /home/livetag/.cache/livetag/tensorrt \
    && chown -R livetag:livetag /models /home/livetag/.cache
COPY --from=wheels /wheels /tmp/wheels
COPY requirements/runtime-py310.txt /tmp/constraints.txt
RUN python3 -m pip install --no-cache-dir -c /tmp/constraints.txt torch==2.3.1 /tmp/wheels/livetag-*.whl \
    && rm -rf /tmp/wheels /tmp/constraints.txt
COPY --chown=livetag:livetag models /models
COPY --chown=livetag:livetag scripts/build_engines.py /opt/livetag/scripts/build_engines.py
USER 10001:10001
WORKDIR /home/livetag
VOLUME ["/models", "/home/livetag/.cache/livetag/tensorrt"]
EXPOSE 9108
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["livetag"]
CMD ["infer", "--detector", "/models/detector", "--embedder", "/models/embedder", "--person-model", "/models/person", "--backend", "tensorrt"]
