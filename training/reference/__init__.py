"""Compact facts about the Kaggle data shipped with the repo (schema, synthetic statistics)."""
