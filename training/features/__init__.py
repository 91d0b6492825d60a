"""Feature engineering: one pipeline from the typed tables to one row per client.

Per-application features (the part serving recomputes for new applications) are in
``serving_core.application``; the history aggregates here are batch-only.
"""
