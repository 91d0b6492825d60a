"""Models from the MLflow registry: resolve an alias, load a version, follow the champion.

Both gRPC services serve ``ScoringModel`` bundles registered by ``make train``. The scoring
service follows the ``champion`` alias: a new champion is loaded in a background thread and
swapped in with one reference assignment, so a request sees either the old model or the new
one, never a mix; a failed load keeps the old model (logged and counted). The explainer
loads whichever versions it is asked for, keeping a few in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
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
from serving_core.bundle import META_FILE, ScoringModel

log = structlog.get_logger(__name__)

# Written next to a downloaded version: what the registry said it was (verified on load).
IDENTITY_FILE = "registry-identity.json"


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
        # What each version was when last loaded: reports() follows it without a registry
        # round trip per request (GlobalImportance reads them on every call).
        self._identities: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

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

    def _identity(self, version: str) -> dict[str, str]:
        """What the registry says version ``version`` is: the key of its cached copy."""
        try:
            found = self.client.get_model_version(self.settings.model_name, version)
        except MlflowException as error:
            raise NotFound(f"model version {version} is not registered") from error
        identity = {
            "registry": registry_key(self.settings.tracking_uri),
            "model_name": self.settings.model_name,
            "version": str(found.version),
            "run_id": found.run_id or "",
            "source": found.source or "",
        }
        with self._lock:
            self._identities[version] = identity
        return identity

    def _version_dir(self, identity: dict[str, str]) -> Path:
        # Keyed by what identifies the artefact, not by its version number alone: the same
        # name and version in another registry (another checkout, a rebuilt registry) is
        # another model. Two versions may share a run (one run, several registrations).
        artefact = hashlib.sha256(f"{identity['run_id']}\n{identity['source']}".encode())
        return (
            self.settings.cache_dir
            / _digest(identity["registry"])
            / self.settings.model_name
            / f"{identity['version']}-{artefact.hexdigest()[:16]}"
        )

    def load(self, version: str) -> ScoringModel:
        """Download (once, cached on disk) and load one registered version.

        The registry is asked what the version is on every load (loads are rare: an alias
        move, an explainer cache miss); a cached copy is used only when its recorded identity
        and the bundle's own version match that answer, otherwise it is downloaded again."""
        identity = self._identity(version)
        target = self._version_dir(identity)
        model = _verified(target, identity)
        if model is None:
            # The artefact's location asked of this registry's client: MLflow resolves a
            # ``models:/name/version`` URI with the process-global registry, whatever
            # registry_uri it is given, so that URI would fetch another registry's version.
            try:
                location = self.client.get_model_version_download_uri(
                    self.settings.model_name, version
                )
            except MlflowException as error:
                raise NotFound(f"model version {version} is not registered") from error
            self._download(
                target,
                identity,
                lambda dst: download_artifacts(artifact_uri=location, dst_path=dst, **self._uris),
            )
            model = _verified(target, identity)
        if model is None:
            raise Unavailable(
                f"model version {version}: its artefact is not a bundle of version {version}"
            )
        return model

    def reports(self, version: str) -> Path:
        """The training reports of one version (importance, population statistics, metrics,
        model card), downloaded once from its MLflow run."""
        with self._lock:
            identity = self._identities.get(version)
        if identity is None:  # not loaded by this process: ask the registry
            identity = self._identity(version)
        target = self._version_dir(identity) / "reports"
        if not (target / "metrics.json").is_file():
            self._download(
                target,
                identity,
                lambda dst: download_artifacts(
                    run_id=identity["run_id"], artifact_path="reports", dst_path=dst, **self._uris
                ),
                subfolder="reports",
            )
        return target

    def _download(
        self,
        target: Path,
        identity: dict[str, str],
        fetch: Callable[[str], object],
        subfolder: str = "",
    ) -> None:
        """Download into a fresh folder next to ``target``, then move it into place: the
        scoring and explainer processes share the cache, so neither may see a half-written
        copy. A copy found in the way (stale, foreign, incomplete) is moved aside first."""
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.parent / f".{target.name}.{uuid.uuid4().hex}"
        try:
            staging.mkdir()
            fetch(str(staging))
            fetched = staging / subfolder if subfolder else staging
            if not subfolder:
                (fetched / IDENTITY_FILE).write_text(json.dumps(identity, sort_keys=True))
            if target.exists():
                aside = target.parent / f".{target.name}.stale.{uuid.uuid4().hex}"
                os.replace(target, aside)
                shutil.rmtree(aside, ignore_errors=True)
            try:
                os.replace(fetched, target)
            except OSError:
                if not target.exists():  # not another process winning the race
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def registry_key(tracking_uri: str) -> str:
    """The tracking URI naming one registry wherever the process runs: a relative SQLite or
    file path (the default ``sqlite:///mlruns/mlflow.db``) resolved against the working
    directory, since two checkouts with the same relative URI are two registries."""
    for prefix in ("sqlite:///", "file://"):
        if tracking_uri.startswith(prefix):
            return prefix + str(Path(tracking_uri[len(prefix) :]).resolve())
    if "://" not in tracking_uri:  # a bare path is a file store
        return str(Path(tracking_uri).resolve())
    return tracking_uri


