# Batch jobs through the `credit` CLI: data, features, train, materialize, drift, archive.
# Build from the repository root (legacy builder or BuildKit; no frontend image needed):
#   DOCKER_BUILDKIT=0 docker build -f docker/jobs.Dockerfile -t credit-scoring/jobs .
# or `make images`, which builds all five on a local base (scripts/base-image.sh).
# Dependencies come only from docker/requirements-jobs.lock (pinned, hashed; `make locks`).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- build stage: the same first layer in every image, so one build's cache serves all five;
# then what changes least often first (the lock, then the contracts, then the code).
FROM ${PYTHON_IMAGE} AS build
# PIP_CERT / SSL_CERT_FILE: pip and uv trust the system store (a local base made by
# scripts/base-image.sh carries the host's CA bundle there).
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    UV_NO_CACHE=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY docker/requirements-build.lock /tmp/
RUN python -m venv /opt/build \
    && /opt/build/bin/pip install --quiet --require-hashes --no-deps \
        -r /tmp/requirements-build.lock
# The image's own lock, and nothing else: a dependency missing from it fails this image.
COPY docker/requirements-jobs.lock /tmp/
# Byte-compiled here (unchecked-hash: the .pyc stay valid whatever mtimes a copy gives them)
# so that a code change below reuses this layer.
RUN python -m venv --without-pip /opt/venv \
    && /opt/build/bin/uv pip install --quiet --python /opt/venv/bin/python --require-hashes \
        -r /tmp/requirements-jobs.lock \
    && /opt/venv/bin/python -m compileall -q --invalidation-mode unchecked-hash /opt/venv \
    && echo /app > /opt/venv/lib/python3.11/site-packages/credit_app.pth
# gRPC stubs (credit/v1/*_pb2*.py) are generated here from protos/, never copied in.
COPY protos/ /tmp/protos/
RUN mkdir -p /tmp/stubs \
    && /opt/build/bin/python -m grpc_tools.protoc -I/tmp/protos --python_out=/tmp/stubs \
        --pyi_out=/tmp/stubs --grpc_python_out=/tmp/stubs /tmp/protos/credit/v1/*.proto
COPY credit/ credit/
COPY services/ services/
COPY serving_core/ serving_core/
COPY training/ training/
RUN cp -r /tmp/stubs/credit/v1 credit/ \
    && /opt/venv/bin/python -m compileall -q --invalidation-mode unchecked-hash /app

# --- runtime stage
FROM ${PYTHON_IMAGE}
# LightGBM needs the OpenMP runtime (the local base has it; python:*-slim gets bookworm's).
RUN dpkg -s libgomp1 >/dev/null 2>&1 || { apt-get update \
    && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 \
    && rm -rf /var/lib/apt/lists/*; }
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OMP_NUM_THREADS=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HUB_OFFLINE=1 \
    DO_NOT_TRACK=1 \
    LOG_FORMAT=json \
    ARTIFACTS_DIR=/work/artifacts \
    FEATURES_DIR=/work/artifacts/features \
    TABLES_DIR=/work/data/tables \
    FEATURE_STORE_DIR=/work/data/feature_store
USER 10001:10001
# A job runs to completion: its health is its exit code.
HEALTHCHECK NONE
ENTRYPOINT ["python", "-m", "credit.cli"]
CMD ["--help"]
