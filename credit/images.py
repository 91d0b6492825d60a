"""``make images``: the five container images, built from the repository with Docker.

Each image installs only its own hashed lock (``docker/requirements-<image>.lock``) on
``PYTHON_IMAGE``: ``python:3.11-slim-bookworm`` where registries can be pulled, or the local
Debian base that ``scripts/base-image.sh`` makes where they cannot. The legacy builder is
used (``DOCKER_BUILDKIT=0``): BuildKit's ``# syntax=`` frontend is an image from a registry.
The Dockerfiles share their first layers, so the builder's cache serves all five.

Each image's build time and size are merged into ``artifacts/bench.json`` (``images``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

IMAGES = ("scoring", "explainer", "gateway", "ui", "jobs")
REPOSITORY = "credit-scoring"  # local tags: credit-scoring/<image>:<tag>
DEFAULT_TAG = "dev"
REPO_ROOT = Path(__file__).resolve().parents[1]


def image_ref(image: str, tag: str = DEFAULT_TAG) -> str:
    return f"{REPOSITORY}/{image}:{tag}"


def image_size(ref: str) -> int:
    out = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", ref],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


def build_image(image: str, *, tag: str, python_image: str, log: Path) -> dict[str, Any]:
    """``docker build`` of one image (host network: pip/uv and apt reach the registries
    through the host's own routes); the builder's output goes to ``log``."""
    ref = image_ref(image, tag)
    started = time.perf_counter()
    with log.open("w") as out:
        result = subprocess.run(
            [
                "docker",
                "build",
                "--network",
                "host",
                "--build-arg",
                f"PYTHON_IMAGE={python_image}",
                "-f",
                f"docker/{image}.Dockerfile",
                "-t",
                ref,
                ".",
            ],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )
    seconds = round(time.perf_counter() - started, 1)
    if result.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-40:])
        raise RuntimeError(f"building {ref} failed (log: {log}):\n{tail}")
    return {"ref": ref, "build_seconds": seconds, "size_mb": round(image_size(ref) / 1e6, 1)}


def build_images(
    images: tuple[str, ...] = IMAGES,
    *,
    tag: str = DEFAULT_TAG,
    python_image: str,
    artifacts: Path,
) -> dict[str, Any]:
    """Build ``images`` one after the other (2 cores: parallel builds only contend) and
    record their figures; the first build warms the shared layers for the others."""
    from credit.bench import record_result

    logs = artifacts / "images"
    logs.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {"python_image": python_image}
    for image in images:
        print(f"building {image_ref(image, tag)} ...", file=sys.stderr, flush=True)
        figures[image] = build_image(
            image, tag=tag, python_image=python_image, log=logs / f"{image}.log"
        )
        print(
            f"  {figures[image]['build_seconds']} s, {figures[image]['size_mb']} MB",
            file=sys.stderr,
            flush=True,
        )
    record_result(artifacts, "images", figures)
    return figures
