"""The make targets the README documents (the stable interface) exist and do real work:
each one's recipe, dry-run by make itself, runs a command and is no placeholder."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def documented_targets() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Make targets", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `make ([a-z0-9-]+)", section, flags=re.MULTILINE)


def test_the_readme_documents_the_targets() -> None:
    assert {"up", "down", "test", "bench", "materialize"} <= set(documented_targets())


@pytest.mark.parametrize("target", documented_targets())
def test_documented_target_has_a_real_recipe(target: str) -> None:
    make = shutil.which("make")
    assert make is not None, "make is needed to build this project"
    dry_run = subprocess.run(
        [make, "-n", target], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert dry_run.returncode == 0, dry_run.stderr
    recipe = dry_run.stdout.lower()
    assert recipe.strip(), f"make {target} runs nothing"
    assert "not implemented" not in recipe, recipe
