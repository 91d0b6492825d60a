# syntax=docker/dockerfile:1.7
# Batch jobs through the `credit` CLI: data, features, train, materialize, drift.
# Build from the repository root: docker build -f docker/jobs.Dockerfile -t credit-jobs .
# Dependencies come only from docker/requirements-jobs.lock (pinned, hashed; regenerate with
# docker/compile-locks.sh); gRPC stubs are generated here from protos/, never copied in.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY docker/requirements-build.lock docker/requirements-jobs.lock /tmp/
RUN python -m venv /opt/build \
    && /opt/build/bin/pip install --require-hashes --no-deps -r /tmp/requirements-build.lock \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes -r /tmp/requirements-jobs.lock
COPY protos/ protos/
COPY credit/ credit/
COPY services/ services/
COPY training/ training/
# Stubs (credit/v1/*_pb2*.py), then the app on the venv's path and everything byte-compiled
# (unchecked-hash: the .pyc stay valid whatever mtimes the copy gives them).
RUN /opt/build/bin/python -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. \
        --grpc_python_out=. protos/credit/v1/common.proto protos/credit/v1/scoring.proto \
        protos/credit/v1/explainer.proto \
    && rm -rf protos \
    && echo /app > /opt/venv/lib/python3.11/site-packages/credit_app.pth \
    && /opt/venv/bin/python -m compileall -q --invalidation-mode unchecked-hash /opt/venv /app

FROM ${PYTHON_IMAGE}
# LightGBM needs the OpenMP runtime (pinned to bookworm's version).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 \
    && rm -rf /var/lib/apt/lists/*
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
