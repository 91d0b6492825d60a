"""The served scoring artefact: LightGBM booster + calibrator + threshold + feature schema.

Everything inference needs is plain files (LightGBM text model, JSON), so the scoring
service loads it without scikit-learn or pickles; calibration is a numpy-only function.

Layout of a bundle directory::

    model.txt         LightGBM text model (raw scores -> raw probability)
    calibrator.json   {"method": "isotonic", "x": [...], "y": [...]} or {"method": "platt", ...}
    bundle.json       threshold, feature schema, model_version, trained_at, metrics summary
"""

from __future__ import annotations

import ctypes
import json
import threading
import weakref
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd

# LightGBM's C library and helpers: the fast single-row API has no Python wrapper.
from lightgbm.basic import _C_API_DTYPE_FLOAT64, _C_API_PREDICT_NORMAL, _LIB, _c_str, _safe_call
from mlflow.pyfunc import PythonModel, PythonModelContext

from serving_core.frame import RowEncoder

MODEL_FILE = "model.txt"
CALIBRATOR_FILE = "calibrator.json"
META_FILE = "bundle.json"
REFUSED = "refused"
GRANTED = "granted"
REVIEW = "review"  # referred to an underwriter: too close to the threshold to decide alone

CalibrationMethod = Literal["isotonic", "platt", "identity"]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Calibrator:
    """Monotone map raw probability -> calibrated probability, storable as JSON.

    isotonic: piecewise-linear through (x, y), flat outside the range (what sklearn's
    ``IsotonicRegression(out_of_bounds="clip")`` predicts), so ``numpy.interp`` reproduces it.
    platt: ``sigmoid(coef * logit(p) + intercept)``.
    """

    method: CalibrationMethod
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    coef: float = 1.0
    intercept: float = 0.0

    def predict(self, p_raw: np.ndarray) -> np.ndarray:
        p = np.asarray(p_raw, dtype=np.float64)
        if self.method == "isotonic":
            return np.interp(p, np.asarray(self.x), np.asarray(self.y))
        if self.method == "platt":
            return 1.0 / (1.0 + np.exp(-(self.coef * _logit(p) + self.intercept)))
        return p

    def to_dict(self) -> dict[str, Any]:
        if self.method == "isotonic":
            return {"method": "isotonic", "x": list(self.x), "y": list(self.y)}
        if self.method == "platt":
            return {"method": "platt", "coef": self.coef, "intercept": self.intercept}
        return {"method": "identity"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        return cls(
            method=data["method"],
            x=tuple(float(v) for v in data.get("x", ())),
            y=tuple(float(v) for v in data.get("y", ())),
            coef=float(data.get("coef", 1.0)),
            intercept=float(data.get("intercept", 0.0)),
        )


def _free_configs(free: Any, configs: list[ctypes.c_void_p]) -> None:
    for config in configs:
        free(config)


class SingleRowPredictor:
    """LightGBM's C API for one row at a time (``LGBM_BoosterPredictForMatSingleRowFast``).

    ``Booster.predict`` builds a predictor and checks its input on every call (~0.15 ms);
    the fast API parses the parameters once and predicts a row in a few microseconds per
    hundred trees. Its config is not meant to be shared between threads, so each serving
    thread gets its own. Tested equal to ``Booster.predict``.
    """

    def __init__(self, booster: lgb.Booster, num_features: int) -> None:
        self._booster = booster  # the configs point into it: keep it alive
        self._num_features = num_features
        self._local = threading.local()
        self._configs: list[ctypes.c_void_p] = []
        self._lock = threading.Lock()
        # Not __del__: at interpreter exit module globals (the library handle) may already be
        # gone when it runs; finalize runs at exit while they are still there.
        weakref.finalize(self, _free_configs, _LIB.LGBM_FastConfigFree, self._configs)

    def _config(self) -> ctypes.c_void_p:
        config: ctypes.c_void_p | None = getattr(self._local, "config", None)
        if config is None:
            config = ctypes.c_void_p()
            _safe_call(
                _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                    self._booster._handle,
                    ctypes.c_int(_C_API_PREDICT_NORMAL),
                    ctypes.c_int(0),
                    ctypes.c_int(self._booster.best_iteration),
                    ctypes.c_int(_C_API_DTYPE_FLOAT64),
                    ctypes.c_int32(self._num_features),
                    _c_str("num_threads=1"),
                    ctypes.byref(config),
                )
            )
            self._local.config = config
            with self._lock:
                self._configs.append(config)
        return config

    def predict(self, row: np.ndarray) -> float:
        """Probability for one row of ``num_features`` float64 values (NaN = missing)."""
        data = np.ascontiguousarray(row, dtype=np.float64).reshape(-1)
        if data.size != self._num_features:
            raise ValueError(f"expected {self._num_features} features, got {data.size}")
        out_len = ctypes.c_int64(0)
        result = ctypes.c_double(0.0)
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFast(
                self._config(),
                data.ctypes.data_as(ctypes.c_void_p),
                ctypes.byref(out_len),
                ctypes.byref(result),
            )
        )
        return result.value


