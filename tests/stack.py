"""A real local stack for service tests: synthetic data -> features -> a trained, registered
model -> a materialised feature store -> scoring and explainer gRPC servers on loopback.

Nothing is mocked: real MLflow registry (SQLite), real Feast online store (SQLite, or Redis
when asked), real gRPC servers on free ports. Building it takes ~30 s, so the suite builds
it once per session (see conftest.stack).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pandas as pd

from services.common.features import FeatureSource
from services.common.registry import ChampionFollower
from services.explainer.server import create_server as create_explainer
from services.explainer.settings import ExplainerSettings
from services.scoring.server import create_server as create_scoring
from services.scoring.server import start_following
from services.scoring.settings import ScoringSettings
from serving_core.bundle import ScoringModel
from serving_core.feature_store.reader import OnlineFeatureReader, register_model_features
from serving_core.feature_store.settings import FeatureStoreSettings, open_store
from training.feature_store.materialize import materialize
from training.features.pipeline import build_features
from training.loader import convert
from training.synthetic import generate
from training.train import run_training

MODEL_NAME = "credit-default"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    root: Path
    features_dir: Path
    tracking_uri: str
    store_settings: FeatureStoreSettings
    metrics: dict[str, Any]
    model: ScoringModel
    features: pd.DataFrame
    scoring_address: str = ""
    explainer_address: str = ""
    follower: ChampionFollower | None = None
    servers: list[grpc.Server] = field(default_factory=list)
    sources: list[FeatureSource] = field(default_factory=list)

    @property
    def train_ids(self) -> list[int]:
        return self.features.loc[self.features["split"] == "train", "SK_ID_CURR"].tolist()

    def stop(self) -> None:
        if self.follower is not None:
            self.follower.stop()
        for source in self.sources:
            source.stop()
        for server in self.servers:
            server.stop(grace=None)


def train_model(stack_root: Path, features_dir: Path, tracking_uri: str, **kwargs: Any) -> dict:
    return run_training(
        features_dir,
        stack_root / f"artifacts-{len(list(stack_root.glob('artifacts-*')))}",
        tracking_uri=tracking_uri,
        model_name=MODEL_NAME,
        quick=True,
        progress=False,
        **kwargs,
    )


def build_stack(root: Path, *, clients: int = 3_000, online_store: str = "sqlite") -> Stack:
    """Data, model, feature store and both servers, started; ``stop()`` when done."""
    raw, tables, features_dir = root / "raw", root / "tables", root / "features"
    generate(raw, n_clients=clients, seed=7, progress=False)
    convert(raw, tables, progress=False)
    build_features(tables, features_dir, progress=False)
    tracking_uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    metrics = train_model(root, features_dir, tracking_uri)
    store_settings = FeatureStoreSettings(
        online_store=online_store,
        data_dir=root / "feature_store",
        project=f"test_{root.name.replace('-', '_')}",
        redis_connection="127.0.0.1:6379,db=13",
    )
    materialize(store_settings, features_dir, progress=False)
    model = ScoringModel.load(root / "artifacts-0" / "model")
    register_model_features(open_store(store_settings), model.model_version, model.feature_names)
    stack = Stack(
        root=root,
        features_dir=features_dir,
        tracking_uri=tracking_uri,
        store_settings=store_settings,
        metrics=metrics,
        model=model,
        features=pd.read_parquet(features_dir / "features.parquet"),
    )
    start_servers(stack)
    return stack


def start_servers(
    stack: Stack, scoring_port: int = 0, explainer_port: int = 0, check_seconds: float = 0.5
) -> None:
    """Scoring and explainer servers for ``stack``, on the given ports or free ones, wired
    as ``serve`` wires them (health follows the champion and the store's completeness,
    checked every ``check_seconds``)."""
    reader = OnlineFeatureReader(open_store(stack.store_settings))
    scoring_port, explainer_port = scoring_port or free_port(), explainer_port or free_port()
    scoring_features = FeatureSource(reader, check_seconds=check_seconds)
    scoring, follower, _ = create_scoring(
        ScoringSettings(
            port=scoring_port,
            tracking_uri=stack.tracking_uri,
            model_name=MODEL_NAME,
            poll_seconds=0.5,
            cache_dir=stack.root / "model-cache",
            reflection=True,
        ),
        scoring_features,
    )
    explainer_features = FeatureSource(reader, check_seconds=check_seconds)
    explainer, _, _ = create_explainer(
        ExplainerSettings(
            port=explainer_port,
            tracking_uri=stack.tracking_uri,
            model_name=MODEL_NAME,
            cache_dir=stack.root / "model-cache",
            reflection=True,
        ),
        explainer_features,
    )
    scoring.start()
    explainer.start()
    explainer_features.start()
    start_following(follower, scoring_features)
    stack.scoring_address = f"127.0.0.1:{scoring_port}"
    stack.explainer_address = f"127.0.0.1:{explainer_port}"
    stack.follower = follower
    stack.servers = [scoring, explainer]
    stack.sources = [scoring_features, explainer_features]
