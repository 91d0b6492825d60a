"""Every environment variable the deployment sets is read by something.

A variable that nothing reads is a setting that silently does nothing: the dashboard pod was
once given GATEWAY_URL and GRADIO_SERVER_NAME while its settings read UI_GATEWAY_URL and
UI_HOST, so as deployed it would have bound 127.0.0.1 and called 127.0.0.1:8000. Names set
by the chart (every render), the Dockerfiles' runtime stages and k8s/ are checked against the
names the settings classes read (pydantic-settings: prefix + field, or the field's aliases),
the `credit` CLI's options (the jobs' settings) and a short list of names read by the
runtime and libraries, each with its reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.settings_env import settings_env_names
from tests.test_deploy import RENDERS, pod_specs

REPO = Path(__file__).resolve().parents[1]
# Read by Python, a library or the container runtime rather than by our settings.
RUNTIME = {
    "PATH": "the shell and Python find the venv's executables",
    "PYTHONUNBUFFERED": "Python: logs reach the container runtime at once",
    "PYTHONDONTWRITEBYTECODE": "Python: no .pyc written on a read-only root file system",
    "OMP_NUM_THREADS": "libgomp: one thread per LightGBM/SHAP call",
    "MLFLOW_DISABLE_TELEMETRY": "mlflow: no telemetry",
    "MLFLOW_TRACKING_URI": "mlflow itself (the settings read it too)",
    "GRADIO_ANALYTICS_ENABLED": "gradio: no analytics",
    "HF_HUB_OFFLINE": "huggingface_hub (imported by gradio): never download",
    "DO_NOT_TRACK": "the cross-tool opt-out of telemetry",
    "HOME": "the MLflow server writes its user files under HOME (/tmp there)",
    "MLFLOW_SERVER_ALLOWED_HOSTS": "the MLflow server's Host-header guard",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "the MLflow server's job runner (off)",
}


def cli_env_names() -> set[str]:
    import click
    import typer

    from credit.cli import app

    names: set[str] = set()
    stack: list[click.Command] = [typer.main.get_command(app)]
    while stack:
        command = stack.pop()
        if isinstance(command, click.Group):
            stack += command.commands.values()
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            if isinstance(envvar, str):
                names.add(envvar)
            elif envvar:
                names |= set(envvar)
    return names


def chart_env_names() -> dict[str, str]:
    """Variable -> where it is set, over every render (chart values and kustomize)."""
    found: dict[str, str] = {}
    for render, objects in ((name, make()) for name, make in RENDERS.items()):
        configmaps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
        for obj in objects:
            for pod in pod_specs(obj):
                for c in pod.get("initContainers", []) + pod["containers"]:
                    where = f"{render}: {obj['kind']}/{obj['metadata']['name']}/{c['name']}"
                    for item in c.get("env", []):
                        found.setdefault(item["name"], where)
                    for source in c.get("envFrom", []):
                        ref = source.get("configMapRef", {}).get("name")
                        for key in configmaps.get(ref, {}).get("data", {}) if ref else ():
                            found.setdefault(key, f"{where} (ConfigMap {ref})")
    return found


def dockerfile_env_names() -> dict[str, str]:
    """ENV of each Dockerfile's runtime stage (the build stage's ENV never ships)."""
    found: dict[str, str] = {}
    for dockerfile in sorted((REPO / "docker").glob("*.Dockerfile")):
        runtime = dockerfile.read_text().rsplit("\nFROM ", 1)[1]
        joined = runtime.replace("\\\n", " ")
        for line in joined.splitlines():
            if line.startswith("ENV "):
                for name in re.findall(r"([A-Z_][A-Z0-9_]*)=", line):
                    found.setdefault(name, dockerfile.name)
    return found


@pytest.fixture(scope="module")
def readers() -> set[str]:
    return settings_env_names() | cli_env_names() | set(RUNTIME)


def test_the_settings_read_what_the_old_dashboard_wiring_missed(readers: set[str]) -> None:
    # The checker itself: it knows the real names and not the ones nothing reads.
    assert {"UI_GATEWAY_URL", "UI_HOST", "GATEWAY_DATABASE_URL", "FEATURE_STORE_DIR"} <= readers
    assert not {"GATEWAY_URL", "GRADIO_SERVER_NAME"} & readers


def test_every_variable_the_chart_sets_is_read(readers: set[str]) -> None:
    unread = {n: where for n, where in chart_env_names().items() if n.upper() not in readers}
    assert not unread, f"set by the chart but read by nothing: {unread}"


def test_every_variable_a_dockerfile_sets_is_read(readers: set[str]) -> None:
    names = dockerfile_env_names()
    assert "UI_GATEWAY_URL" in names and "OMP_NUM_THREADS" in names
    unread = {n: where for n, where in names.items() if n.upper() not in readers}
    assert not unread, f"set by a Dockerfile but read by nothing: {unread}"