def _verified(target: Path, identity: dict[str, str]) -> ScoringModel | None:
    """The cached bundle in ``target`` when it is the artefact ``identity`` names, else None."""
    try:
        recorded = json.loads((target / IDENTITY_FILE).read_text())
        bundle = next(target.rglob(META_FILE)).parent
    except (OSError, ValueError, StopIteration):
        return None
    if recorded != identity:
        return None
    model = ScoringModel.load(bundle)
    if model.model_version != identity["version"]:
        log.warning(
            "model_cache_mismatch",
            version=identity["version"],
            bundle_version=model.model_version,
            path=str(target),
        )
        return None
    return model


class ChampionFollower:
    """Holds the champion model and swaps in a new one when the alias moves.

    With ``shadow=True`` it follows a challenger instead (alias ``challenger``): the served
    model's metrics (``credit_model*``) are left to the champion, and the model is dropped
    when the alias is removed (the champion keeps the last one it had). A champion follower
    given a ``challenger`` follower refreshes it too, on the same thread, after its own
    refresh; the challenger's failures never reach the champion."""

    def __init__(
        self,
        registry: ModelRegistry,
        poll_seconds: float = 10.0,
        shadow: bool = False,
        challenger: ChampionFollower | None = None,
    ) -> None:
        self.registry = registry
        self.poll_seconds = poll_seconds
        self.shadow = shadow
        self.challenger = challenger
        self.model: ScoringModel | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._waiting_logged = False
        self.on_change: Callable[[], None] | None = None  # e.g. flip gRPC health

    def refresh(self) -> bool:
        """Check the alias once; load and swap when it moved. True when a swap happened
        (of this follower's model; its challenger's is checked too, its outcome only logged)."""
        try:
            return self._refresh()
        finally:
            if self.challenger is not None:
                try:
                    self.challenger.refresh()
                except Exception as error:  # registry down: the shadow waits, nothing else
                    log.error("challenger_poll_failed", error=str(error))

    def _refresh(self) -> bool:
        version = self.registry.alias_version()
        if version is None and self.shadow:
            if self.model is not None:
                log.info("challenger_removed", version=self.model.model_version)
                self.model = None
                return True
            return False
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
            if not self.shadow:
                MODEL_RELOADS.labels("failure").inc()
            log.error(
                "challenger_load_failed" if self.shadow else "model_load_failed",
                version=version,
                error=str(error),
                keeping=current.model_version if current else None,
            )
            return False
        self.model = loaded  # one reference swap: requests see old or new, never a mix
        if self.on_change is not None:
            self.on_change()
        if self.shadow:
            log.info(
                "challenger_loaded",
                version=version,
                previous=current.model_version if current else None,
            )
            return True
        MODEL_RELOADS.labels("success").inc()
        MODEL_INFO.info({"version": version, "name": self.registry.settings.model_name})
        MODEL_LOADED_AT.set(time.time())
        log.info(
            "model_loaded", version=version, previous=current.model_version if current else None
        )
        return True

    def start(self) -> None:
        name = "challenger-follower" if self.shadow else "champion-follower"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception as error:  # registry down: keep serving what we have
                if not self.shadow:
                    MODEL_RELOADS.labels("failure").inc()
                log.error("registry_poll_failed", error=str(error), shadow=self.shadow)


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
