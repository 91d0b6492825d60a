"""Models from the MLflow registry: resolve an alias, load a version, follow the champion.

Both gRPC services serve ``ScoringModel`` bundles registered by ``make train``. The scoring
service follows the ``champion`` alias: a new champion is loaded in a background thread and
swapped in with one reference assignment, so a request sees either the old model or the new
one, never a mix; a failed load keeps the old model (logged and counted). The explainer
loads whichever versions it is asked for, keeping a few in memory.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException

from services.common.errors import NotFound, Unavailable
from services.common.metrics import MODEL_INFO, MODEL_LOADED_AT, MODEL_RELOADS
from training.bundle import META_FILE, ScoringModel

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RegistrySettings:
    tracking_uri: str
    model_name: str = "credit-default"
    alias: str = "champion"
    cache_dir: Path = Path(tempfile.gettempdir()) / "credit-models"


class ModelRegistry:
    def __init__(self, settings: RegistrySettings) -> None:
        self.settings = settings
        self.client = MlflowClient(
            tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri
        )
        # Downloads name this registry explicitly: MLflow's process-global tracking URI may
        # point elsewhere (another registry in the same process, or a stale environment).
        self._uris = {"tracking_uri": settings.tracking_uri, "registry_uri": settings.tracking_uri}

    def alias_version(self) -> str | None:
        """The version the alias points to, or None when no model holds it yet."""
        try:
            found = self.client.get_model_version_by_alias(
                self.settings.model_name, self.settings.alias
            )
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise Unavailable(f"model registry: {error.message}") from error
        return str(found.version)

    def load(self, version: str) -> ScoringModel:
        """Download (once, cached on disk) and load one registered version."""
        target = self.settings.cache_dir / self.settings.model_name / version
        if not any(target.rglob(META_FILE)):
            try:
                self.client.get_model_version(self.settings.model_name, version)
            except MlflowException as error:
                raise NotFound(f"model version {version} is not registered") from error
            target.mkdir(parents=True, exist_ok=True)
            download_artifacts(
                artifact_uri=f"models:/{self.settings.model_name}/{version}",
                dst_path=str(target),
                **self._uris,
            )
        bundle = next(target.rglob(META_FILE)).parent
        return ScoringModel.load(bundle)

    def reports(self, version: str) -> Path:
        """The training reports of one version (importance, population statistics, metrics,
        model card), downloaded once from its MLflow run."""
        target = self.settings.cache_dir / self.settings.model_name / version / "reports"
        if not (target / "metrics.json").is_file():
            try:
                run_id = self.client.get_model_version(self.settings.model_name, version).run_id
            except MlflowException as error:
                raise NotFound(f"model version {version} is not registered") from error
            target.parent.mkdir(parents=True, exist_ok=True)
            download_artifacts(
                run_id=run_id, artifact_path="reports", dst_path=str(target.parent), **self._uris
            )
        return target


class ChampionFollower:
    """Holds the champion model and swaps in a new one when the alias moves."""

    def __init__(self, registry: ModelRegistry, poll_seconds: float = 10.0) -> None:
        self.registry = registry
        self.poll_seconds = poll_seconds
        self.model: ScoringModel | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._waiting_logged = False
        self.on_change: Callable[[], None] | None = None  # e.g. flip gRPC health

    def refresh(self) -> bool:
        """Check the alias once; load and swap when it moved. True when a swap happened."""
        version = self.registry.alias_version()
        if version is None:
            if not self._waiting_logged:
                log.warning(
                    "not_ready_no_champion",
                    model=self.registry.settings.model_name,
                    alias=self.registry.settings.alias,
                    hint="run `make train` to register a model",
                )
                self._waiting_logged = True
            return False
        current = self.model
        if current is not None and current.model_version == version:
            return False
        try:
            loaded = self.registry.load(version)
        except Exception as error:
            MODEL_RELOADS.labels("failure").inc()
            log.error(
                "model_load_failed",
                version=version,
                error=str(error),
                keeping=current.model_version if current else None,
            )
            return False
        self.model = loaded  # one reference swap: requests see old or new, never a mix
        if self.on_change is not None:
            self.on_change()
        MODEL_RELOADS.labels("success").inc()
        MODEL_INFO.info({"version": version, "name": self.registry.settings.model_name})
        MODEL_LOADED_AT.set(time.time())
        log.info(
            "model_loaded", version=version, previous=current.model_version if current else None
        )
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="champion-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception as error:  # registry down: keep serving what we have
                MODEL_RELOADS.labels("failure").inc()
                log.error("registry_poll_failed", error=str(error))


class VersionCache:
    """The explainer's models: any registered version on demand, a few kept in memory."""

    def __init__(self, registry: ModelRegistry, size: int = 3) -> None:
        self.registry = registry
        self.size = size
        self._models: OrderedDict[str, ScoringModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, version: str) -> ScoringModel:
        with self._lock:
            if version in self._models:
                self._models.move_to_end(version)
                return self._models[version]
        model = self.registry.load(version)
        with self._lock:
            self._models[version] = model
            while len(self._models) > self.size:
                self._models.popitem(last=False)
        return model
