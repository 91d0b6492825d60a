"""Feast batch side: materialisation into the online store, snapshots, benchmarks.

The definitions and the online read path are in ``serving_core.feature_store``.
"""
