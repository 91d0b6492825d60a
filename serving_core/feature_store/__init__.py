"""Feast for serving: feature definitions, store settings, completeness marker, online reader.

Materialisation and the offline export are batch jobs: ``training.feature_store``.
"""
