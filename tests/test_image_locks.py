"""Each image's lock holds what its code imports, so the locks cannot drift from the imports.

Every image installs only ``docker/requirements-<image>.lock``. Starting from each image's
entry points, the project modules they can reach are followed through every import (those
inside functions too: a lazy import runs on some request), and each third-party package
imported on the way must be installed by that image's lock. The images built and run by
``make e2e`` prove the same for the paths a start-up and a request take; this check also
covers the paths no test drives, and runs without Docker.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT = {"credit", "serving_core", "services", "training"}
ENTRY_POINTS = {
    "scoring": ["services.scoring.__main__", "docker/grpc_healthcheck.py"],
    "explainer": ["services.explainer.__main__", "docker/grpc_healthcheck.py"],
    "gateway": ["services.gateway.__main__", "docker/http_healthcheck.py"],
    "ui": ["services.ui.__main__", "docker/http_healthcheck.py"],
    "jobs": ["credit.cli", "training.drift"],
}
# Reachable in the source but never run in that image, each with its reason.
NOT_IN_IMAGE = {
    "jobs": {
        # `credit services start|stop` and `credit serve` run the platform on a laptop
        # (make up); in a cluster each service is its own image.
        "credit.stack",
        "services.scoring.server",
        "services.explainer.server",
        # `credit bench` drives a running stack with wrk from a workstation.
        "credit.bench",
        "services.bench",
        # `credit images build` calls Docker from a workstation.
        "credit.images",
        # `credit features build --engine spark` runs under spark-submit in a Spark image
        # (docs/spark.md); the jobs image builds features with polars.
        "training.features.spark",
    },
}


def module_file(name: str) -> Path | None:
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


@cache
def imports_of(path: Path, package: str) -> tuple[set[str], set[str]]:
    """(project modules, third-party top-level names) one file imports."""
    tree = ast.parse(path.read_text(), str(path))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _type_checking_only(node):
            skip |= {id(n) for n in ast.walk(node)}
    project: set[str] = set()
    external: set[str] = set()

    def record(name: str, members: list[str]) -> None:
        top = name.split(".")[0]
        if top in PROJECT:
            project.add(name)
            project.update(f"{name}.{m}" for m in members if module_file(f"{name}.{m}"))
        elif top not in sys.stdlib_module_names and top != "__future__":
            external.add(top)

    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                record(alias.name, [])
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against this file's package
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(parts + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            record(name, [a.name for a in node.names])
    return project, external


def reachable(entries: list[str], excluded: set[str]) -> tuple[set[str], set[str]]:
    """(project modules reached, third-party names they import)."""
    seen: set[str] = set()
    external: set[str] = set()
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name in seen or name in excluded:
            continue
        seen.add(name)
        path = REPO / name if name.endswith(".py") else module_file(name)
        if path is None:
            continue
        parts = name.split(".")
        # Importing a.b.c runs a/__init__ and a/b/__init__ first.
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        package = name if path.name == "__init__.py" else ".".join(parts[:-1])
        project, names = imports_of(path, package)
        external |= names
        todo += sorted(project)
    return seen, external


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_packages(image: str) -> set[str]:
    text = (REPO / "docker" / f"requirements-{image}.lock").read_text()
    return {normalise(m) for m in re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", text, re.M)}


@pytest.mark.parametrize("image", sorted(ENTRY_POINTS))
def test_the_image_lock_installs_everything_its_code_imports(image: str) -> None:
    modules, names = reachable(ENTRY_POINTS[image], NOT_IN_IMAGE.get(image, set()))
    assert f"services.{image}.server" in modules or image in {"ui", "gateway", "jobs"}
    distributions = importlib.metadata.packages_distributions()
    installed = lock_packages(image)
    missing = {}
    for name in sorted(names):
        providers = {normalise(d) for d in distributions.get(name, [])}
        if not providers:
            missing[name] = "no installed distribution provides it"
        elif not providers & installed:
            missing[name] = f"provided by {sorted(providers)}"
    assert not missing, f"docker/requirements-{image}.lock lacks what the code imports: {missing}"


def test_the_check_sees_a_missing_package() -> None:
    """The checker on a case it must refuse: the UI's lock lacks lightgbm, which the
    scoring code imports."""
    _, names = reachable(ENTRY_POINTS["scoring"], set())
    assert "lightgbm" in names and "polars" in names and "grpc" in names
    assert "lightgbm" not in lock_packages("ui")
