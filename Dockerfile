# The service image: onnxruntime-gpu + Flask + gunicorn serving the bundled models/, no PyTorch.
#
# Why python:3.11-slim with CUDA from pip wheels, not an nvidia/cuda:*-runtime base: the CUDA
# and cuDNN libraries come from the nvidia-* wheels that onnxruntime-gpu itself declares
# (its [cuda,cudnn] extras), pinned in deploy/constraints-cuda.txt to the CUDA 13.0 release
# onnxruntime-gpu 1.31.1 is built against. One pinned source of CUDA libraries, so they cannot
# drift from the build onnxruntime expects (an nvidia/cuda base would carry a second, unrelated
# copy); only the libraries the CUDA provider loads (no full toolkit, no apt CUDA repository),
# so the image is smaller; and the base gets Debian security updates through the python
# image. lab/runtime.py calls onnxruntime.preload_dlls() so these libraries are found
# without LD_LIBRARY_PATH. The host needs the NVIDIA driver (>= 580 for CUDA 13) and the
# NVIDIA container toolkit; it mounts libcuda.so at run time. Without a GPU the service falls
# back to the CPU provider (DEVICE=auto).
#
# Build arguments: BASE, the image both stages start from (a local stand-in where no registry
# is reachable: deploy/podman.sh); RUNTIME, gpu (the default) or cpu (plain onnxruntime, no
# CUDA wheels: the image CI builds and runs, tests/deploy/test_image.py). Each installs exactly
# its lock file, deploy/requirements-<RUNTIME>.lock (`make lock`), every file checked against
# its sha256. See deploy/README.md.
ARG BASE=python:3.11-slim-bookworm

# ---- build: a virtualenv with the service's dependencies ------------------------------------
FROM ${BASE} AS build
ARG RUNTIME=gpu

ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY deploy/requirements-${RUNTIME}.lock ./requirements.lock

# --no-deps: the lock already lists every dependency, resolved and hashed (pyproject.toml's
# dependencies, with onnxruntime-gpu's CUDA and cuDNN wheels and nvidia-cublas for gpu). The
# project itself is not installed: the final stage runs lab/ and service/ from /app. The layer
# cache (`--layers`) reuses this step until the lock file changes.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock

# Fail the build if the dependencies are inconsistent, if anything pulled PyTorch in, or if the
# GPU image's onnxruntime lacks the CUDA provider.
RUN /opt/venv/bin/pip check \
    && /opt/venv/bin/python -c "import importlib.util, sys; sys.exit('torch must not be in the service image' if importlib.util.find_spec('torch') else 0)" \
    && if [ "$RUNTIME" = gpu ]; then /opt/venv/bin/python -c "import onnxruntime as ort; assert 'CUDAExecutionProvider' in ort.get_available_providers(), ort.get_available_providers()"; fi

# ---- runtime ---------------------------------------------------------------------------------
FROM ${BASE}

LABEL org.opencontainers.image.title="collapse-lab" \
      org.opencontainers.image.description="Mode-collapse lab: ONNX Runtime (CUDA) service generating and diagnosing samples of GANs and score models" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-bookworm"

# A fixed, numeric, unprivileged user: Kubernetes' runAsNonRoot can only verify a numeric USER.
# No home directory and no login shell; the code and models stay root-owned and read-only to it.
RUN groupadd --system --gid 10001 app \
    && useradd --system --no-log-init --uid 10001 --gid 10001 \
        --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app \
    && install -d -o 10001 -g 10001 -m 0700 /tmp/metrics

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# models/ first: it changes least, so a code change rebuilds only the two small layers after it.
COPY models ./models
COPY lab ./lab
COPY service ./service

# PROMETHEUS_MULTIPROC_DIR: per-worker metric files (gunicorn.conf.py empties it at start); it,
# DATA_DIR (uploaded references; mount a volume there to keep them) and CUDA_CACHE_PATH (the driver's PTX JIT cache) live under /tmp, the one writable place when
# the root filesystem is read-only (deploy/kubernetes.yaml mounts an emptyDir there).
# HOME=/tmp: the user has no home directory, and the libraries that write under $HOME
# (matplotlib's config and font cache, onnxruntime's telemetry ID) otherwise log a failed write
# on the read-only root at every start (tests/deploy/test_image.py).
# NVIDIA_DRIVER_CAPABILITIES tells the NVIDIA container runtime to mount the compute libraries
# (libcuda); which GPUs are visible is left to `docker run --gpus` or the device plugin.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MODEL_REPOSITORY=/app/models \
    DATA_DIR=/tmp/data \
    PROMETHEUS_MULTIPROC_DIR=/tmp/metrics \
    CUDA_CACHE_PATH=/tmp/cuda-cache \
    HOME=/tmp \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    HOST=0.0.0.0 \
    PORT=8000

USER 10001:10001
EXPOSE 8000

# Liveness only (the process answers); readiness (models loaded and warmed up) is /readyz.
# start-period covers model loading and the CUDA warm-up before failures count.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

# Exec form: gunicorn is PID 1 and receives SIGTERM directly (graceful_timeout in the conf).
CMD ["gunicorn", "-c", "service/gunicorn.conf.py"]