def _model_matrix(frame: pd.DataFrame, schema: dict[str, Any]) -> pd.DataFrame:
    # Imported late: the feature package is the single source of truth for model inputs, and
    # importing it lazily keeps `load()` usable in tools that only read bundle metadata.
    from serving_core.frame import model_matrix

    return model_matrix(frame, schema)


@dataclass
class ScoringModel:
    booster: lgb.Booster
    calibrator: Calibrator
    threshold: float
    schema: dict[str, Any]
    model_version: str = "unregistered"
    trained_at: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def feature_names(self) -> tuple[str, ...]:
        # Built once: the feature store checks a served model's names once per version,
        # recognising them by identity, so a new list per call meant a full check per call.
        return tuple(f["name"] for f in self.schema["features"])

    @cached_property
    def encoder(self) -> RowEncoder:
        return RowEncoder(self.schema)

    @cached_property
    def single_row(self) -> SingleRowPredictor:
        return SingleRowPredictor(self.booster, self.booster.num_feature())

    def predict_one(self, features: dict[str, Any]) -> tuple[float, float]:
        """(raw, calibrated) probability of default for one client's features: the
        low-latency path of the services, equal to ``predict_proba`` on a one-row frame."""
        raw = self.single_row.predict(self.encoder.encode(features))
        return raw, float(self.calibrator.predict(np.array([raw]))[0])

    def model_input(self, frame: pd.DataFrame) -> pd.DataFrame:
        return _model_matrix(frame, self.schema)

    def raw_score(self, frame: pd.DataFrame) -> np.ndarray:
        """Uncalibrated LightGBM probability (frame: raw feature columns, any extra ignored)."""
        matrix = self.model_input(frame)
        return np.asarray(self.booster.predict(matrix, num_threads=1), dtype=np.float64)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of default."""
        return self.calibrator.predict(self.raw_score(frame))

    def decide(self, p: float | np.ndarray, review_band: float = 0.0) -> str | np.ndarray:
        """Refuse when the calibrated probability reaches the cost-optimal threshold; with a
        ``review_band`` (probability points, e.g. 0.02), a probability closer to the
        threshold than that is ``review`` (an underwriter decides) instead."""
        if review_band < 0:
            raise ValueError(f"review_band must be >= 0, got {review_band}")
        if np.ndim(p) == 0:
            if abs(float(p) - self.threshold) < review_band:
                return REVIEW
            return REFUSED if float(p) >= self.threshold else GRANTED
        probabilities = np.asarray(p, dtype=np.float64)
        decided = np.where(probabilities >= self.threshold, REFUSED, GRANTED)
        return np.where(np.abs(probabilities - self.threshold) < review_band, REVIEW, decided)

    def save(self, directory: Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(directory / MODEL_FILE))
        (directory / CALIBRATOR_FILE).write_text(json.dumps(self.calibrator.to_dict()))
        meta = {
            "threshold": self.threshold,
            "schema": self.schema,
            "feature_names": list(self.feature_names),
            "model_version": self.model_version,
            "trained_at": self.trained_at,
            "metrics": self.metrics,
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False))
        return directory

    @classmethod
    def load(cls, directory: Path) -> ScoringModel:
        directory = Path(directory)
        meta = json.loads((directory / META_FILE).read_text())
        calibrator = Calibrator.from_dict(json.loads((directory / CALIBRATOR_FILE).read_text()))
        # Threads are set per predict call (num_threads=1), not at load time.
        booster = lgb.Booster(model_file=str(directory / MODEL_FILE))
        return cls(
            booster=booster,
            calibrator=calibrator,
            threshold=float(meta["threshold"]),
            schema=meta["schema"],
            model_version=str(meta["model_version"]),
            trained_at=meta["trained_at"],
            metrics=meta.get("metrics", {}),
        )


class ScoringPyfunc(PythonModel):
    """MLflow wrapper: the bundle directory is the model's only artefact."""

    BUNDLE_KEY = "bundle"

    def load_context(self, context: PythonModelContext) -> None:
        self.model = ScoringModel.load(Path(context.artifacts[self.BUNDLE_KEY]))

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> np.ndarray:
        # A pd.DataFrame hint gives MLflow no schema to coerce dtypes with: model_matrix,
        # the single source of truth, must see the columns as the caller sent them.
        return self.model.predict_proba(pd.DataFrame(model_input))
