# syntax=docker/dockerfile:1.7
# REST gateway (FastAPI): HTTP :8000 with /healthz, /readyz, /metrics.
# Build from the repository root: docker build -f docker/gateway.Dockerfile -t credit-gateway .
# Dependencies come only from docker/requirements-gateway.lock (pinned, hashed; regenerate with
# docker/compile-locks.sh); gRPC stubs are generated here from protos/, never copied in.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY docker/requirements-build.lock docker/requirements-gateway.lock /tmp/
RUN python -m venv /opt/build \
    && /opt/build/bin/pip install --require-hashes --no-deps -r /tmp/requirements-build.lock \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes -r /tmp/requirements-gateway.lock
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
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
COPY docker/http_health.py /usr/local/bin/http_health.py
WORKDIR /app
# GATEWAY_API_KEYS_FILE is a path to the mounted Secret, not a secret value.
# hadolint ignore=DL3064
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OMP_NUM_THREADS=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HUB_OFFLINE=1 \
    DO_NOT_TRACK=1 \
    LOG_FORMAT=json \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_API_KEYS_FILE=/var/run/secrets/credit/api-keys.json
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/usr/local/bin/http_health.py", "8000", "/healthz"]
CMD ["python", "-m", "services.gateway"]
