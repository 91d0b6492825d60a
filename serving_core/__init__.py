"""The serving core: what training and the online services share, and nothing else.

Data flow: ``schema`` (the Kaggle columns, their types and sentinels) -> ``application``
(one application's features, computed the same way for a training table and for a request)
-> ``frame`` (the model's column order and the row encoder) -> ``bundle`` (the registered
model: LightGBM + calibration + threshold) and ``feature_store`` (Feast definitions and the
online reader). ``training/`` builds on it offline; ``services/`` import it and never
``training/`` (import-linter contracts in ``make lint`` keep it so).

Modules are imported one by one (this ``__init__`` re-exports nothing) so that a service
loads only what it uses.
"""
